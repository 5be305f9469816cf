"""`tsfleet alerts deliveries`: what each sink got, what is retrying, what was given up."""

from __future__ import annotations

import json
from datetime import timedelta

import click
import psycopg
from psycopg.rows import dict_row

from loader.db import connect, resolve_url
from loader.options import database_url_option, json_option
from loader.tables import render

STATES = ("queued", "sending", "retrying", "delivered", "superseded", "dead")


@click.command()
@database_url_option
@click.option("--failed", is_flag=True,
              help="Only dead letters: deliveries given up (permanent refusal or max age).")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES),
              help="Only deliveries in this state (repeatable).")
@click.option("--sink", "sink_name", help="Only this sink (its name as the runner logs it).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Newest this many.")
@json_option
def deliveries(database_url: str | None, failed: bool, states: tuple[str, ...],
               sink_name: str | None, limit: int, as_json: bool) -> None:
    """Deliveries of notifications to sinks, newest first, with the receiver's last answer.

    A dead letter (state dead) keeps the HTTP status and an excerpt of the answer; it is
    never sent again.

    Example:

        tsfleet alerts deliveries --failed
    """
    wanted = ["dead"] if failed else list(states)
    url = resolve_url(database_url)
    try:
        with connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "select notification_id, sink_name, rule, transition, state, attempts,"
                " last_status, dead_reason, last_error, last_response, created_at,"
                " next_attempt_at, delivered_at, dead_at, labels"
                " from alerts.delivery_status"
                " where (cardinality(%(states)s::text[]) = 0 or state = any(%(states)s))"
                " and (%(sink)s::text is null or sink_name = %(sink)s)"
                " order by notification_id desc, sink_name limit %(limit)s",
                {"states": wanted, "sink": sink_name, "limit": limit}).fetchall()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise click.ClickException(f"listing deliveries failed: {first}; is the database "
                                   "reachable and migrated (`tsfleet migrate`)?") from exc
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    if not rows:
        click.echo("no dead letters" if failed else "no deliveries")
        return
    columns = ["notification_id", "sink_name", "rule", "transition", "state", "attempts",
               "last_status", "dead_reason", "last_response" if failed else "next_attempt_at"]
    click.echo(render(columns, [[_short(r[c]) for c in columns] for r in rows]))


def _short(value: object, width: int = 60) -> object:
    if isinstance(value, str) and len(value) > width:
        return value[: width - 1] + "…"
    if isinstance(value, timedelta):
        return str(value)
    return value
