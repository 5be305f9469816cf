"""Real loader processes, side by side (no global lock): overlapping loads neither deadlock nor
duplicate, whatever their order; the same file twice at once loads once; --force beside a
normal load; SIGKILL mid-batch leaves no partial batch and a rerun completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.ingest_support import batches, scalar, write_csv

TSFLEET = str(Path(sys.executable).parent / "tsfleet")
NARROW = ["time", "device", "metric", "value"]


def narrow_rows(minutes: range, devices: list[str]) -> list[list[str]]:
    return [[f"2026-02-01T{m // 60:02d}:{m % 60:02d}:00Z", device, "power_w", str(m)]
            for m in minutes for device in devices]


def start_loader(db_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([TSFLEET, "load", *args], env={**os.environ, "DATABASE_URL": db_url},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_loading_overlapping_data_neither_deadlock_nor_duplicate(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    devices = [f"dev-{n:03d}" for n in range(40)]
    first = write_csv(tmp_path / "a.csv", NARROW, narrow_rows(range(0, 300), devices))
    # The second file in reverse order: rows, times and devices.
    second = write_csv(tmp_path / "b.csv", NARROW,
                       narrow_rows(range(150, 450), devices[::-1])[::-1])
    loaders = [start_loader(db_url, "csv", str(path), "--json")
               for path in (first, second)]
    outputs = [loader.communicate(timeout=300) for loader in loaders]
    for loader, (_out, err) in zip(loaders, outputs, strict=True):
        assert loader.returncode == 0, err
        assert "deadlock" not in err
    assert scalar(conn, "select count(*) from telemetry.readings") == 450 * 40
    assert scalar(conn, "select count(*) from telemetry.devices") == 40
    assert scalar(conn, "select count(*) from telemetry.metrics") == 1
    committed = [b for b in batches(conn) if b["status"] == "committed"]
    assert len(committed) == 2
    assert sum(b["rows_inserted"] for b in committed) == 450 * 40
    assert sum(b["rows_duplicate"] for b in committed) == 150 * 40


def test_loader_killed_mid_batch_leaves_nothing_and_a_rerun_completes(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    early = narrow_rows(range(0, 400), [f"dev-{n:02d}" for n in range(20)])
    late = narrow_rows(range(400, 410), ["zz-last"])
    path = write_csv(tmp_path / "big.csv", NARROW, early + late)
    # Hold the row of a device the file names last: the loader blocks there, mid-batch,
    # after writing its earlier chunks (uncommitted).
    conn.execute("insert into telemetry.devices (tenant_id, device_key) values (1, 'zz-last')")
    with psycopg.connect(db_url) as blocker:
        blocker.execute("select * from telemetry.devices where device_key = 'zz-last'"
                        " for update")
        loader = start_loader(db_url, "csv", str(path))
        deadline = time.monotonic() + 120
        while True:
            waiting = scalar(conn, "select count(*) from pg_stat_activity"
                                   " where application_name = 'tsfleet'"
                                   " and wait_event_type = 'Lock'")
            if waiting:
                break
            assert loader.poll() is None, loader.communicate()
            assert time.monotonic() < deadline, "the loader never reached the held row"
            time.sleep(0.05)
        os.kill(loader.pid, signal.SIGKILL)
        loader.wait(timeout=30)
        assert loader.returncode == -signal.SIGKILL
        assert batches(conn) == []  # no 'running' row is left behind, nothing committed
        blocker.rollback()
    rerun = start_loader(db_url, "csv", str(path))
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert scalar(conn, "select count(*) from telemetry.readings") == len(early) + len(late)
    (batch,) = batches(conn)
    assert (batch["status"], batch["rows_inserted"]) == ("committed", len(early) + len(late))


def test_the_same_file_twice_at_once_loads_once(db_url: str, conn: psycopg.Connection,
                                                tmp_path: Path) -> None:
    path = write_csv(tmp_path / "same.csv", NARROW,
                     narrow_rows(range(0, 300), [f"dev-{n:02d}" for n in range(20)]))
    loaders = [start_loader(db_url, "csv", str(path)) for _ in range(2)]
    outputs = [loader.communicate(timeout=300) for loader in loaders]
    assert [loader.returncode for loader in loaders] == [0, 0], outputs
    assert sorted(b["status"] for b in batches(conn)) == ["committed", "skipped"]
    assert scalar(conn, "select count(*) from telemetry.readings") == 300 * 20


def test_force_beside_a_normal_load_of_the_same_file(db_url: str, conn: psycopg.Connection,
                                                     tmp_path: Path) -> None:
    path = write_csv(tmp_path / "forced.csv", NARROW,
                     narrow_rows(range(0, 300), [f"dev-{n:02d}" for n in range(20)]))
    loaders = [start_loader(db_url, "csv", str(path)),
               start_loader(db_url, "csv", str(path), "--force")]
    outputs = [loader.communicate(timeout=300) for loader in loaders]
    assert [loader.returncode for loader in loaders] == [0, 0], outputs
    committed = [b for b in batches(conn) if b["status"] == "committed"]
    assert len(committed) == 2
    assert sorted(b["rows_inserted"] for b in committed) == [0, 300 * 20]
    assert sorted(b["rows_duplicate"] for b in committed) == [0, 300 * 20]
    assert scalar(conn, "select count(*) from telemetry.readings") == 300 * 20


def test_a_batch_left_open_does_not_stop_a_load_of_other_data(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    """No global lock: a batch of another source, begun and not yet committed, is no reason
    to wait."""
    path = write_csv(tmp_path / "other.csv", NARROW, narrow_rows(range(0, 10), ["free-1"]))
    with psycopg.connect(db_url) as open_batch:
        open_batch.execute("select ingest.begin_batch('generic_csv', 'slow.csv', 'abc')")
        open_batch.execute("select ingest.create_staging()")
        loader = start_loader(db_url, "csv", str(path))
        _out, err = loader.communicate(timeout=60)
        assert loader.returncode == 0, err
        assert scalar(conn, "select count(*) from telemetry.readings") == 10
        open_batch.rollback()
