"""`tsfleet status`: edition, features, headline counts, storage and background jobs."""

from __future__ import annotations

import json

import click
from psycopg.rows import dict_row

from loader.db import connect, resolve_url
from loader.options import database_url_option, json_option
from loader.tables import render, render_record

# Couples with: ops.hypertable_sizes and ops.jobs (sql/views/91_ops_maintenance.sql).
STORAGE_SQL = """
select object_name, chunk_count, compressed_chunk_count,
       pg_catalog.pg_size_pretty(total_bytes) as total_size,
       compression_saved_pct
from ops.hypertable_sizes
order by object_name not like 'telemetry.%', object_name
"""

JOBS_SQL = """
select job_id, job_kind, target_name, schedule_interval::text as every, scheduled,
       last_run_status, next_start, last_error
from ops.jobs
order by target_name, job_kind
"""


def read_status(url: str) -> dict[str, object]:
    with connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from ops.capabilities")
        capabilities = cur.fetchone() or {}
        cur.execute("select * from ops.overview")
        overview = cur.fetchone() or {}
        maintenance = cur.execute(
            "select to_regclass('ops.hypertable_sizes') is not null"
            " and to_regclass('ops.jobs') is not null as ready").fetchone()
        storage = cur.execute(STORAGE_SQL).fetchall() if maintenance["ready"] else []
        jobs = cur.execute(JOBS_SQL).fetchall() if maintenance["ready"] else []
    return {"capabilities": capabilities, "overview": overview, "storage": storage, "jobs": jobs}


def render_rows(rows: list[dict[str, object]], empty: str) -> str:
    if not rows:
        return empty
    return render(list(rows[0].keys()), [list(r.values()) for r in rows])


@click.command()
@database_url_option
@json_option
def status(database_url: str | None, as_json: bool) -> None:
    """Show the server's edition and features, headline counts, storage and jobs.

    Storage lists every hypertable and rollup with its chunks, size and how much compression
    saved; jobs lists refresh, compression and retention policies with their last and next
    run and last error (Community edition; none on Apache).

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
    for title in ("capabilities", "overview"):
        click.echo(f"== {title}")
        click.echo(render_record(report[title]))  # type: ignore[arg-type]
    click.echo("== storage")
    click.echo(render_rows(report["storage"], "(no hypertables)"))  # type: ignore[arg-type]
    click.echo("== jobs")
    click.echo(render_rows(report["jobs"],  # type: ignore[arg-type]
                           "(none: the Apache edition has no background jobs; run "
                           "`tsfleet refresh` to refresh rollups and apply retention)"))
