"""The fast path (COPY with resolved ids straight into readings) and its fallback to staging.

A chunk that collides with a stored key, repeats a key, or holds a row to reject is rolled
back to its savepoint and loaded through staging, so every count and reject stays exact.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import psycopg

from loader.formats.records import Reading, ReadingBlock
from loader.ingest.direct import ChunkFacts, KeyIds, StampCache, copy_block, moment, prepare
from tests.ingest_support import (
    batches,
    readings,
    rejects,
    run_load_json,
    scalar,
    write_csv,
)

HEADER = ["time", "device", "metric", "value"]


def minute(n: int) -> str:
    return f"2026-01-26T00:{n:02d}:00Z"


def load(db_url: str, path: Path, *args: str) -> dict[str, object]:
    return run_load_json(db_url, "csv", str(path), *args)["batches"][0]


def counts(batch: dict[str, object]) -> tuple[object, ...]:
    return (batch["status"], batch["rows_read"], batch["rows_inserted"],
            batch["rows_duplicate"], batch["rows_conflict"], batch["rows_rejected"])


def reading(line: int, stamp: str, device: str, value: float) -> Reading:
    return Reading(line, stamp, device, "power_w", value)


def copy_chunk(cur: psycopg.Cursor, batch_id: int, tenant_key: str, chunk: list[Reading],
               ids: KeyIds) -> bool:
    """The fast path of one chunk, prepared as the parser thread does (ids not known yet)."""
    stamps = StampCache()
    prepared = prepare(ReadingBlock.of(chunk), batch_id, ids, stamps)
    return copy_block(cur, batch_id, tenant_key, prepared, ids)


def test_a_chunk_of_new_keys_is_copied_and_booked(conn: psycopg.Connection) -> None:
    chunk = [reading(1, "2026-01-26T00:00:00+00:00", "d1", 1.0),
             reading(2, "2026-01-26T00:00:00+00:00", "d2", 2.0),
             reading(3, "2026-01-26T00:01:00+00:00", "d1", 3.0)]
    ids = KeyIds()
    with conn.transaction():
        batch_id = scalar(conn, "select ingest.begin_batch('t', 't', null)")
        with conn.cursor() as cur:
            assert copy_chunk(cur, batch_id, "default", chunk, ids)
            ids.book_devices(cur)
        booked = conn.execute("select rows_inserted, min_recorded_at, max_recorded_at"
                              " from ingest.batches where batch_id = %s", [batch_id]).fetchone()
    assert booked == (3, datetime(2026, 1, 26, tzinfo=timezone.utc),
                      datetime(2026, 1, 26, 0, 1, tzinfo=timezone.utc))
    assert [r[1:4] for r in readings(conn)] == [("d1", "power_w", 1.0), ("d2", "power_w", 2.0),
                                                ("d1", "power_w", 3.0)]
    assert conn.execute("select device_key, to_char(last_reading_at at time zone 'UTC', 'MI')"
                        " from telemetry.devices order by 1").fetchall() == [("d1", "01"),
                                                                            ("d2", "00")]


def test_a_chunk_with_a_stored_key_is_rolled_back_to_its_savepoint(
        conn: psycopg.Connection) -> None:
    ids = KeyIds()
    with conn.transaction():
        batch_id = scalar(conn, "select ingest.begin_batch('t', 't', null)")
        with conn.cursor() as cur:
            assert copy_chunk(cur, batch_id, "default",
                              [reading(1, "2026-01-26T00:05:00+00:00", "d1", 5.0)], ids)
            # Neither the first nor the last key is stored: the COPY itself must fail.
            assert not copy_chunk(cur, batch_id, "default", [
                reading(1, "2026-01-26T00:04:00+00:00", "d1", 4.0),
                reading(2, "2026-01-26T00:05:00+00:00", "d1", 9.0),
                reading(3, "2026-01-26T00:06:00+00:00", "d1", 6.0)], ids)
        assert scalar(conn, "select rows_inserted from ingest.batches where batch_id = %s",
                      [batch_id]) == 1
    assert [r[3] for r in readings(conn)] == [5.0]


def test_a_chunk_with_a_row_to_reject_is_rolled_back(conn: psycopg.Connection) -> None:
    conn.execute("insert into telemetry.metrics (metric_name, valid_min, valid_max)"
                 " values ('power_w', 0, 100)")
    ids = KeyIds()
    with conn.transaction():
        batch_id = scalar(conn, "select ingest.begin_batch('t', 't', null)")
        with conn.cursor() as cur:
            assert not copy_chunk(cur, batch_id, "default", [
                reading(1, "2026-01-26T00:00:00+00:00", "d1", 50.0),
                reading(2, "2026-01-26T00:01:00+00:00", "d1", 500.0)], ids)
            assert not copy_chunk(cur, batch_id, "default", [
                reading(1, "2999-01-01T00:00:00+00:00", "d1", 50.0)], ids)
    assert readings(conn) == []


def test_chunk_facts_find_each_devices_newest_time_in_any_row_order() -> None:
    rows = [reading(1, "2026-01-26T02:00:00+02:00", "d1", 0.0),  # 00:00 UTC
            reading(2, "2026-01-26T00:30:00+00:00", "d1", 0.0),
            reading(3, "2026-01-26T00:10:00+00:00", "d2", 0.0),
            reading(4, "2026-01-26T01:00:00+02:00", "d2", 0.0)]  # 23:00 UTC the day before
    facts = ChunkFacts.of(ReadingBlock.of(rows))
    utc = timezone.utc
    newest = {device: moment(micros) for device, micros in facts.device_last_at.items()}
    assert newest == {"d1": datetime(2026, 1, 26, 0, 30, tzinfo=utc),
                                    "d2": datetime(2026, 1, 26, 0, 10, tzinfo=utc)}
    assert (facts.oldest, facts.newest) == (datetime(2026, 1, 25, 23, tzinfo=utc),
                                            datetime(2026, 1, 26, 0, 30, tzinfo=utc))


def test_duplicates_and_conflicts_are_counted_exactly_when_a_chunk_falls_back(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "first.csv", HEADER,
                      [[minute(n), "d1", "power_w", str(n)] for n in (4, 7)])
    assert counts(load(db_url, first)) == ("committed", 2, 2, 0, 0, 0)
    # Chunks of 3: [0..2] new (fast path); [3..5] holds minute 4 in its middle, with another
    # value (COPY fails, staging counts a conflict); [6..8] holds minute 7 in its middle,
    # equal (a duplicate); [9] new.
    rows = [[minute(n), "d1", "power_w", str(99 if n == 4 else n)] for n in range(10)]
    second = write_csv(tmp_path / "second.csv", HEADER, rows)
    assert counts(load(db_url, second, "--chunk-rows", "3")) == ("committed", 10, 8, 1, 1, 0)
    assert [r[3] for r in readings(conn)] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert scalar(conn, "select to_char(last_reading_at at time zone 'UTC', 'MI')"
                  " from telemetry.devices") == "09"
    assert scalar(conn, "select count(distinct batch_id) from telemetry.readings") == 2


def test_a_key_twice_in_one_file_counts_one_duplicate(db_url: str, conn: psycopg.Connection,
                                                      tmp_path: Path) -> None:
    path = write_csv(tmp_path / "twice.csv", HEADER, [
        [minute(0), "d1", "power_w", "1"], [minute(1), "d1", "power_w", "2"],
        [minute(1), "d1", "power_w", "2"], [minute(2), "d1", "power_w", "3"],
        [minute(2), "d1", "power_w", "7"], [minute(3), "d1", "power_w", "4"]])
    assert counts(load(db_url, path)) == ("committed", 6, 4, 1, 1, 0)
    assert [r[3] for r in readings(conn)] == [1, 2, 3, 4]


def test_rejects_in_one_chunk_keep_the_other_chunks_on_the_fast_path(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    conn.execute("insert into telemetry.metrics (metric_name, valid_min, valid_max)"
                 " values ('power_w', 0, 100)")
    rows = [[minute(n), "d1", "power_w", str(n)] for n in range(9)]
    rows[4][3] = "150"
    rows[7][0] = "2999-01-01T00:00:00Z"
    path = write_csv(tmp_path / "mixed.csv", HEADER, rows)
    assert counts(load(db_url, path, "--chunk-rows", "3")) == ("committed", 9, 7, 0, 0, 2)
    assert [(line, field) for _, line, field, *_ in rejects(conn)] == [(6, "value"),
                                                                     (9, "timestamp")]
    assert [r[3] for r in readings(conn)] == [0, 1, 2, 3, 5, 6, 8]
    batch = batches(conn)[0]
    assert (batch["min_recorded_at"].minute, batch["max_recorded_at"].minute) == (0, 8)


def test_a_reload_of_the_same_rows_counts_every_row_a_duplicate(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", HEADER,
                     [[minute(n), f"d{n % 3}", "power_w", str(n)] for n in range(12)])
    assert counts(load(db_url, path, "--chunk-rows", "5")) == ("committed", 12, 12, 0, 0, 0)
    assert counts(load(db_url, path, "--chunk-rows", "5", "--force")) == (
        "committed", 12, 0, 12, 0, 0)
    assert scalar(conn, "select count(*) from telemetry.readings") == 12


def test_qualities_of_different_lengths_are_copied_exactly(conn: psycopg.Connection) -> None:
    """The fast path lays rows out as fixed-size records: rows whose quality has another
    length are encoded as a group of their own, and each row keeps its own quality."""
    qualities = [None, "bad", "suspect", "good", "bad", None, "ünknown"]
    chunk = [Reading(n + 1, f"2026-01-26T00:{n:02d}:00+00:00", "d1", "power_w", float(n), q)
             for n, q in enumerate(qualities)]
    ids = KeyIds()
    with conn.transaction():
        batch_id = scalar(conn, "select ingest.begin_batch('t', 't', null)")
        with conn.cursor() as cur:
            assert copy_chunk(cur, batch_id, "default", chunk, ids)
    assert [(r[3], r[4]) for r in readings(conn)] == [
        (float(n), q or "good") for n, q in enumerate(qualities)]
