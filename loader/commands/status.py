"""`tsfleet status`: edition, features and headline counts."""

from __future__ import annotations

import json

import click
from psycopg.rows import dict_row

from loader.db import connect, resolve_url
from loader.options import database_url_option, json_option
from loader.tables import render_record


def read_status(url: str) -> dict[str, dict[str, object]]:
    with connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from ops.capabilities")
        capabilities = cur.fetchone() or {}
        cur.execute("select * from ops.overview")
        overview = cur.fetchone() or {}
    return {"capabilities": capabilities, "overview": overview}


@click.command()
@database_url_option
@json_option
def status(database_url: str | None, as_json: bool) -> None:
    """Show the server's edition and features, and headline counts.

    Example:

        tsfleet status
    """
    url = resolve_url(database_url)
    try:
        report = read_status(url)
    except Exception as exc:
        raise click.ClickException(
            f"cannot read status ({exc}); is the database migrated? run `tsfleet migrate`"
        ) from exc
    if as_json:
        click.echo(json.dumps(report, default=str, indent=2))
        return
    for title, record in report.items():
        click.echo(f"== {title}")
        click.echo(render_record(record))
