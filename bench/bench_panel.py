"""One device's metric over 24 h (a Grafana panel) at fleet scale, by index; the loader's cost."""

from __future__ import annotations

import os
import random
import statistics
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

from bench.bench_ingest import TSFLEET, timed, write_narrow_csv
from bench.harness import BenchContext, Result, timed_ms

RUNS = 9
LOAD_ROUNDS = 2
METRICS = ("temperature_c", "humidity_pct", "pressure_hpa", "battery_pct")
# Migration 0068 (the lead's, issue 13 item 8) adds this index; until it lands here the bench
# creates it, so the figures show the schema to come.
FUTURE_INDEX = "readings_device_id_recorded_at_metric_id_idx"
FUTURE_INDEX_SQL = (f"create index if not exists {FUTURE_INDEX}"
                    " on telemetry.readings (device_id, recorded_at, metric_id)")
IDEAL_INDEX_SQL = ("create index readings_device_id_metric_id_recorded_at_idx"
                   " on telemetry.readings (device_id, metric_id, recorded_at)")

# 24 hours of 10-second readings of every device and metric, in time order.
LOAD_SQL = [
    """
insert into telemetry.devices (tenant_id, device_key, device_type)
select 1, 'bench-p-' || lpad(d::text, 4, '0'), 'greenhouse'
from generate_series(1, %(devices)s) as d
""",
    "insert into telemetry.metrics (metric_name) select unnest(%(metrics)s::text[])",
    """
insert into ingest.batches (batch_id, source_kind, source_name, status)
values (1, 'bench', 'panel', 'committed')
""",
    """
insert into telemetry.readings (recorded_at, device_id, metric_id, value, quality, batch_id)
select
    %(start)s::timestamptz + g.n * interval '10 seconds',
    d.device_id,
    m.metric_id,
    20 + 5 * sin(g.n / 360.0 + d.device_id) + m.metric_id,
    'good',
    1
from generate_series(0, 8639) as g (n)
cross join telemetry.devices as d
cross join telemetry.metrics as m
""",
]

# What a Grafana time-series panel of one device's metric sends ($__timeFilter, 1-minute
# $__timeGroup), through the readable view.
PANEL_SQL = """
select public.time_bucket(interval '1 minute', rn.recorded_at) as "time", avg(rn.value) as value
from telemetry.readings_named as rn
where
    rn.device_key = %(device)s and rn.metric_name = %(metric)s
    and rn.recorded_at between %(start)s and %(end)s
group by 1
order by 1
"""

END = datetime(2026, 6, 2, tzinfo=timezone.utc)
START = END - timedelta(days=1)


def _index_exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("select to_regclass(%s) is not null", [f"telemetry.{name}"]).fetchone()
    return bool(row and row[0])


def _panel_ms(conn: psycopg.Connection, devices: int) -> tuple[float, int]:
    """Median ms of the panel query for RUNS devices (the same devices in every phase)."""
    picks = random.Random(13).sample(range(1, devices + 1), min(RUNS, devices))
    samples, rows = [], []
    for device in picks:
        params = {"device": f"bench-p-{device:04d}", "metric": METRICS[device % len(METRICS)],
                  "start": START, "end": END}
        samples.append(timed_ms(
            lambda p=params: rows.append(len(conn.execute(PANEL_SQL, p).fetchall()))))
    return statistics.median(samples), min(rows)


def _panel_results(ctx: BenchContext, devices: int) -> list[Result]:
    with ctx.database() as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select public.alter_job(j.job_id, scheduled => false)"
                     " from timescaledb_information.jobs as j where j.job_id >= 1000")
        for statement in LOAD_SQL:
            conn.execute(statement, {"devices": devices, "metrics": list(METRICS),
                                     "start": START})
        conn.execute("vacuum analyze telemetry.readings")
        in_schema = _index_exists(conn, FUTURE_INDEX)
        if in_schema:
            conn.execute(f"drop index telemetry.{FUTURE_INDEX}")
        time_only_ms, rows = _panel_ms(conn, devices)
        conn.execute(FUTURE_INDEX_SQL)
        conn.execute("analyze telemetry.readings")
        future_ms, _ = _panel_ms(conn, devices)
        conn.execute(f"drop index telemetry.{FUTURE_INDEX}")
        conn.execute(IDEAL_INDEX_SQL)
        conn.execute("analyze telemetry.readings")
        ideal_ms, ideal_rows = _panel_ms(conn, devices)
        assert rows == ideal_rows == 1440, (rows, ideal_rows)
    origin = "in the schema" if in_schema else "created by the bench: migration 0068 not here yet"
    ideal = "the same query with only (device_id, metric_id, recorded_at) besides the key"
    label = f"{devices} dev x {len(METRICS)} metrics x 10 s, 24 h"
    return [
        Result(f"panel, time-led key only ({label})", time_only_ms, "ms", ideal_ms, ideal,
               "the schema before 0068"),
        Result(f"panel, + {FUTURE_INDEX}", future_ms, "ms", ideal_ms, ideal, origin),
        Result("panel, ideal per-series index", ideal_ms, "ms"),
    ]


def _load_seconds(ctx: BenchContext, csv_path: Path, with_index: bool) -> float:
    with ctx.database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            if with_index:
                conn.execute(FUTURE_INDEX_SQL)
            else:
                conn.execute(f"drop index if exists telemetry.{FUTURE_INDEX}")
        seconds, _, _ = timed([TSFLEET, "load", "csv", str(csv_path)],
                              {**os.environ, "DATABASE_URL": url})
    return seconds


def _loader_results(ctx: BenchContext) -> list[Result]:
    rows = ctx.scaled(1_000_000, minimum=20_000)
    with tempfile.TemporaryDirectory(prefix="tsfleet-bench-panel-") as tmp:
        csv_path = Path(tmp) / "narrow.csv"
        rows = write_narrow_csv(csv_path, rows, min(1000, max(10, rows // 200)))
        without, with_index = [], []
        for _ in range(LOAD_ROUNDS):
            without.append(_load_seconds(ctx, csv_path, with_index=False))
            with_index.append(_load_seconds(ctx, csv_path, with_index=True))
    without_rate = rows / statistics.median(without)
    with_rate = rows / statistics.median(with_index)
    return [Result(f"tsfleet load csv, + {FUTURE_INDEX}", with_rate, "rows/s", without_rate,
                   f"the same {rows:,} rows without that index (median of {LOAD_ROUNDS},"
                   " alternating)", "the index's cost to the loader")]


def run(ctx: BenchContext) -> list[Result]:
    devices = ctx.scaled(1000, minimum=20)
    return _panel_results(ctx, devices) + _loader_results(ctx)
