"""`tsfleet alerts backtest`: replay one rule over history, without touching live state."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import click
import psycopg
from psycopg.rows import dict_row

from loader.alerts.durations import parse_duration
from loader.db import connect, resolve_url
from loader.options import database_url_option, json_option
from loader.tables import render


def _time(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO time (e.g. 2026-03-01T12:00:00Z)",
                                 param_hint=option) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _step(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--step") from exc


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


@click.command()
@database_url_option
@click.option("--rule", "rule_key", required=True, help="The rule's key (tsfleet alerts rules).")
@click.option("--from", "start", required=True, metavar="TIME", help="First step (ISO time).")
@click.option("--to", "end", required=True, metavar="TIME", help="Last step (ISO time).")
@click.option("--step", default="1m", show_default=True, metavar="DURATION",
              help="Time between evaluations, as the runner's --interval.")
@click.option("--device", "device_key", metavar="KEY", help="Only this device.")
@json_option
def backtest(database_url: str | None, rule_key: str, start: str, end: str, step: str,
             device_key: str | None, as_json: bool) -> None:
    """Replay one rule over past readings and print the episodes it would have raised.

    Every step from --from to --to is evaluated exactly as `tsfleet alerts run` would have
    evaluated it then (the readings up to the step, every reading since the previous step,
    the rule's for, keep_firing_for and hysteresis). Nothing is written: no episodes,
    notifications or deliveries. The rule may be disabled, so a new rule can be tried on
    history before it is enabled. Rollup-based conditions (drift, completeness) read the
    rollups as refreshed now.

    Example:

        tsfleet alerts backtest --rule low_battery --from 2026-01-01T00:00Z \\
            --to 2026-03-01T00:00Z --step 5m --json
    """
    url = resolve_url(database_url)
    params = [rule_key, _time(start, "--from"), _time(end, "--to"), _step(step), device_key]
    try:
        with connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute("select * from alerts.backtest(%s, %s, %s, %s, %s)",
                               params).fetchall()
            conn.rollback()  # a backtest writes nothing; its scratch tables go with it
    except psycopg.Error as exc:
        diag = exc.diag
        hint = f" ({diag.message_hint})" if diag.message_hint else ""
        raise click.ClickException(f"backtest failed: {diag.message_primary or exc}{hint}") \
            from exc
    episodes = [{
        "rule": r["rule"], "labels": r["labels"], "fired_at": _iso(r["fired_at"]),
        "resolved_at": _iso(r["resolved_at"]), "peak_value": r["peak_value"],
    } for r in rows]
    if as_json:
        click.echo(json.dumps(episodes, indent=2))
        return
    click.echo(f"{rule_key}: {len(episodes)} episode(s) from {start} to {end} every {step}")
    if episodes:
        click.echo(render(["fired_at", "resolved_at", "subject", "metric", "peak"], [
            (e["fired_at"], e["resolved_at"] or "(firing)",
             e["labels"].get("device") or e["labels"].get("asset"), e["labels"].get("metric"),
             e["peak_value"]) for e in episodes]))
