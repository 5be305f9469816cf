"""Alert evaluation (alerts.evaluate) and a full runner cycle, with 1 vs 7 days of history."""

from __future__ import annotations

import io
import statistics
import time
from datetime import datetime, timedelta, timezone

import psycopg

from bench.harness import BenchContext, Result
from loader.alerts.runner import Runner, RunnerConfig
from loader.alerts.sinks import StdoutSink

RUNS = 7
TARGET_MS = 200.0

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

# One day of readings: every device, both metrics, one reading a minute; temperature follows a
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


# History ends now (to the minute), so now()-based views see it as current data.
END = datetime.now(timezone.utc).replace(second=0, microsecond=0)


def _day(days_before_end: int) -> str:
    return (END - timedelta(days=days_before_end)).isoformat()


def _load(url: str, devices: int, days: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        # Community: keep background jobs (compression policy) out of the measurement.
        conn.execute("select public.alter_job(j.job_id, scheduled => false)"
                     " from timescaledb_information.jobs as j where j.job_id >= 1000")
        for statement in SETUP_SQL:
            conn.execute(statement, {"devices": devices, "end": END})
        for day in range(days, 0, -1):
            conn.execute(DAY_SQL, {"day": _day(day)})
        conn.execute("vacuum analyze telemetry.readings")
        conn.execute("analyze")
        if conn.execute("select to_regprocedure('rollups.refresh(timestamptz,timestamptz)')"
                        " is not null").fetchone()[0]:
            conn.execute("call rollups.refresh()")


def _open_alerts(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("select count(*) from alerts.episodes where ended_at is null"
                           ).fetchone()
    return int(row[0]) if row else 0


def _interleaved(measure_one, measure_seven) -> tuple[float, float]:
    """Median of RUNS measurements of each, taken alternately so machine load hits both."""
    ones, sevens = [], []
    for _ in range(RUNS):
        ones.append(measure_one())
        sevens.append(measure_seven())
    return statistics.median(ones), statistics.median(sevens)


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def run(ctx: BenchContext) -> list[Result]:
    devices = ctx.scaled(1000, minimum=10)
    with ctx.database() as url1, ctx.database() as url7:
        _load(url1, devices, 1)
        _load(url7, devices, 7)
        with psycopg.connect(url1, autocommit=True) as c1, \
                psycopg.connect(url7, autocommit=True) as c7:
            evaluate = "select count(*) from alerts.evaluate(%s)"
            for conn in (c1, c7):  # warm-up: first evaluation creates the episodes
                conn.execute(evaluate, [END])
            eval_one, eval_seven = _interleaved(
                lambda: _timed(lambda: c1.execute(evaluate, [END])),
                lambda: _timed(lambda: c7.execute(evaluate, [END])))
        runners = [Runner(RunnerConfig(database_url=u, sinks=[StdoutSink(io.StringIO())]),
                          log=lambda *_a, **_k: None, clock=lambda: END) for u in (url1, url7)]
        for runner in runners:
            runner.cycle()
        cycle_one, cycle_seven = _interleaved(lambda: _timed(runners[0].cycle),
                                              lambda: _timed(runners[1].cycle))
        for runner in runners:
            runner.close()
        open_alerts = _open_alerts(url7)
    label = f"{devices} dev x 2 metrics, 1/min"
    return [
        Result(f"evaluate, 1 day ({label})", eval_one, "ms", target=f"< {TARGET_MS:.0f} ms"),
        Result(f"evaluate, 7 days ({label})", eval_seven, "ms", baseline=eval_one,
               baseline_name="alerts.evaluate with 1 day of history, same run, interleaved",
               target=f"ratio <= 1.5 and < {TARGET_MS:.0f} ms"),
        Result("runner cycle, 1 day", cycle_one, "ms"),
        Result("runner cycle, 7 days", cycle_seven, "ms", baseline=cycle_one,
               baseline_name="runner cycle (refresh last hour + evaluate + deliver), 1 day",
               target="ratio <= 1.5"),
        Result("open alerts after evaluation (7 days)", float(open_alerts), "alerts"),
    ]
