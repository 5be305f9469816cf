"""Rollups: daily per-device aggregates from the rollup vs raw readings; raw compression ratio."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import psycopg

from bench.harness import BenchContext, Result, stopwatch

DAYS = 90
DEVICES = 1_000
STEP = "5 minutes"
RUNS = 3

# One day of readings for every device and both metrics, generated in SQL. Values look like
# sensor data: a daily cycle, a per-device offset, sensor jitter (uniform, +-NOISE/2 for
# temperature, +-NOISE for humidity) and the 0.1 resolution of the instruments. The jitter
# decides most of the compression ratio: see docs/analysts.md.
NOISE = 0.4
SLICE_SQL = """
insert into telemetry.readings (recorded_at, device_id, metric_id, value, quality, batch_id)
select
    g.t,
    d.device_id,
    m.metric_id,
    case when m.metric_name = 'temperature_c'
        then round((20 + 5 * sin(2 * pi() * extract(epoch from g.t) / 86400)
                    + mod(d.device_id, 7) + %(noise)s * (random() - 0.5))::numeric, 1)::float8
        else round((60 - 10 * sin(2 * pi() * extract(epoch from g.t) / 86400)
                    + mod(d.device_id, 11) + 2 * %(noise)s * (random() - 0.5))::numeric, 1)::float8
    end,
    'good',
    %(batch)s
from generate_series(%(day)s::timestamptz, %(day)s::timestamptz + interval '1 day'
                     - interval '1 second', %(step)s::interval) as g (t)
cross join telemetry.devices as d
cross join telemetry.metrics as m
where m.metric_name in ('temperature_c', 'humidity_pct')
"""

# {where} is empty (the whole fleet) or one device's filter. Both are folded into one row on
# the server (every column used, so nothing is optimised away): what is timed is producing the
# daily aggregates, not shipping the same rows to the client twice.
ROLLUP_QUERY = """
select count(*), sum(q.value_min + q.value_max + q.value_avg + q.reading_count)
from (
    select bucket_start, device_id, metric_id, value_min, value_max, value_avg, reading_count
    from rollups.device_metrics_daily {where}
) as q
"""

RAW_QUERY = """
select count(*), sum(q.value_min + q.value_max + q.value_avg + q.reading_count)
from (
    select public.time_bucket(interval '1 day', recorded_at) as bucket_start, device_id,
           metric_id, min(value) as value_min, max(value) as value_max,
           avg(value) as value_avg, count(*) as reading_count
    from telemetry.readings {where}
    group by 1, 2, 3
) as q
"""
ONE_DEVICE = "where device_id = %(device)s"


def best_of(conn: psycopg.Connection, query: str,
            params: dict[str, object]) -> tuple[float, tuple[int, float]]:
    """Median wall time (ms) of RUNS executions after one warm-up, and the (rows, checksum)."""
    row = conn.execute(query, params or None).fetchone()
    rows = (int(row[0]), round(float(row[1] or 0), 3))
    times = []
    for _ in range(RUNS):
        with stopwatch() as box:
            conn.execute(query, params or None).fetchall()
        times.append(box["seconds"] * 1000)
    return statistics.median(times), rows


def generate(conn: psycopg.Connection, devices: int) -> tuple[int, float]:
    conn.execute("select setseed(0.42)")
    conn.execute("insert into telemetry.devices (tenant_id, device_key)"
                 " select 1, 'bench-' || lpad(n::text, 5, '0')"
                 " from generate_series(1, %s) as n", [devices])
    conn.execute("insert into telemetry.metrics (metric_name) values ('temperature_c'),"
                 " ('humidity_pct') on conflict (metric_name) do nothing")
    batch = conn.execute("insert into ingest.batches (source_kind, source_name, status)"
                         " values ('bench', 'bench_rollups', 'committed') returning batch_id"
                         ).fetchone()[0]
    start = conn.execute("select date_trunc('day', now()) - %s * interval '1 day'",
                         [DAYS]).fetchone()[0]
    began = time.perf_counter()
    for n in range(DAYS):  # daily slices: one chunk per statement, bounded memory
        conn.execute(SLICE_SQL, {"batch": batch, "step": STEP, "noise": NOISE,
                                 "day": start + timedelta(days=n)})
    conn.execute("analyze telemetry.readings")
    rows = conn.execute("select count(*) from telemetry.readings").fetchone()[0]
    return rows, time.perf_counter() - began


def run(ctx: BenchContext) -> list[Result]:
    devices = ctx.scaled(DEVICES, minimum=5)
    results: list[Result] = []
    with ctx.database() as url, psycopg.connect(url, autocommit=True) as conn:
        community = conn.execute(
            "select current_setting('timescaledb.license', true) = 'timescale'").fetchone()[0]
        if community:  # the benchmark drives refresh and compression itself
            conn.execute("select public.alter_job(job_id, scheduled => false)"
                         " from timescaledb_information.jobs where job_id >= 1000")
        rows, load_s = generate(conn, devices)
        print(f"  generated {rows:,} readings ({devices} devices x {DAYS} days x 2 metrics "
              f"every {STEP}, jitter {NOISE}) in {load_s:.1f} s")
        with stopwatch() as box:
            conn.execute("call rollups.refresh()")
        print(f"  rollups.refresh() over the whole history: {box['seconds']:.1f} s")
        conn.execute("analyze")
        # JIT compiles one partial aggregate per chunk (minutes of compile time on 90 chunks
        # where it is enabled): it would inflate the raw baseline, so both sides run without.
        conn.execute("set jit = off")

        rollup_ms, rollup_rows = best_of(conn, ROLLUP_QUERY.format(where=""), {})
        raw_ms, raw_rows = best_of(conn, RAW_QUERY.format(where=""), {})
        assert rollup_rows[0] == raw_rows[0], (rollup_rows, raw_rows)
        assert abs(rollup_rows[1] - raw_rows[1]) <= 1e-6 * abs(raw_rows[1]) + 1e-3
        results.append(Result(
            f"daily aggregate, {devices} devices x {DAYS} d, from rollup", rollup_ms, "ms",
            baseline=raw_ms, baseline_name="same aggregate computed from raw readings",
            target="ratio <= 0.02 (>= 50x faster)"))
        results.append(Result("speedup fleet-wide (raw / rollup)", raw_ms / rollup_ms, "x",
                              target=">= 50x"))
        one = {"device": 1}
        one_rollup_ms, _ = best_of(conn, ROLLUP_QUERY.format(where=ONE_DEVICE), one)
        one_raw_ms, _ = best_of(conn, RAW_QUERY.format(where=ONE_DEVICE), one)
        results.append(Result(
            f"daily aggregate, 1 device x {DAYS} d, from rollup", one_rollup_ms, "ms",
            baseline=one_raw_ms, baseline_name="same aggregate computed from raw readings"))
        results.append(Result("speedup one device (raw / rollup)", one_raw_ms / one_rollup_ms,
                              "x"))

        if not community:
            print("  compression ratio: skipped (TimescaleDB Apache edition has no "
                  "compression; run with BENCH_DATABASE_URL pointing at a Community server)")
            return results
        before = conn.execute("select total_bytes from public.hypertable_detailed_size("
                              "'telemetry.readings')").fetchone()[0]
        with stopwatch() as box:
            conn.execute("select public.compress_chunk(c, if_not_compressed => true)"
                         " from public.show_chunks('telemetry.readings') as c")
        stats = conn.execute(
            "select before_compression_total_bytes, after_compression_total_bytes"
            " from public.hypertable_compression_stats('telemetry.readings')").fetchone()
        after = conn.execute("select total_bytes from public.hypertable_detailed_size("
                             "'telemetry.readings')").fetchone()[0]
        print(f"  compressed every chunk in {box['seconds']:.1f} s; readings hypertable "
              f"{before:,} -> {after:,} bytes on disk; chunk data {stats[0]:,} -> "
              f"{stats[1]:,} bytes ({100 - 100 * stats[1] / stats[0]:.1f}% smaller)")
        results.append(Result(
            "raw readings after compression", stats[1] / 1e6, "MB",
            baseline=stats[0] / 1e6, baseline_name="the same chunks before compression",
            target="ratio <= 0.10 (>= 90% smaller)"))
    return results
