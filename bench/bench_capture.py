"""Capture 288 bins x 50 series (a day at 5 min): wall time and peak memory of the process."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.harness import BenchContext, Result

METRICS = ("temperature_c", "humidity_pct", "power_w", "current_a", "vibration_mm_s")
START, END = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
RUNS = 3

# One reading a minute per series for the day (1,440 per series), with a 20-minute hole in
# every seventh series, so gap detection and filling have work to do.
DATA_SQL = [
    """
insert into telemetry.devices (tenant_id, device_key, nominal_interval)
select 1, 'bench-dev-' || lpad(d::text, 3, '0'), interval '1 minute'
from generate_series(1, %(devices)s) as d
""",
    """
insert into telemetry.metrics (metric_name, unit)
select m, null from unnest(%(metrics)s::text[]) as m
on conflict (metric_name) do nothing
""",
    """
insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
select timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute', d.device_id, m.metric_id,
       20 + sin(g / 60.0 + d.device_id) * 5 + m.metric_id * 0.1, 0
from telemetry.devices as d
cross join telemetry.metrics as m
cross join generate_series(0, 1439) as g
where d.device_key like 'bench-dev-%%' and m.metric_name = any(%(metrics)s)
  and not ((d.device_id + m.metric_id) %% 7 = 0 and g between 600 and 619)
""",
]

BASELINE_CODE = """
import sys
import psycopg
url, out = sys.argv[1], sys.argv[2]
devices, metrics = sys.argv[3].split(","), sys.argv[4].split(",")
query = (
    "copy (select recorded_at, device_key, metric_name, value from telemetry.readings_named"
    " where device_key = any(%s) and metric_name = any(%s)"
    " and recorded_at >= '2026-01-01T00:00:00Z' and recorded_at < '2026-01-02T00:00:00Z'"
    " order by 2, 3, 1) to stdout with (format csv)"
)
with psycopg.connect(url) as conn, conn.cursor() as cur, open(out, "wb") as sink:
    with cur.copy(query, (devices, metrics)) as copy:
        for block in copy:
            sink.write(block)
"""


def _timed(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process."""
    began = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed: {stderr}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _sql_seconds(url: str, keys: list[str]) -> float:
    """Median time of the two SQL calls a capture makes (server work, no process start)."""
    from loader.capture.grid import read_grid, read_source_summary
    from loader.capture.request import CaptureRequest

    request = CaptureRequest.build(devices=keys, metrics=list(METRICS), start=START, end=END,
                                   bin_text="5m", fill="hold")
    times = []
    with psycopg.connect(url) as conn:
        for _ in range(RUNS):
            began = time.perf_counter()
            read_grid(conn, request)
            read_source_summary(conn, request)
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def run(ctx: BenchContext) -> list[Result]:
    devices = max(1, ctx.scaled(50) // len(METRICS))
    series = devices * len(METRICS)
    with ctx.database() as url, tempfile.TemporaryDirectory() as scratch:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in DATA_SQL:
                conn.execute(statement, {"devices": devices, "metrics": list(METRICS)})
            conn.execute("analyze telemetry.readings")
        keys = ",".join(f"bench-dev-{d:03d}" for d in range(1, devices + 1))
        capture_times: list[float] = []
        capture_cpu: list[float] = []
        capture_rss: list[float] = []
        raw_times: list[float] = []
        raw_cpu: list[float] = []
        raw_rss: list[float] = []
        for attempt in range(RUNS):
            out = Path(scratch) / f"bundle-{attempt}"
            seconds, cpu, rss = _timed([
                sys.executable, "-c", "from loader.cli import main; main()", "capture",
                "--database-url", url, "--devices", keys, "--metrics", ",".join(METRICS),
                "--start", START, "--end", END, "--bin", "5m", "--fill", "hold",
                "--out", str(out),
            ])
            capture_times.append(seconds)
            capture_cpu.append(cpu)
            capture_rss.append(rss)
            seconds, cpu, rss = _timed([
                sys.executable, "-c", BASELINE_CODE, url, str(Path(scratch) / f"raw-{attempt}"),
                keys, ",".join(METRICS),
            ])
            raw_times.append(seconds)
            raw_cpu.append(cpu)
            raw_rss.append(rss)
        sql_times = _sql_seconds(url, keys.split(","))
        files = len(list((Path(scratch) / "bundle-0").rglob("*.csv")))
        assert files == series, f"expected {series} CSV files, found {files}"
    baseline = f"raw COPY of the same {series * 1440:,} readings to one CSV (subprocess)"
    return [
        Result(f"capture {series} series x 288 bins, median of {RUNS}",
               statistics.median(capture_times) * 1000, "ms",
               baseline=statistics.median(raw_times) * 1000, baseline_name=baseline,
               target="< 2000 ms"),
        Result("capture CPU time (user+sys), median",
               statistics.median(capture_cpu) * 1000, "ms",
               baseline=statistics.median(raw_cpu) * 1000, baseline_name=baseline),
        Result("SQL alone: both calls in turn, in-process, median", sql_times * 1000, "ms"),
        Result("capture peak RSS of the process", max(capture_rss), "MB",
               baseline=max(raw_rss), baseline_name=baseline, target="< 150 MB"),
    ]
