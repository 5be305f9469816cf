"""Quality views on a year of hourly data: server-default JIT vs jit=off, past windows, history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg

from bench.harness import BenchContext, Result, interleaved_medians

RUNS = 5
DAYS = 365

# Every device reports two metrics once an hour, each device with a silence of 3 days somewhere
# in the year and every tenth device (1, 11, ...) with a 2-day silence inside the last week (so
# quality.gaps has rows both in its default window and in past ones).
SETUP_SQL = [
    """
insert into telemetry.devices (tenant_id, device_key, device_type)
select 1, 'bench-q-' || lpad(d::text, 4, '0'), 'weather'
from generate_series(1, %(devices)s) as d
""",
    "insert into telemetry.metrics (metric_name) values ('temperature_c'), ('humidity_pct')",
    """
insert into ingest.batches (batch_id, source_kind, source_name, status)
values (1, 'bench', 'quality', 'committed')
""",
    """
insert into telemetry.readings (recorded_at, device_id, metric_id, value, quality, batch_id)
select
    g.t,
    d.device_id,
    m.metric_id,
    20 + 5 * sin(extract(epoch from g.t) / 43200.0) + d.device_id %% 7,
    'good',
    1
from telemetry.devices as d
cross join telemetry.metrics as m
cross join generate_series(
    %(end)s::timestamptz - %(days)s * interval '1 day', %(end)s::timestamptz - interval '1 hour',
    interval '1 hour'
) as g (t)
where
    not (
        g.t >= %(end)s::timestamptz - (10 + d.device_id * 37 %% 300) * interval '1 day'
        and g.t < %(end)s::timestamptz - (7 + d.device_id * 37 %% 300) * interval '1 day'
    )
    and not (
        d.device_id %% 10 = 1
        and g.t >= %(end)s::timestamptz - interval '4 days'
        and g.t < %(end)s::timestamptz - interval '2 days'
    )
""",
]

# History ends at the last full hour, so now()-based views see it as current data.
END = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _load(url: str, devices: int, days: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select public.alter_job(j.job_id, scheduled => false)"
                     " from timescaledb_information.jobs as j where j.job_id >= 1000")
        # Daily chunks, as the issue measured, whatever the schema's default (0046: 7 days).
        conn.execute("select set_chunk_time_interval('telemetry.readings', interval '1 day')")
        for statement in SETUP_SQL:
            conn.execute(statement, {"devices": devices, "end": END, "days": days})
        conn.execute("vacuum analyze telemetry.readings")
        conn.execute("call rollups.refresh()")
        conn.execute("analyze")
        row = conn.execute("select count(*) from timescaledb_information.chunks"
                           " where hypertable_name = 'readings'").fetchone()
    return int(row[0]) if row else 0


def _has_function(conn: psycopg.Connection, signature: str) -> bool:
    row = conn.execute("select to_regprocedure(%s) is not null", [signature]).fetchone()
    return bool(row and row[0])


def run(ctx: BenchContext) -> list[Result]:
    devices = ctx.scaled(100, minimum=5)
    gaps = "select count(*) from quality.gaps"
    with ctx.database() as year_url, ctx.database() as week_url:
        year_chunks = _load(year_url, devices, DAYS)
        week_chunks = _load(week_url, devices, 8)
        with psycopg.connect(year_url, autocommit=True) as year, \
                psycopg.connect(week_url, autocommit=True) as week, \
                psycopg.connect(year_url, autocommit=True) as year_jit_off:
            server_jit = year.execute("show jit").fetchone()
            year_jit_off.execute("set jit = off")
            for conn in (year, week, year_jit_off):
                conn.execute(gaps)  # warm caches
            default_ms, off_ms, week_ms = interleaved_medians(
                RUNS,
                lambda: year.execute(gaps).fetchone(),
                lambda: year_jit_off.execute(gaps).fetchone(),
                lambda: week.execute(gaps).fetchone(),
            )
            gap_rows = year.execute(gaps).fetchone()
            results = [
                Result(f"quality.gaps, 1 year stored, jit={server_jit[0] if server_jit else '?'}"
                       " (server default)", default_ms, "ms", off_ms,
                       "the same query with jit=off set in the session, same run",
                       "ratio <= 1.2"),
                Result("quality.gaps, 1 year stored, jit=off", off_ms, "ms", week_ms,
                       f"the same view with 8 days stored ({week_chunks} chunks vs"
                       f" {year_chunks})", "ratio <= 1.2"),
            ]
            if _has_function(year, "quality.gaps_between(timestamptz,timestamptz)"):
                past = ("select count(*) from quality.gaps_between(%s, %s)",
                        [END - timedelta(days=50), END - timedelta(days=43)])
                year.execute(*past)
                past_ms, view_ms = interleaved_medians(
                    RUNS, lambda: year.execute(*past).fetchone(),
                    lambda: year.execute(gaps).fetchone())
                past_rows = year.execute(*past).fetchone()
                results.append(Result(
                    "quality.gaps_between, 7 days 50 days ago", past_ms, "ms", view_ms,
                    "quality.gaps (the last 7 days), same run", "ratio <= 1.2"))
                results.append(Result("gaps found 50-43 days ago", float(past_rows[0]),
                                      "gaps"))
            else:
                print("  quality.gaps_between(timestamptz, timestamptz) is not in this tree:"
                      " past-window figure skipped")
            results.append(Result(f"gaps found in the last 7 days ({devices} devices x 2)",
                                  float(gap_rows[0]) if gap_rows else 0.0, "gaps"))
    return results
