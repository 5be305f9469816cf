"""The rollup refresh queue: a committed batch queues, in its own transaction, the hour buckets
its readings touched; whoever drains the queue refreshes them, so a load killed between a
commit and its refresh leaves its rollups owed, not forgotten."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import Server
from tests.ingest_support import run_load, run_load_json, write_csv
from tests.rollups_support import UTC, add_batch, add_device, add_metric, day, insert_reading, one

HEADER = ["time", "device", "metric", "value"]


def queued(conn: psycopg.Connection) -> list[tuple[datetime, datetime, int]]:
    return conn.execute("select range_start, range_end, batch_id"
                        " from _tsfleet.rollup_refresh_queue order by 1").fetchall()


def hourly(conn: psycopg.Connection) -> list[tuple[datetime, int]]:
    return conn.execute("select bucket_start, reading_count::int from"
                        " rollups.device_metrics_hourly order by 1").fetchall()


def test_commit_queues_the_hour_buckets_a_sparse_batch_touched_not_its_whole_span(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    batch = add_batch(conn)
    january = day("2025-01-10") + timedelta(minutes=5)
    december = day("2025-12-20") + timedelta(hours=7, minutes=30)
    for at in (january, january + timedelta(minutes=50), january + timedelta(hours=1), december):
        insert_reading(conn, device, metric, at, 1.0, batch_id=batch)
    one(conn, "select count(*) from ingest.commit_batch(%s, 4)", [batch])
    assert queued(conn) == [
        (day("2025-01-10"), day("2025-01-10") + timedelta(hours=2), batch),
        (day("2025-12-20") + timedelta(hours=7), day("2025-12-20") + timedelta(hours=8), batch),
    ]
    conn.execute("call rollups.refresh_after_load(%s)", [batch])
    assert hourly(conn) == [(day("2025-01-10"), 2), (day("2025-01-10") + timedelta(hours=1), 1),
                            (day("2025-12-20") + timedelta(hours=7), 1)]
    assert queued(conn) == []


def test_a_rolled_back_batch_queues_nothing(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    with pytest.raises(psycopg.errors.RaiseException), conn.transaction():
        batch = add_batch(conn)
        insert_reading(conn, device, metric, day("2025-03-01"), 1.0, batch_id=batch)
        conn.execute("select from ingest.commit_batch(%s, 1)", [batch])
        conn.execute("do $$ begin raise exception 'loader killed'; end $$")
    assert queued(conn) == []


def coalesced(conn: psycopg.Connection,
              hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    return conn.execute(
        "select lower(r), upper(r) from _tsfleet.coalesce_refresh_ranges("
        " (select range_agg(tstzrange(h, h + interval '1 hour')) from unnest(%s::timestamptz[])"
        " as h)) as r order by 1", [hours]).fetchall()


def test_ranges_closer_than_a_day_are_joined_and_at_most_eight_remain(
    conn: psycopg.Connection,
) -> None:
    start = day("2025-01-01")
    # 00-02 and 05 join (3 h apart); 30 lies a whole day after 05-06: a range of its own.
    assert coalesced(conn, [start + timedelta(hours=h) for h in (0, 1, 5, 30)]) == [
        (start, start + timedelta(hours=6)),
        (start + timedelta(hours=30), start + timedelta(hours=31))]
    # Twelve buckets 3 days apart, plus one 4 days after the last: at most eight ranges, the
    # narrowest gaps joined first, and every bucket still covered.
    hours = [start + timedelta(days=3 * n) for n in range(12)] + [start + timedelta(days=37)]
    ranges = coalesced(conn, hours)
    assert len(ranges) == 8
    assert ranges[-1] == (start + timedelta(days=37), start + timedelta(days=37, hours=1))
    assert all(any(lo <= h < hi for lo, hi in ranges) for h in hours)
    assert sum(((hi - lo) for lo, hi in ranges), timedelta()) < timedelta(days=37)


def test_refresh_queued_drains_every_batch_and_leaves_nothing_behind(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    for at in (day("2025-04-01"), day("2025-06-01")):
        batch = insert_reading(conn, device, metric, at + timedelta(minutes=1), 3.0)
        conn.execute("select from ingest.commit_batch(%s, 1)", [batch])
    assert len(queued(conn)) == 2
    assert one(conn, "call rollups.refresh_queued()") == 2
    assert [row[1] for row in hourly(conn)] == [1, 1]
    assert queued(conn) == []
    assert one(conn, "call rollups.refresh_queued()") == 0


def test_a_part_of_a_shared_refresh_takes_only_its_slice_off_the_queue(
    conn: psycopg.Connection, server,
) -> None:
    if server.is_community:
        pytest.skip("Apache edition only: on Community part 0 refreshes the whole batch")
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    batch = add_batch(conn)
    for hour in range(10):
        insert_reading(conn, device, metric, day("2025-05-01") + timedelta(hours=hour), 1.0,
                       batch_id=batch)
    conn.execute("select from ingest.commit_batch(%s, 10)", [batch])
    conn.execute("call rollups.refresh_after_load(%s, 0, 2)", [batch])
    assert len(hourly(conn)) == 5  # [00:00, 05:00): the first half of the batch's hours
    assert queued(conn) == [(day("2025-05-01") + timedelta(hours=5),
                             day("2025-05-01") + timedelta(hours=10), batch)]
    conn.execute("call rollups.refresh_after_load(%s, 1, 2)", [batch])
    assert len(hourly(conn)) == 10
    assert queued(conn) == []


def tsfleet_command() -> list[str]:
    script = Path(sys.executable).with_name("tsfleet")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from loader.cli import run; run()"]


def test_a_killed_multi_file_load_leaves_the_first_files_rollups_to_the_rerun(
    db_url: str, conn: psycopg.Connection, tmp_path: Path,
) -> None:
    """`tsfleet load csv A.csv big.csv` killed while loading big.csv: A is committed and its
    refresh, due after the last file, never ran. The rerun skips A (same content) and
    loads big; A's rollups must be right afterwards all the same."""
    start = datetime(2025, 2, 3, tzinfo=UTC)
    first = write_csv(tmp_path / "A.csv", HEADER,
                      [[(start + timedelta(minutes=10 * n)).isoformat(), "a-1", "power_w", n]
                       for n in range(36)])
    big_start = datetime(2025, 6, 1, tzinfo=UTC)
    big = write_csv(tmp_path / "big.csv", HEADER,
                    [[(big_start + timedelta(seconds=n)).isoformat(), f"b-{n % 50}",
                      "power_w", n % 97] for n in range(400_000)])
    command = [*tsfleet_command(), "load", "csv", str(first), str(big)]
    env = {**os.environ, "DATABASE_URL": db_url}
    loader = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while one(conn, "select count(*) from ingest.batches where status = 'committed'") < 1:
            assert loader.poll() is None, loader.communicate()[0]
            assert time.monotonic() < deadline, "A.csv was never committed"
            time.sleep(0.02)
        os.killpg(loader.pid, signal.SIGKILL)
    finally:
        loader.wait(timeout=60)
    assert one(conn, "select count(*) from ingest.batches where status = 'committed'") == 1, (
        "big.csv finished before the kill: the test did not kill the load in time")
    assert hourly(conn) == []  # A committed, its rollups not refreshed
    assert len(queued(conn)) == 1

    rerun = run_load_json(db_url, "csv", str(first), str(big))
    assert [b["status"] for b in rerun["batches"]] == ["skipped", "committed"]
    a_hours = conn.execute(
        "select bucket_start, reading_count::int from rollups.device_metrics_hourly as h"
        " inner join telemetry.devices as d using (device_id) where d.device_key = 'a-1'"
        " order by 1").fetchall()
    assert a_hours == [(start + timedelta(hours=h), 6) for h in range(6)]
    assert one(conn, "select sum(reading_count) from rollups.device_metrics_daily") == 400_036
    assert queued(conn) == []


# TimescaleDB (2.2x Community) refuses a continuous aggregate refresh whose window overlaps one
# in progress (SQLSTATE 55P03), registered in this catalog table by the refreshing backend.
REFRESH_RANGES = sql.Identifier("_timescaledb_catalog", "continuous_aggs_jobs_refresh_ranges")


@pytest.mark.community
def test_a_load_waits_out_a_concurrent_refresh_instead_of_warning(
    db_url: str, conn: psycopg.Connection, tmp_path: Path,
) -> None:
    name = REFRESH_RANGES.as_string(conn)
    if conn.execute("select to_regclass(%s)", [name]).fetchone()[0] is None:
        pytest.skip("this TimescaleDB does not refuse concurrent continuous aggregate refreshes")
    path = write_csv(tmp_path / "old.csv", HEADER,
                     [(f"2025-02-01T{hour:02d}:10:00Z", "dev-1", "temperature_c", hour)
                      for hour in range(6)])
    held_for_s = 2.0
    # Another live backend "refreshing" every rollup over all time, as a second loader's
    # refresh does: the load's own refresh is refused until it ends.
    with psycopg.connect(db_url, autocommit=True) as other:
        pid = other.info.backend_pid
        conn.execute(sql.SQL(
            "insert into {} (materialization_id, start_range, end_range, pid, job_id,"
            " created_at) select c.mat_hypertable_id, -9223372036854775807,"
            " 9223372036854775807, %s, 0, now() from _timescaledb_catalog.continuous_agg as c"
        ).format(REFRESH_RANGES), [pid])
        release = threading.Timer(held_for_s, lambda: conn.execute(
            sql.SQL("delete from {} where pid = %s").format(REFRESH_RANGES), [pid]))
        started = time.perf_counter()
        release.start()
        try:
            result = run_load(db_url, "csv", str(path))
        finally:
            release.join()
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output, result.output
    assert time.perf_counter() - started >= held_for_s  # it waited, and then refreshed
    assert [count for _bucket, count in hourly(conn)] == [1] * 6
    assert queued(conn) == []


@pytest.mark.community
def test_a_load_takes_its_turn_behind_another_tsfleet_refresh(
    db_url: str, conn: psycopg.Connection, tmp_path: Path,
) -> None:
    """tsfleet's own Community refreshes take turns (_tsfleet.begin_refresh_turn): the load
    waits on the lock, without polling or warning, and refreshes the moment the other ends."""
    path = write_csv(tmp_path / "old.csv", HEADER,
                     [(f"2025-02-01T{hour:02d}:10:00Z", "dev-1", "temperature_c", hour)
                      for hour in range(6)])
    results = []
    with psycopg.connect(db_url, autocommit=True) as other:
        assert other.execute("select _tsfleet.begin_refresh_turn()").fetchone() == (True,)
        load = threading.Thread(target=lambda: results.append(
            run_load(db_url, "csv", str(path))))
        load.start()
        waiting = []
        for _ in range(100):  # until the load's backend waits for the turn
            waiting = conn.execute(
                "select pid from pg_stat_activity where wait_event_type = 'Lock'"
                " and wait_event = 'advisory' and datname = current_database()").fetchall()
            if waiting:
                break
            time.sleep(0.1)
        assert waiting, "the load did not wait for the other refresh's turn"
        assert hourly(conn) == []  # committed, not refreshed yet
        other.execute("select _tsfleet.end_refresh_turn()")
        load.join(timeout=60)
    assert results and results[0].exit_code == 0, results
    assert "warning" not in results[0].output, results[0].output
    assert [count for _bucket, count in hourly(conn)] == [1] * 6
    assert queued(conn) == []


def test_only_community_refreshes_take_turns(conn: psycopg.Connection, server: Server) -> None:
    """Community: the turn is a session lock that outlives commits (the refresh procedures
    commit inside; here each statement is its own transaction); Apache: no turn, the rebuild
    locks its buckets."""
    conn.autocommit = True
    held = ("select count(*) from pg_locks where locktype = 'advisory' and classid = 7461"
            " and objid = 2 and pid = pg_backend_pid()")
    assert conn.execute("select _tsfleet.begin_refresh_turn()").fetchone() == (
        server.is_community,)
    assert one(conn, held) == (1 if server.is_community else 0)
    if server.is_community:
        conn.execute("select _tsfleet.end_refresh_turn()")
    assert one(conn, held) == 0
