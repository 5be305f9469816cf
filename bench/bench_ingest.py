"""tsfleet load of narrow CSV readings vs psql's raw \\copy of the same rows, side by side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import median

import psycopg

from bench.harness import BenchContext, Result

DEVICES = 1_000
METRICS = ("temperature_c", "humidity_pct")
TSFLEET = str(Path(sys.executable).parent / "tsfleet")


def write_narrow_csv(path: Path, rows: int, devices: int) -> int:
    """Time-ordered narrow readings: every device reports every metric each minute."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    written = step = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write("time,device,metric,value\n")
        while written < rows:
            stamp = (start + timedelta(minutes=step)).strftime("%Y-%m-%dT%H:%M:%SZ")
            lines = []
            for device in range(devices):
                for metric in METRICS:
                    lines.append(f"{stamp},dev-{device:04d},{metric},"
                                 f"{(device * 7 + step) % 1000 / 10:.1f}\n")
            take = min(len(lines), rows - written)
            out.writelines(lines[:take])
            written += take
            step += 1
    return written


def write_id_tsv(csv_path: Path, tsv_path: Path) -> None:
    """The same rows with device and metric ids (for \\copy straight into readings)."""
    metric_ids = {name: number for number, name in enumerate(METRICS, start=1)}
    with open(csv_path, encoding="utf-8") as src, open(tsv_path, "w", encoding="utf-8") as out:
        next(src)
        for line in src:
            stamp, device, metric, value = line.rstrip("\n").split(",")
            out.write(f"{stamp}\t{int(device[4:]) + 1}\t{metric_ids[metric]}\t{value}\tgood\t1\n")


# Runs the command from a small Python process and prints that process's children's peak RSS:
# a child forked from the bench itself (large, it holds the generated data) would count the
# bench's pages in its ru_maxrss before its exec and hide the loader's own peak.
PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]);"
            " open(sys.argv[1], 'w').write(str(resource.getrusage("
            "resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)")


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, output) of one child process."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        process = subprocess.run([sys.executable, "-c", PEAK_RSS, rss.name, *command], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{process.stdout}")
        return seconds, int(rss.read() or 0) / 1024, process.stdout


def psql(url: str, *commands: str) -> list[str]:
    psql_bin = shutil.which("psql") or "psql"
    args = [psql_bin, url, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    for command in commands:
        args += ["-c", command]
    return args


ROUNDS = 3  # raw copy and first load alternate; medians (one run varies by a quarter here)


def raw_copy_seconds(ctx: BenchContext, csv_path: Path) -> float:
    with ctx.database(migrated=False) as raw_url:
        with psycopg.connect(raw_url, autocommit=True) as conn:
            conn.execute("create table raw_readings (recorded_at timestamptz,"
                         " device text, metric text, value double precision)")
        seconds, _, _ = timed(psql(
            raw_url, f"\\copy raw_readings from '{csv_path}' with (format csv, header)"))
    return seconds


def run(ctx: BenchContext) -> list[Result]:
    rows = ctx.scaled(2_000_000, minimum=20_000)
    devices = min(DEVICES, max(10, rows // 200))
    with tempfile.TemporaryDirectory(prefix="tsfleet-bench-ingest-") as tmp:
        csv_path = Path(tmp) / "narrow.csv"
        tsv_path = Path(tmp) / "narrow_ids.tsv"
        rows = write_narrow_csv(csv_path, rows, devices)
        write_id_tsv(csv_path, tsv_path)

        raw_runs, load_runs, refresh_runs, rss_runs = [], [], [], []
        for round_no in range(ROUNDS):
            raw_runs.append(raw_copy_seconds(ctx, csv_path))
            with ctx.database() as url:
                env = {**os.environ, "DATABASE_URL": url}
                load_seconds, load_rss, first_out = timed(
                    [TSFLEET, "load", "csv", str(csv_path), "--json"], env)
                load_runs.append(load_seconds)
                rss_runs.append(load_rss)
                refresh_runs.append(json.loads(first_out[first_out.index("{"):])[
                    "batches"][0]["refresh_seconds"])
                if round_no:
                    continue
                # Once: the same file again (checksum registry), then every row a duplicate.
                skip_seconds, _, skip_out = timed([TSFLEET, "load", "csv", str(csv_path)], env)
                dup_seconds, dup_rss, dup_out = timed(
                    [TSFLEET, "load", "csv", str(csv_path), "--force"], env)
                with psycopg.connect(url) as conn:
                    stored = conn.execute("select count(*) from telemetry.readings").fetchone()
                assert stored is not None and stored[0] == rows, (stored, first_out)
                assert "skipped" in skip_out and f"duplicates {rows}" in dup_out, dup_out

        with ctx.database() as ids_url:
            with psycopg.connect(ids_url, autocommit=True) as conn:
                conn.execute("insert into telemetry.devices (tenant_id, device_key)"
                             " select 1, format('dev-%%s', lpad(n::text, 4, '0'))"
                             " from generate_series(0, %s - 1) as n", [devices])
                conn.execute("insert into telemetry.metrics (metric_name)"
                             " select unnest(%s::text[])", [list(METRICS)])
            ceiling_seconds, _, _ = timed(psql(
                ids_url, f"\\copy telemetry.readings from '{tsv_path}'"))

    raw_seconds, load_seconds = median(raw_runs), median(load_runs)
    ratios = sorted(raw / load for raw, load in zip(raw_runs, load_runs, strict=True))
    refresh_seconds = median(refresh_runs)
    raw_rate = rows / raw_seconds
    load_rate = rows / load_seconds
    ceiling_rate = rows / ceiling_seconds
    raw_name = (f"psql \\copy of the same {rows:,} rows into a plain unindexed table"
                f" (median of {ROUNDS}, alternating with the loads)")
    return [
        Result("tsfleet load csv, first load (median)", load_rate, "rows/s", raw_rate, raw_name,
               "(per round: " + ", ".join(f"{r:.3f}" for r in ratios) + ")"),
        Result("tsfleet load csv --force, all duplicates", rows / dup_seconds, "rows/s",
               raw_rate, raw_name),
        Result("tsfleet load csv, same file again", skip_seconds, "s", None, "",
               "checksum registry: skipped"),
        Result("\\copy of resolved ids into telemetry.readings", ceiling_rate, "rows/s",
               raw_rate, raw_name, "the schema's index ceiling"),
        Result("tsfleet load vs that ceiling", load_rate, "rows/s", ceiling_rate,
               "\\copy into telemetry.readings (same indexes, no checks)", ">= 0.5"),
        Result("first load without the rollup refresh",
               rows / (load_seconds - refresh_seconds), "rows/s", raw_rate, raw_name,
               f"refresh took {refresh_seconds:.1f} s"),
        Result("loader peak RSS, first load", max(rss_runs), "MB", None, "",
               "streamed: COPY of 1 MB blocks"),
        Result("loader peak RSS, duplicate reload", dup_rss, "MB"),
    ]
