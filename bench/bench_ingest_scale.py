"""Ingest scale-out and hostile input: loaders side by side, JSON Lines, memory, rejects."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import median

from bench.bench_ingest import TSFLEET, timed, write_narrow_csv
from bench.harness import BenchContext, Result
from bench.logic_lines import LIMIT, count

TODAYS_JSONL_RATE = 14_000  # msg/s of the Python path this replaced (issue 15, idle machine)


def write_disjoint_csv(path: Path, rows: int, prefix: str) -> None:
    """Narrow rows of devices no other file has (so two loads share no key)."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with open(path, "w", encoding="utf-8") as out:
        out.write("time,device,metric,value\n")
        for n in range(rows):
            stamp = (start + timedelta(minutes=n // 200)).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(f"{stamp},{prefix}-{n % 200:03d},power_w,{n % 1000}\n")


def write_jsonl(path: Path, messages: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with open(path, "w", encoding="utf-8") as out:
        for n in range(messages):
            out.write(json.dumps({
                "messageId": f"m-{n}", "deviceId": f"dev-{n % 500:03d}",
                "organizationId": "org-1",
                "timestamp": (start + timedelta(seconds=n // 500)).isoformat(),
                "metrics": {"temperature": 20 + n % 10, "voltage": 12.1, "current": 2.5,
                            "pressure": 101.3}}) + "\n")


def write_hostile_csv(path: Path, rows: int) -> int:
    """Narrow rows, one in ten bad in one of several ways; returns the good rows."""
    bad = ["yesterday,{d},power_w,1", "{t},{d},power_w,abc", "{t},{d},power_w,NaN",
           "{t},,power_w,1", "{t},{d},power_w,1e400", "{t},{d},power_w,1,2",
           "2026-02-30T00:00:00Z,{d},power_w,1", '{t},"{d},power_w,1']
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    good = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write("time,device,metric,value\n")
        for n in range(rows):
            stamp = (start + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
            device = f"dev-{n % 100:03d}"
            if n % 10 == 9:
                out.write(bad[n // 10 % len(bad)].format(t=stamp, d=device) + "\n")
            else:
                out.write(f"{stamp},{device},power_w,{n % 1000}\n")
                good += 1
    return good


def load(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([TSFLEET, "load", *args], env={**os.environ, "DATABASE_URL": url},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_all(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        output, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(output)


ROUNDS = 3  # the serial and the parallel arm alternate; medians (single runs vary by a third)


def two_loaders(ctx: BenchContext, files: list[Path], warm_up: Path | None) -> tuple[float, float]:
    """Median seconds of loading the two files one after the other and at once, each arm on a
    fresh database in the same state: migrated, and with `warm_up` loaded when given (the
    metric and the week's chunk exist, as in a running fleet)."""
    serial, parallel = [], []
    for _ in range(ROUNDS):
        for arm in (serial, parallel):
            with ctx.database() as url:
                if warm_up is not None:
                    wait_all([load(url, "csv", str(warm_up))])
                started = time.perf_counter()
                if arm is serial:
                    for path in files:
                        wait_all([load(url, "csv", str(path))])
                else:
                    wait_all([load(url, "csv", str(path)) for path in files])
                arm.append(time.perf_counter() - started)
    return median(serial), median(parallel)


def run(ctx: BenchContext) -> list[Result]:
    rows = ctx.scaled(400_000, minimum=10_000)
    messages = ctx.scaled(200_000, minimum=5_000)
    with tempfile.TemporaryDirectory(prefix="tsfleet-bench-scale-") as tmp:
        files = [Path(tmp) / f"{name}.csv" for name in ("a", "b")]
        for path, prefix in zip(files, ("a", "b"), strict=True):
            write_disjoint_csv(path, rows, prefix)
        warm_up = Path(tmp) / "w.csv"
        write_disjoint_csv(warm_up, 200, "w")
        serial, parallel = two_loaders(ctx, files, warm_up)
        cold_serial, cold_parallel = two_loaders(ctx, files, None)

        jsonl = Path(tmp) / "m.jsonl"
        write_jsonl(jsonl, messages)
        with ctx.database() as url:
            jsonl_seconds, _, _ = timed([TSFLEET, "load", "messages", str(jsonl)],
                                        {**os.environ, "DATABASE_URL": url})

        small, large = Path(tmp) / "small.csv", Path(tmp) / "large.csv"
        # Both well past the loader's 1 MB COPY blocks: a file smaller than one block never
        # reaches the steady state that "flat" is about.
        write_narrow_csv(small, rows // 2, 100)
        write_narrow_csv(large, rows * 4, 100)
        rss = []
        for path in (small, large):
            with ctx.database() as url:
                rss.append(timed([TSFLEET, "load", "csv", str(path)],
                                 {**os.environ, "DATABASE_URL": url})[1])

        hostile, clean = Path(tmp) / "hostile.csv", Path(tmp) / "clean.csv"
        good = write_hostile_csv(hostile, rows)
        write_disjoint_csv(clean, rows, "c")
        with ctx.database() as url:
            hostile_seconds, _, out = timed([TSFLEET, "load", "csv", str(hostile)],
                                            {**os.environ, "DATABASE_URL": url})
            assert f"inserted {good}," in out, out
        with ctx.database() as url:
            clean_seconds, _, _ = timed([TSFLEET, "load", "csv", str(clean)],
                                        {**os.environ, "DATABASE_URL": url})
    lines = sum(count().values())
    return [
        Result("two loaders of disjoint files at once", 2 * rows / parallel, "rows/s",
               2 * rows / serial, "the same two files one after the other", ">= 1.4"),
        Result("the same, into an empty database", 2 * rows / cold_parallel, "rows/s",
               2 * rows / cold_serial, "the same two files one after the other",
               "new metric and chunk: the second waits for the first's commit"),
        Result("tsfleet load messages (JSON Lines, 4 metrics)", messages / jsonl_seconds,
               "msg/s", TODAYS_JSONL_RATE, "the Python path it replaced (issue 15's figure)",
               ">= 2"),
        Result(f"peak RSS, {rows * 4:,}-row file", rss[1], "MB", rss[0],
               f"the same loader on a {rows // 2:,}-row file (8x smaller)", "flat (~1.0)"),
        Result("a file with one row in ten bad (8 kinds)", rows / hostile_seconds, "rows/s",
               rows / clean_seconds, "a clean file of the same size", "rejecting is cheap"),
        Result("Python logic lines in formats+ingest+stream", lines, "lines", LIMIT,
               "the limit of issue 15", "<= 1.0"),
    ]
