"""Device-to-asset mapping: links, validity windows, RTU ports, renames, metric registration."""

from __future__ import annotations

import threading
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
    asset_rows,
    latest_health,
    process_batch,
    process_range,
    worked_example,
)

T = WORKED_EXAMPLE_AT


def test_worked_example_maps_every_asset_reading_exactly(conn: psycopg.Connection) -> None:
    batch_id = worked_example(conn)
    counts = process_batch(conn, batch_id)
    dev = "device-abc-123"
    # Derived by hand from the rules in docs/processing.md:
    # Pump A (no port): mapped names renamed, unmapped `pressure` carried as is, port_1_temp and
    # port_2_temp left to port links; power_consumption = 12.3 * 2.5; no rule fires -> 100.
    # Pump B (port 1): only port_1_temp, stripped to `temp`; its mapping names `temperature`,
    # which port 1 does not carry, so `temp` is carried as is; no rule metric -> 100.
    expected = {
        (T, "Pump A", "power_input", dev, 12.3, "good"),
        (T, "Pump A", "power_current", dev, 2.5, "good"),
        (T, "Pump A", "motor_temperature", dev, 25.5, "good"),
        (T, "Pump A", "pressure", dev, 101.3, "good"),
        (T, "Pump A", "power_consumption", dev, 12.3 * 2.5, "good"),
        (T, "Pump A", "health_score", dev, 100.0, "good"),
        (T, "Pump B", "temp", dev, 40.0, "good"),
        (T, "Pump B", "health_score", dev, 100.0, "good"),
    }
    assert asset_rows(conn) == expected
    assert counts == {"asset_rows_inserted": 8, "assets_updated": 2,
                      "derived_rows_inserted": 1, "health_rows_inserted": 2}
    for pump in ("Pump A", "Pump B"):
        score, at, source = latest_health(conn, pump)
        assert (score, at) == (100.0, T)
        assert "device-abc-123" in source and f"batch {batch_id}" in source
    row = conn.execute("select asset_rows_inserted from ingest.batches where batch_id = %s",
                       [batch_id]).fetchone()
    assert row == (8,)


def test_worked_example_scores_agree_with_health_score_function(
    conn: psycopg.Connection,
) -> None:
    process_batch(conn, worked_example(conn))
    row = conn.execute(
        "select telemetry.health_score('pump', %s::jsonb),"
        " telemetry.health_score('pump', '{\"temp\": 40.0}')",
        ['{"power_input": 12.3, "power_current": 2.5, "motor_temperature": 25.5,'
         ' "pressure": 101.3}'],
    ).fetchone()
    assert row == (latest_health(conn, "Pump A")[0], latest_health(conn, "Pump B")[0])


def test_link_valid_only_yesterday_does_not_map_todays_reading(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-1")
    pump = add_asset(conn, "pump-1")
    add_link(conn, device, pump,
             valid_from=T - timedelta(days=1), valid_until=T - timedelta(hours=1))
    batch = add_batch(conn)
    add_readings(conn, batch, device, T, {"vibration": 1.0})
    add_readings(conn, batch, device, T - timedelta(hours=2), {"vibration": 2.0})
    process_batch(conn, batch)
    assert {(r[0], r[2], r[4]) for r in asset_rows(conn)} == {
        (T - timedelta(hours=2), "vibration", 2.0),
        (T - timedelta(hours=2), "health_score", 100.0),
    }


def test_link_window_includes_valid_from_and_excludes_valid_until(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-1")
    old_pump = add_asset(conn, "old-pump")
    new_pump = add_asset(conn, "new-pump")
    add_link(conn, device, old_pump, valid_until=T)
    add_link(conn, device, new_pump, valid_from=T)
    batch = add_batch(conn)
    add_readings(conn, batch, device, T, {"vibration": 6.0})
    add_readings(conn, batch, device, T - timedelta(seconds=1), {"vibration": 1.0})
    process_batch(conn, batch)
    assert {(r[1], r[0], r[4]) for r in asset_rows(conn) if r[2] == "vibration"} == {
        ("old-pump", T - timedelta(seconds=1), 1.0),
        ("new-pump", T, 6.0),
    }
    assert latest_health(conn, "new-pump")[0] == 80.0


def test_device_without_links_keeps_readings_and_writes_no_asset_rows(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "lonely")
    batch = add_batch(conn)
    add_readings(conn, batch, device, T, {"voltage": 1.0})
    assert process_batch(conn, batch)["asset_rows_inserted"] == 0
    assert asset_rows(conn) == set()
    assert conn.execute("select count(*) from telemetry.readings").fetchone() == (1,)


def test_one_asset_fed_by_two_devices_records_each_source(conn: psycopg.Connection) -> None:
    thermo = add_device(conn, "thermo")
    shaker = add_device(conn, "shaker")
    pump = add_asset(conn, "pump-1")
    add_link(conn, thermo, pump, mapping={"temperature": "motor_temperature"})
    add_link(conn, shaker, pump, link_role="secondary")
    batch = add_batch(conn)
    add_readings(conn, batch, thermo, T, {"temperature": 75.0})
    add_readings(conn, batch, shaker, T + timedelta(seconds=1), {"vibration": 7.0})
    process_batch(conn, batch)
    assert asset_rows(conn) == {
        (T, "pump-1", "motor_temperature", "thermo", 75.0, "good"),
        (T, "pump-1", "health_score", "thermo", 90.0, "good"),
        (T + timedelta(seconds=1), "pump-1", "vibration", "shaker", 7.0, "good"),
        (T + timedelta(seconds=1), "pump-1", "health_score", "shaker", 80.0, "good"),
    }
    # The newest reading set wins the asset's latest health.
    assert latest_health(conn, "pump-1")[:2] == (80.0, T + timedelta(seconds=1))


@pytest.mark.parametrize("mapping", [
    {"voltage": "power_input"},
    {"device.voltage": "asset.power_input"},
])
def test_mapping_accepts_plain_and_prefixed_names(
    conn: psycopg.Connection, mapping: dict[str, str]
) -> None:
    device = add_device(conn, "dev-1")
    pump = add_asset(conn, "pump-1")
    add_link(conn, device, pump, mapping=mapping)
    batch = add_batch(conn)
    add_readings(conn, batch, device, T, {"voltage": 230.0})
    process_batch(conn, batch)
    assert {r[2] for r in asset_rows(conn)} == {"power_input", "health_score"}


def test_port_link_renames_the_stripped_name(conn: psycopg.Connection) -> None:
    rtu = add_device(conn, "rtu-1")
    pump_1 = add_asset(conn, "pump-1")
    pump_2 = add_asset(conn, "pump-2")
    add_link(conn, rtu, pump_1, rtu_port=1)
    add_link(conn, rtu, pump_2, rtu_port=2, mapping={"temperature": "motor_temperature"})
    batch = add_batch(conn)
    add_readings(conn, batch, rtu, T, {"port_1_vibration": 5.5, "port_2_temperature": 81.0,
                                       "port_12_vibration": 9.0, "uptime": 1.0})
    process_batch(conn, batch)
    assert {(r[1], r[2], r[4]) for r in asset_rows(conn)} == {
        ("pump-1", "vibration", 5.5),
        ("pump-1", "health_score", 80.0),
        ("pump-2", "motor_temperature", 81.0),
        ("pump-2", "health_score", 70.0),
    }


def test_processing_registers_asset_metrics_with_units(conn: psycopg.Connection) -> None:
    process_batch(conn, worked_example(conn))
    rows = dict(conn.execute(
        "select metric_name, unit from telemetry.metrics where metric_name = any(%s)",
        [["power_input", "power_consumption", "health_score", "temp"]],
    ).fetchall())
    assert rows == {"power_input": None, "power_consumption": "W", "health_score": None,
                    "temp": None}


def test_ingest_role_can_process_a_batch(conn: psycopg.Connection) -> None:
    batch_id = worked_example(conn)
    conn.execute("set role tsfleet_ingest")
    try:
        assert process_batch(conn, batch_id)["asset_rows_inserted"] == 8
    finally:
        conn.execute("reset role")


def test_process_range_maps_readings_after_a_link_is_added(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-1")
    batch = add_batch(conn)
    add_readings(conn, batch, device, T, {"vibration": 6.0})
    process_batch(conn, batch)
    assert asset_rows(conn) == set()
    pump = add_asset(conn, "pump-1")
    add_link(conn, device, pump)
    counts = process_range(conn, T - timedelta(hours=1), T + timedelta(hours=1))
    assert counts["asset_rows_inserted"] == 2
    assert {(r[2], r[4]) for r in asset_rows(conn)} == {("vibration", 6.0),
                                                        ("health_score", 80.0)}
    assert conn.execute("select asset_rows_inserted from ingest.batches where batch_id = %s",
                        [batch]).fetchone() == (2,)


def test_process_range_rejects_an_empty_range(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_start < p_end"):
        process_range(conn, T, T)


def test_batch_processed_late_does_not_replace_a_newer_latest_health(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-1")
    add_link(conn, device, add_asset(conn, "pump-1"))
    newer, older = add_batch(conn, "newer"), add_batch(conn, "older")
    add_readings(conn, newer, device, T, {"vibration": 1.0})
    add_readings(conn, older, device, T - timedelta(minutes=5), {"vibration": 9.0})
    process_batch(conn, newer)
    assert process_batch(conn, older)["assets_updated"] == 0
    score, at, source = latest_health(conn, "pump-1")
    assert (score, at) == (100.0, T) and f"batch {newer}" in source


def test_concurrent_batches_register_a_new_asset_metric_once(
    conn: psycopg.Connection, db_url: str
) -> None:
    batches = []
    for key in ("dev-1", "dev-2"):
        device = add_device(conn, key)
        add_link(conn, device, add_asset(conn, f"pump-{key}"), mapping={"flow": "flow_rate"})
        batch = add_batch(conn, key)
        add_readings(conn, batch, device, T, {"flow": 3.0})
        batches.append(batch)
    results: dict[str, object] = {}

    def second_transaction() -> None:
        with psycopg.connect(db_url) as other:
            results["second"] = process_batch(other, batches[1])["asset_rows_inserted"]
            other.commit()

    with psycopg.connect(db_url) as first:
        assert process_batch(first, batches[0])["asset_rows_inserted"] == 2
        worker = threading.Thread(target=second_transaction)
        worker.start()          # registers flow_rate too: waits for the first transaction
        first.commit()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert results == {"second": 2}
    assert conn.execute("select count(*) from telemetry.metrics"
                        " where metric_name = 'flow_rate'").fetchone() == (1,)
    assert len(asset_rows(conn)) == 4
