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
def migrate(database_url: str | None, reapply: bool) -> None:
    """Apply pending migrations, then re-apply sql/functions and sql/views.

    Same as `yoyo apply --batch` from the repository root, with a plain postgresql:// URL.

    Example:

        tsfleet migrate --database-url postgresql://tsfleet@localhost/tsfleet
    """
    url = resolve_url(database_url)
    try:
        applied = migrations.apply(url, force_reapply=reapply, log=click.echo)
    except Exception as exc:  # yoyo and psycopg raise many kinds; all end the same way
        raise click.ClickException(f"migration failed: {exc}") from exc
    if applied:
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        click.echo("no pending migrations")


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
