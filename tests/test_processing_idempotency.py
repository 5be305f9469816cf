"""Re-processing writes nothing new and changes nothing, whichever entry point re-runs."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tests.processing_support import (
    WORKED_EXAMPLE_AT,
    add_asset,
    add_batch,
    add_device,
    add_link,
    add_readings,
    process_batch,
    process_range,
    tables_snapshot,
    worked_example,
)

T = WORKED_EXAMPLE_AT


def fleet(conn: psycopg.Connection) -> int:
    """The worked example plus a second device with readings over two days in one batch."""
    batch = worked_example(conn)
    device = add_device(conn, "dev-2")
    add_link(conn, device, add_asset(conn, "pump-2"), mapping={"temperature": "motor_temperature"})
    for hours in range(0, 48, 6):
        add_readings(conn, batch, device, T - timedelta(hours=hours),
                     {"temperature": 60.0 + hours, "vibration": hours / 8})
    return batch


def test_processing_a_batch_twice_gives_identical_tables(conn: psycopg.Connection) -> None:
    batch = fleet(conn)
    first = process_batch(conn, batch)
    assert first["asset_rows_inserted"] == 8 + 8 * 3
    before = tables_snapshot(conn)
    second = process_batch(conn, batch)
    assert second == {"asset_rows_inserted": 0, "assets_updated": 0,
                      "derived_rows_inserted": 0, "health_rows_inserted": 0}
    # Same rows and the same row versions (xmin): nothing was rewritten.
    assert tables_snapshot(conn) == before


def test_processing_a_batch_twice_in_one_transaction_changes_nothing(
    conn: psycopg.Connection,
) -> None:
    batch = fleet(conn)
    with conn.transaction():
        process_batch(conn, batch)
        before = tables_snapshot(conn)
        assert process_batch(conn, batch)["asset_rows_inserted"] == 0
        assert tables_snapshot(conn) == before


def test_process_range_after_process_batch_changes_nothing(conn: psycopg.Connection) -> None:
    batch = fleet(conn)
    process_batch(conn, batch)
    before = tables_snapshot(conn)
    counts = process_range(conn, T - timedelta(days=3), T + timedelta(days=1))
    assert counts["asset_rows_inserted"] == 0
    assert tables_snapshot(conn) == before


def test_batch_time_range_narrows_the_scan_without_changing_the_result(
    conn: psycopg.Connection,
) -> None:
    batch = fleet(conn)
    conn.execute(
        "update ingest.batches set (min_recorded_at, max_recorded_at) ="
        " (select min(recorded_at), max(recorded_at) from telemetry.readings where batch_id = %s)"
        " where batch_id = %s",
        [batch, batch],
    )
    assert process_batch(conn, batch)["asset_rows_inserted"] == 8 + 8 * 3


@pytest.mark.community
def test_reprocessing_into_compressed_chunks_changes_nothing(conn: psycopg.Connection) -> None:
    batch = fleet(conn)
    process_batch(conn, batch)
    conn.execute("select public.compress_chunk(c) from public.show_chunks("
                 "'telemetry.asset_readings') as c")
    before = conn.execute("select * from telemetry.asset_readings order by 1, 2, 3, 4").fetchall()
    assert process_batch(conn, batch)["asset_rows_inserted"] == 0
    after = conn.execute("select * from telemetry.asset_readings order by 1, 2, 3, 4").fetchall()
    assert after == before


def test_reading_set_split_over_two_batches_keeps_the_first_score(
    conn: psycopg.Connection,
) -> None:
    # Known limitation (docs/processing.md): sets are formed per call, so the second batch's
    # set {power_current} conflicts with the first batch's health_score row and keeps it.
    device = add_device(conn, "dev-1")
    add_link(conn, device, add_asset(conn, "pump-1"),
             mapping={"voltage": "power_input", "current": "power_current"})
    first, second = add_batch(conn, "first"), add_batch(conn, "second")
    add_readings(conn, first, device, T, {"voltage": 12.0})
    add_readings(conn, second, device, T, {"current": 0.5})
    assert process_batch(conn, first)["asset_rows_inserted"] == 2
    counts = process_batch(conn, second)
    assert counts["asset_rows_inserted"] == 1 and counts["health_rows_inserted"] == 0
    rows = conn.execute(
        "select m.metric_name, ar.value, ar.batch_id from telemetry.asset_readings as ar"
        " inner join telemetry.metrics as m using (metric_id) order by 1").fetchall()
    assert rows == [("health_score", 100.0, first), ("power_current", 0.5, second),
                    ("power_input", 12.0, first)]


def test_device_linked_twice_to_one_asset_writes_each_row_once(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-1")
    pump = add_asset(conn, "pump-1")
    add_link(conn, device, pump)
    add_link(conn, device, pump, link_role="secondary")
    batch = add_batch(conn)
    add_readings(conn, batch, device, T, {"vibration": 6.0})
    assert process_batch(conn, batch)["asset_rows_inserted"] == 2
    assert conn.execute("select count(*) from telemetry.asset_readings").fetchone() == (2,)
