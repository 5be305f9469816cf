"""A large batch's rollup refresh shared by several connections, and rebuilds of overlapping
ranges at the same time: the rollups end up as one whole refresh makes them, nothing fails."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from loader.ingest import rollup_refresh
from tests.conftest import Server
from tests.ingest_support import run_load_json, write_csv
from tests.rollups_support import add_batch, add_device, add_metric, day, insert_series

ROLLUPS = {  # rollup: its key columns
    "rollups.device_metrics_hourly": "bucket_start, device_id, metric_id",
    "rollups.device_metrics_daily": "bucket_start, device_id, metric_id",
    "rollups.instrument_daily": "bucket_start, device_id",
}


def snapshot(conn: psycopg.Connection) -> dict[str, dict[tuple, tuple]]:
    """Every row of the rollups, by key."""
    tables = {}
    for rollup, keys in ROLLUPS.items():
        width = len(keys.split(","))
        rows = conn.execute(f"select * from {rollup} order by {keys}").fetchall()  # noqa: S608
        tables[rollup] = {row[:width]: row[width:] for row in rows}
    return tables


def assert_same_rollups(actual: dict, expected: dict) -> None:
    for rollup, rows in expected.items():
        assert actual[rollup].keys() == rows.keys(), rollup
        for key, values in rows.items():
            assert actual[rollup][key] == pytest.approx(values, rel=1e-9, abs=1e-9), (rollup, key)


def two_days_of_greenhouse(conn: psycopg.Connection) -> int:
    """One batch: two instruments, temperature and humidity every 10 minutes for two days."""
    batch = add_batch(conn)
    metrics = [add_metric(conn, "temperature_c"), add_metric(conn, "humidity_pct")]
    for key in ("gh-1", "gh-2"):
        device = add_device(conn, key)
        for metric in metrics:
            insert_series(conn, device, metric, day("2026-03-01"), day("2026-03-03"), "10 min",
                          value_sql=f"{device * 7 + metric} + 5 * sin(n / 9.0)",
                          quality_sql="case when mod(n, 13) = 0 then 'bad' else 'good' end",
                          batch_id=batch)
    return batch


def test_a_batch_refreshed_in_parts_at_once_gets_the_rollups_of_a_whole_refresh(
        db_url: str, conn: psycopg.Connection) -> None:
    batch = two_days_of_greenhouse(conn)
    errors: list[BaseException] = []

    def part(number: int) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as other:
                other.execute("call rollups.refresh_after_load(%s, %s, 3)", [batch, number])
        except BaseException as exc:  # reported below
            errors.append(exc)

    parts = [threading.Thread(target=part, args=(number,)) for number in range(3)]
    for thread in parts:
        thread.start()
    for thread in parts:
        thread.join()
    assert not errors
    refreshed = snapshot(conn)
    assert len(refreshed["rollups.device_metrics_hourly"]) == 2 * 2 * 48
    assert len(refreshed["rollups.instrument_daily"]) == 2 * 2
    conn.execute("call rollups.refresh()")  # the whole range, from the raw readings
    assert_same_rollups(refreshed, snapshot(conn))


def test_a_part_number_outside_the_parts_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match="not a part"):
        conn.execute("call rollups.refresh_after_load(1, 2, 2)")


def test_rebuilds_of_overlapping_ranges_wait_for_each_other_and_both_succeed(
        db_url: str, conn: psycopg.Connection, server) -> None:
    if server.is_community:
        pytest.skip("Apache edition only: Community rollups are continuous aggregates")
    two_days_of_greenhouse(conn)
    conn.execute("call rollups.refresh()")
    expected = snapshot(conn)
    conn.execute("delete from rollups.device_metrics_hourly")
    start = day("2026-03-01")
    finished: list[str] = []

    def rebuild(name: str, first: int, last: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("select _tsfleet.rebuild_rollup_table("
                          "'rollups.device_metrics_hourly', %s, %s)",
                          [start + timedelta(hours=first), start + timedelta(hours=last)])
        finished.append(name)

    with psycopg.connect(db_url) as holder:  # a transaction that holds hours 0-9
        holder.execute("select _tsfleet.rebuild_rollup_table("
                       "'rollups.device_metrics_hourly', %s, %s)",
                       [start, start + timedelta(hours=10)])
        disjoint = threading.Thread(target=rebuild, args=("disjoint", 20, 48))
        disjoint.start()
        disjoint.join(timeout=30)
        assert finished == ["disjoint"]  # other hours: no waiting for the open transaction
        overlapping = threading.Thread(target=rebuild, args=("overlapping", 5, 20))
        whole = threading.Thread(target=rebuild, args=("whole day and more", 0, 60))
        for thread in (overlapping, whole):
            thread.start()
        time.sleep(0.5)
        assert finished == ["disjoint"]  # hours 5-9 / the whole rollup: they wait
        holder.commit()
    for thread in (overlapping, whole):
        thread.join(timeout=30)
    assert sorted(finished) == ["disjoint", "overlapping", "whole day and more"]
    assert_same_rollups(snapshot(conn), expected)


def test_the_loader_shares_a_large_batchs_refresh_between_connections(
        db_url: str, conn: psycopg.Connection, tmp_path: Path, server: Server,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--refresh-connections 3 (Apache): two more connections, the rollups as a whole refresh
    makes them; a connection that cannot be opened leaves its part to the load's own.
    Community refreshes on the load's connection alone, with the same rollups."""
    rows = [[f"2026-03-0{1 + hour // 24}T{hour % 24:02d}:{minute:02d}:00Z", device, metric,
             str(hour + minute / 60)]
            for hour in range(40) for minute in range(0, 60, 15)
            for device in ("gh-1", "gh-2") for metric in ("temperature_c", "humidity_pct")]
    monkeypatch.setattr(rollup_refresh, "PARALLEL_REFRESH_ROWS", 100)
    opened: list[str] = []
    counting = threading.Lock()
    real_connect = psycopg.connect

    def counting_connect(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with counting:
            opened.append("connection")
            refused = len(opened) == 3
        if refused:
            raise psycopg.OperationalError("too many connections (the test says so)")
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting_connect)
    first = write_csv(tmp_path / "a.csv", ["time", "device", "metric", "value"], rows)
    batch = run_load_json(db_url, "csv", str(first), "--refresh-connections", "3")["batches"][0]
    assert batch["status"] == "committed" and batch["rows_inserted"] == len(rows)
    if server.is_community:  # a continuous aggregate refreshes in one go: no helpers
        assert len(opened) == 1
    else:  # the load's own, then two for the refresh (the second refused)
        assert len(opened) == 3
    refreshed = snapshot(conn)
    assert len(refreshed["rollups.device_metrics_hourly"]) == 40 * 2 * 2
    conn.execute("call rollups.refresh()")
    assert_same_rollups(refreshed, snapshot(conn))
