"""`tsfleet alerts silences`: list silences (Alertmanager's matchers, window, who and why)."""

from __future__ import annotations

import json

import click
import psycopg
from psycopg.rows import dict_row

from loader.db import connect, resolve_url
from loader.options import database_url_option, json_option
from loader.tables import render


@click.command()
@database_url_option
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@json_option
def silences(database_url: str | None, show_all: bool, as_json: bool) -> None:
    """List pending and active silences (with --all, expired ones too), newest first.

    Create one with `tsfleet alerts silence --match rule=~"low_.*" --for 2h --by bob`;
    matchers are =, !=, =~ and !~ on any label, all of which must match.

    Example:

        tsfleet alerts silences --all
    """
    url = resolve_url(database_url)
    try:
        with connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "select silence_id, state, matchers_text, starts_at, ends_at, created_by,"
                " comment, matching_open_alerts from alerts.silence_status"
                " where %s or state <> 'expired' order by starts_at desc, silence_id desc",
                [show_all]).fetchall()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise click.ClickException(f"listing silences failed: {first}; is the database "
                                   "reachable and migrated (`tsfleet migrate`)?") from exc
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    if not rows:
        click.echo("no silences" if show_all else "no active or pending silences")
        return
    click.echo(render(list(rows[0]), [list(r.values()) for r in rows]))
