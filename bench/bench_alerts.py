"""Alert evaluation (alerts.evaluate) and a full runner cycle: 1 year of history vs 1 day."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import psycopg

from bench.harness import BenchContext, Result, interleaved_medians
from loader.alerts.runner import Runner, RunnerConfig
from loader.alerts.sinks import StdoutSink

RUNS = 7
TARGET_MS = 200.0
HISTORY_DAYS = 365

SETUP_SQL = [
    """
insert into telemetry.devices (tenant_id, device_key, device_type, nominal_interval,
                               last_reading_at)
select 1, 'bench-gh-' || lpad(d::text, 4, '0'), 'greenhouse', interval '1 minute',
       %(end)s::timestamptz
from generate_series(1, %(devices)s) as d
""",
    "insert into telemetry.metrics (metric_name) values ('temperature_c'), ('humidity_pct')",
    """
insert into ingest.batches (batch_id, source_kind, source_name, status)
values (1, 'bench', 'alerts', 'committed')
""",
]

# The last day, dense: every device, both metrics, one reading a minute; temperature follows a
# daily cycle, 1 in 500 readings is flagged, and device 7 runs hot (so alerts do fire).
DAY_SQL = """
insert into telemetry.readings (recorded_at, device_id, metric_id, value, quality, batch_id)
select
    %(day)s::timestamptz + g * interval '1 minute',
    d.device_id,
    m.metric_id,
    case m.metric_name
        when 'temperature_c' then 20 + 8 * sin(g / 229.0) + (d.device_id = 7)::int * 30
        else 60 + 10 * cos(g / 229.0)
    end,
    case when (g + d.device_id) %% 500 = 0 then 'suspect' else 'good' end,
    1
from telemetry.devices as d
cross join telemetry.metrics as m
cross join generate_series(0, 1439) as g
"""


# The days before it, sparse (the history is about daily chunks, not volume, and builds in
# seconds): one reading per device every 2 hours, the metrics taking turns.
SPARSE_SQL = """
insert into telemetry.readings (recorded_at, device_id, metric_id, value, quality, batch_id)
select
    %(start)s::timestamptz + g * interval '2 hours',
    d.device_id,
    m.metric_id,
    case m.metric_name when 'temperature_c' then 20 + 8 * sin(g / 12.0) else 60 end,
    'good',
    1
from telemetry.devices as d
cross join telemetry.metrics as m
cross join generate_series(0, %(steps)s - 1) as g
where (g + m.metric_id) %% 2 = 0
"""


# History ends now (to the minute), so now()-based views see it as current data.
END = datetime.now(timezone.utc).replace(second=0, microsecond=0)


def _day(days_before_end: int) -> str:
    return (END - timedelta(days=days_before_end)).isoformat()


def _load(url: str, devices: int, days: int) -> int:
    """The last day dense, the `days - 1` before it sparse; returns the readings' chunks."""
    with psycopg.connect(url, autocommit=True) as conn:
        # Community: keep background jobs (compression policy) out of the measurement.
        conn.execute("select public.alter_job(j.job_id, scheduled => false)"
                     " from timescaledb_information.jobs as j where j.job_id >= 1000")
        # Daily chunks, as the issue measured, whatever the schema's default (0046: 7 days).
        conn.execute("select set_chunk_time_interval('telemetry.readings', interval '1 day')")
        for statement in SETUP_SQL:
            conn.execute(statement, {"devices": devices, "end": END})
        if days > 1:
            conn.execute(SPARSE_SQL, {"start": _day(days), "steps": (days - 1) * 12})
        conn.execute(DAY_SQL, {"day": _day(1)})
        conn.execute("vacuum analyze telemetry.readings")
        conn.execute("analyze")
        if conn.execute("select to_regprocedure('rollups.refresh(timestamptz,timestamptz)')"
                        " is not null").fetchone()[0]:
            conn.execute("call rollups.refresh()")
        row = conn.execute("select count(*) from timescaledb_information.chunks"
                           " where hypertable_name = 'readings'").fetchone()
    return int(row[0]) if row else 0


def _open_alerts(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("select count(*) from alerts.episodes where ended_at is null"
                           ).fetchone()
    return int(row[0]) if row else 0


def run(ctx: BenchContext) -> list[Result]:
    devices = ctx.scaled(1000, minimum=10)
    with ctx.database() as url1, ctx.database() as url_year:
        day_chunks = _load(url1, devices, 1)
        year_chunks = _load(url_year, devices, HISTORY_DAYS)
        # Whatever alerts.evaluate this tree has (its signature is evaluate(timestamptz)).
        evaluate = "select count(*) from alerts.evaluate(%s)"
        with psycopg.connect(url1, autocommit=True) as c1, \
                psycopg.connect(url_year, autocommit=True) as cy:
            for conn in (c1, cy):  # warm-up: first evaluation creates the episodes
                conn.execute(evaluate, [END])
            eval_day, eval_year = interleaved_medians(
                RUNS, lambda: c1.execute(evaluate, [END]), lambda: cy.execute(evaluate, [END]))
        runners = [Runner(RunnerConfig(database_url=u, sinks=[StdoutSink(io.StringIO())]),
                          log=lambda *_a, **_k: None, clock=lambda: END)
                   for u in (url1, url_year)]
        for runner in runners:
            runner.cycle()
        cycle_day, cycle_year = interleaved_medians(RUNS, runners[0].cycle, runners[1].cycle)
        for runner in runners:
            runner.close()
        open_alerts = _open_alerts(url_year)
    label = f"{devices} dev x 2 metrics"
    history = (f"1 year: {year_chunks} daily chunks, sparse but for the last day, vs"
               f" {day_chunks}")
    return [
        Result(f"evaluate, 1 day ({label}, 1/min)", eval_day, "ms",
               target=f"< {TARGET_MS:.0f} ms"),
        Result(f"evaluate, 1 year ({label})", eval_year, "ms", baseline=eval_day,
               baseline_name=f"alerts.evaluate with 1 day of history, same run, interleaved"
                             f" ({history})",
               target=f"ratio <= 1.2 and < {TARGET_MS:.0f} ms"),
        Result("runner cycle, 1 day", cycle_day, "ms"),
        Result("runner cycle, 1 year", cycle_year, "ms", baseline=cycle_day,
               baseline_name="runner cycle (refresh last hour + evaluate + deliver), 1 day",
               target="ratio <= 1.2"),
        Result("open alerts after evaluation (1 year)", float(open_alerts), "alerts"),
    ]
