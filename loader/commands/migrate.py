"""`tsfleet migrate` and `tsfleet rollback`: yoyo, plus the re-apply of functions and views."""

from __future__ import annotations

import click

from loader import migrate as migrations
from loader.db import resolve_url
from loader.options import database_url_option


@click.command()
@database_url_option
@click.option("--reapply", is_flag=True,
              help="Re-create every function and view even if the SQL files did not change.")
@click.option("--list", "only_list", is_flag=True,
              help="List applied (A) and pending (U) migrations; change nothing.")
def migrate(database_url: str | None, reapply: bool, only_list: bool) -> None:
    """Apply pending migrations, then re-apply sql/functions and sql/views.

    Same as `yoyo apply --batch` from the repository root, with a plain postgresql:// URL.
    The SQL comes from the installed package, so this works from any directory.

    Example:

        tsfleet migrate --database-url postgresql://tsfleet@localhost/tsfleet
        tsfleet migrate --list
    """
    url = resolve_url(database_url)
    if only_list:
        list_migrations(url)
        return
    try:
        applied = migrations.apply(url, force_reapply=reapply, log=click.echo)
    except Exception as exc:  # yoyo and psycopg raise many kinds; all end the same way
        raise click.ClickException(f"migration failed: {exc}") from exc
    if applied:
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        click.echo("no pending migrations")


def list_migrations(url: str) -> None:
    """Print yoyo's `list`: one line per migration, A (applied) or U (unapplied)."""
    try:
        rows = migrations.listing(url)
    except Exception as exc:
        raise click.ClickException(f"cannot list migrations: {exc}") from exc
    for migration_id, is_applied in rows:
        click.echo(f"{'A' if is_applied else 'U'}  {migration_id}")
    done = sum(1 for _, is_applied in rows if is_applied)
    click.echo(f"{done} applied, {len(rows) - done} pending")


@click.command()
@database_url_option
@click.option("--count", type=click.IntRange(min=1), help="Roll back only the newest N.")
@click.option("--all", "everything", is_flag=True, help="Roll back every migration.")
def rollback(database_url: str | None, count: int | None, everything: bool) -> None:
    """Roll back migrations (the newest one by default).

    Rolling back a migration drops what it created, data included.

    Example:

        tsfleet rollback --count 1
    """
    url = resolve_url(database_url)
    if everything and count:
        raise click.UsageError("give --count or --all, not both")
    try:
        done = migrations.rollback(url, None if everything else (count or 1))
    except Exception as exc:
        raise click.ClickException(f"rollback failed: {exc}") from exc
    click.echo(f"rolled back {len(done)} migration(s): {', '.join(done) or '-'}")
