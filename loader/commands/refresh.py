"""`tsfleet refresh`: refresh the rollups (whole or a time range), then apply raw retention."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import click
import psycopg

from loader.db import connect, resolve_url
from loader.ingest.rollup_refresh import call_refresh
from loader.options import database_url_option
from loader.tables import render


class Timestamp(click.ParamType):
    """ISO-8601 date or date-time; without an offset it is UTC."""

    name = "TIMESTAMP"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is not an ISO-8601 time (e.g. 2026-03-01 or "
                      f"2026-03-01T06:00:00Z)", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


TIMESTAMP = Timestamp()


def refresh_rollups(url: str, start: datetime | None, end: datetime | None,
                    retention: bool = True) -> list[tuple[str, int]]:
    """CALL rollups.refresh (autocommit: the Community path commits inside), then
    ops.apply_retention(). Returns the chunks dropped per hypertable."""
    with connect(url, autocommit=True) as conn:
        call_refresh(conn, "call rollups.refresh(%s, %s)", [start, end])
        if not retention:
            return []
        rows = conn.execute("select hypertable_name, dropped_chunks from ops.apply_retention()"
                            ).fetchall()
    return [(r[0], r[1]) for r in rows]


@click.command()
@database_url_option
@click.option("--start", type=TIMESTAMP,
              help="Refresh from this time (ISO-8601, UTC unless an offset is given).")
@click.option("--end", type=TIMESTAMP, help="Refresh up to this time (exclusive).")
@click.option("--no-retention", is_flag=True,
              help="Do not drop raw chunks older than the retention setting afterwards.")
def refresh(database_url: str | None, start: datetime | None, end: datetime | None,
            no_retention: bool) -> None:
    """Refresh every rollup, whole or for [--start, --end), then apply raw retention.

    The range is widened to whole buckets (hours, UTC days). Without --start/--end every
    rollup is refreshed over all the raw data there is (older rollup rows are kept).
    Community edition: continuous aggregates refresh only what changed; Apache edition: the
    rollup tables are recomputed for the range. Ranges queued by loads that could not refresh
    themselves are refreshed too. Run it as the owner of the rollups (the migrating role).

    Example:

        tsfleet refresh
        tsfleet refresh --start 2026-03-01 --end 2026-03-08
    """
    if start and end and start >= end:
        raise click.UsageError(f"--start {start.isoformat()} must be before --end "
                               f"{end.isoformat()}")
    url = resolve_url(database_url)
    began = time.perf_counter()
    try:
        dropped = refresh_rollups(url, start, end, retention=not no_retention)
    except psycopg.Error as exc:
        hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
        raise click.ClickException(
            f"rollup refresh failed: {str(exc).strip()}{hint}; is the database migrated "
            f"(`tsfleet migrate`) and are you its owner?") from exc
    span = (f"{start.isoformat() if start else 'the oldest reading'} .. "
            f"{end.isoformat() if end else 'the newest reading'}")
    click.echo(f"refreshed every rollup over {span} in {time.perf_counter() - began:.1f} s")
    if any(n for _, n in dropped):
        click.echo(render(["hypertable", "dropped chunks"], dropped))
