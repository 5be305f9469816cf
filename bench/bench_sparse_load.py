"""Sparse history: the same readings spread over one year vs packed into one day, loaded alike."""

from __future__ import annotations

import json
import os
import random
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import median

import psycopg

from bench.bench_ingest import TSFLEET, timed
from bench.harness import BenchContext, Result

READINGS = 7_000  # the case: 7,000 hourly readings spanning 311 days took 14-24 s
ROUNDS = 3
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def write_csv(path: Path, stamps: list[datetime]) -> None:
    """One device, one metric: only the spread over time differs between the two files."""
    with open(path, "w", encoding="utf-8") as out:
        out.write("time,device,metric,value\n")
        for n, stamp in enumerate(stamps):
            out.write(f"{stamp.strftime('%Y-%m-%dT%H:%M:%SZ')},meter-1,power_w,"
                      f"{(n * 37) % 1000 / 10:.1f}\n")


def year_stamps(count: int) -> list[datetime]:
    """count distinct hours of one year, drawn at random (seeded): gaps of hours to days."""
    hours = sorted(random.Random(14).sample(range(365 * 24), count))
    return [START + timedelta(hours=h, minutes=17) for h in hours]


def day_stamps(count: int) -> list[datetime]:
    step = timedelta(days=1) / count
    return [START + step * n for n in range(count)]


def load_once(ctx: BenchContext, path: Path, readings: int) -> tuple[float, float, int]:
    """(seconds of `tsfleet load csv`, its refresh_seconds, hourly rollup rows) in a fresh
    database."""
    with ctx.database() as url:
        with psycopg.connect(url, autocommit=True) as conn:  # the benchmark, not the policies
            conn.execute("select public.alter_job(job_id, scheduled => false)"
                         " from timescaledb_information.jobs where job_id >= 1000")
        seconds, _, out = timed([TSFLEET, "load", "csv", str(path), "--json"],
                                {**os.environ, "DATABASE_URL": url})
        report = json.loads(out[out.index("{"):])
        with psycopg.connect(url) as conn:
            row = conn.execute("select count(*) from rollups.device_metrics_hourly").fetchone()
    assert report["totals"]["rows_inserted"] == readings, out
    return seconds, report["totals"]["refresh_seconds"], int(row[0]) if row else 0


def run(ctx: BenchContext) -> list[Result]:
    readings = ctx.scaled(READINGS, minimum=100)
    with tempfile.TemporaryDirectory(prefix="tsfleet-bench-sparse-") as tmp:
        year_csv, day_csv = Path(tmp) / "year.csv", Path(tmp) / "day.csv"
        write_csv(year_csv, year_stamps(readings))
        write_csv(day_csv, day_stamps(readings))
        year_runs, day_runs = [], []
        for _ in range(ROUNDS):  # alternating, so both see the same machine
            year_runs.append(load_once(ctx, year_csv, readings))
            day_runs.append(load_once(ctx, day_csv, readings))
    year_s, day_s = median(r[0] for r in year_runs), median(r[0] for r in day_runs)
    year_refresh, day_refresh = (median(r[1] for r in year_runs),
                                 median(r[1] for r in day_runs))
    assert year_runs[0][2] == readings, year_runs  # every hour has its hourly rollup row
    baseline = f"the same {readings:,} readings within one day (median of {ROUNDS})"
    return [
        Result(f"load {readings:,} readings spread over a year", year_s, "s", day_s, baseline,
               "ratio <= 3"),
        Result("  of which the rollup refresh", year_refresh, "s", day_refresh,
               "the refresh of the one-day load"),
    ]
