"""Bounded memory: the loader streams, so its peak RSS does not grow with the file size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.ingest_support import write_csv

TSFLEET = str(Path(sys.executable).parent / "tsfleet")


def peak_rss_mb(db_url: str, path: Path) -> float:
    process = subprocess.Popen([TSFLEET, "load", "csv", str(path)],
                               env={**os.environ, "DATABASE_URL": db_url},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, process.stderr.read() if process.stderr \
        else ""
    if process.stderr:
        process.stderr.close()
    return usage.ru_maxrss / 1024


def test_peak_memory_does_not_grow_with_file_size(db_url: str, tmp_path: Path) -> None:
    def rows(count: int, prefix: str) -> list[list[str]]:
        # Every timestamp and device distinct: no cache may grow with the file either.
        return [[f"2026-02-01T00:00:{n % 60:02d}.{n:06d}Z", f"{prefix}-{n}", "power_w", str(n)]
                for n in range(count)]

    small = write_csv(tmp_path / "small.csv", ["time", "device", "metric", "value"],
                      rows(10_000, "s"))
    large = write_csv(tmp_path / "large.csv", ["time", "device", "metric", "value"],
                      rows(100_000, "l"))
    small_mb, large_mb = peak_rss_mb(db_url, small), peak_rss_mb(db_url, large)
    # Ten times the rows (about 6 MB more input) may not cost more than a few MB of memory.
    assert large_mb < small_mb + 8, (small_mb, large_mb)
