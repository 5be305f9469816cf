"""Test data for device-to-asset processing, written straight in SQL (no loader needed)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

WORKED_EXAMPLE_AT = datetime(2026, 1, 28, 14, 30, tzinfo=timezone.utc)
WORKED_EXAMPLE_METRICS = {
    "temperature": 25.5,
    "voltage": 12.3,
    "current": 2.5,
    "pressure": 101.3,
    "port_1_temp": 40.0,
    "port_2_temp": 55.0,
}


def add_device(conn: psycopg.Connection, device_key: str, tenant_id: int = 1) -> int:
    row = conn.execute(
        "insert into telemetry.devices (tenant_id, device_key) values (%s, %s)"
        " returning device_id",
        [tenant_id, device_key],
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_asset(
    conn: psycopg.Connection, asset_key: str, asset_type: str = "pump", tenant_id: int = 1
) -> int:
    row = conn.execute(
        "insert into telemetry.assets (tenant_id, asset_key, asset_type_id)"
        " select %s, %s, asset_type_id from telemetry.asset_types where asset_type_key = %s"
        " returning asset_id",
        [tenant_id, asset_key, asset_type],
    ).fetchone()
    assert row is not None, f"unknown asset type {asset_type}"
    return int(row[0])


def add_asset_type(
    conn: psycopg.Connection, key: str, telemetry_schema: dict[str, Any]
) -> int:
    row = conn.execute(
        "insert into telemetry.asset_types (asset_type_key, telemetry_schema) values (%s, %s)"
        " returning asset_type_id",
        [key, Jsonb(telemetry_schema)],
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_link(
    conn: psycopg.Connection,
    device_id: int,
    asset_id: int,
    mapping: dict[str, str] | None = None,
    rtu_port: int | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    link_role: str = "primary",
    tenant_id: int = 1,
) -> int:
    row = conn.execute(
        "insert into telemetry.device_asset_links (tenant_id, device_id, asset_id,"
        " metrics_mapping, rtu_port, link_role, valid_from, valid_until)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s) returning link_id",
        [tenant_id, device_id, asset_id, Jsonb(mapping or {}), rtu_port, link_role,
         valid_from, valid_until],
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_batch(conn: psycopg.Connection, source_name: str = "test") -> int:
    row = conn.execute(
        "insert into ingest.batches (source_kind, source_name, status)"
        " values ('test', %s, 'committed') returning batch_id",
        [source_name],
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_readings(
    conn: psycopg.Connection,
    batch_id: int,
    device_id: int,
    recorded_at: datetime,
    metrics: dict[str, float],
    quality: str = "good",
) -> None:
    """One reading per metric at one time, registering metric names as a loader would."""
    with conn.cursor() as cur:
        cur.execute(
            "insert into telemetry.metrics (metric_name) select unnest(%s::text[])"
            " on conflict (metric_name) do nothing",
            [list(metrics)],
        )
        cur.execute(
            "insert into telemetry.readings (recorded_at, device_id, metric_id, value, quality,"
            " batch_id)"
            " select %s, %s, m.metric_id, v.value, %s, %s"
            " from unnest(%s::text[], %s::float8[]) as v (metric_name, value)"
            " inner join telemetry.metrics as m on m.metric_name = v.metric_name",
            [recorded_at, device_id, quality, batch_id, list(metrics), list(metrics.values())],
        )


def process_batch(conn: psycopg.Connection, batch_id: int) -> dict[str, int]:
    cur = conn.execute("select * from ingest.process_batch(%s)", [batch_id])
    row = cur.fetchone()
    assert row is not None and cur.description is not None
    return {col.name: int(value) for col, value in zip(cur.description, row, strict=True)}


def process_range(conn: psycopg.Connection, start: datetime, end: datetime) -> dict[str, int]:
    cur = conn.execute("select * from ingest.process_range(%s, %s)", [start, end])
    row = cur.fetchone()
    assert row is not None and cur.description is not None
    return {col.name: int(value) for col, value in zip(cur.description, row, strict=True)}


def asset_rows(
    conn: psycopg.Connection, asset_key: str | None = None
) -> set[tuple[datetime, str, str, str, float, str]]:
    """(recorded_at, asset_key, metric_name, source_device_key, value, quality) rows."""
    rows = conn.execute(
        "select ar.recorded_at, a.asset_key, m.metric_name, d.device_key, ar.value, ar.quality"
        " from telemetry.asset_readings as ar"
        " inner join telemetry.assets as a on a.asset_id = ar.asset_id"
        " inner join telemetry.metrics as m on m.metric_id = ar.metric_id"
        " inner join telemetry.devices as d on d.device_id = ar.source_device_id"
        " where %(key)s::text is null or a.asset_key = %(key)s",
        {"key": asset_key},
    ).fetchall()
    return {tuple(r) for r in rows}  # type: ignore[misc]


def latest_health(conn: psycopg.Connection, asset_key: str) -> tuple[Any, Any, Any]:
    row = conn.execute(
        "select latest_health_score, latest_health_at, latest_health_source"
        " from telemetry.assets where asset_key = %s",
        [asset_key],
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def worked_example(conn: psycopg.Connection) -> int:
    """The issue's example: device-abc-123 feeding Pump A (primary) and Pump B (RTU port 1).

    Returns the batch id (not yet processed).
    """
    device_id = add_device(conn, "device-abc-123")
    pump_a = add_asset(conn, "Pump A")
    pump_b = add_asset(conn, "Pump B")
    add_link(conn, device_id, pump_a, mapping={
        "device.voltage": "asset.power_input",
        "device.current": "asset.power_current",
        "device.temperature": "asset.motor_temperature",
    })
    add_link(conn, device_id, pump_b, mapping={"temperature": "motor_temperature"},
             rtu_port=1, link_role="secondary")
    batch_id = add_batch(conn, "worked-example")
    add_readings(conn, batch_id, device_id, WORKED_EXAMPLE_AT, WORKED_EXAMPLE_METRICS)
    return batch_id


def tables_snapshot(conn: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row (with its physical version, xmin) of the tables processing writes."""
    queries = {
        "asset_readings": "select xmin::text, * from telemetry.asset_readings order by 2, 3, 4, 5",
        "assets": "select xmin::text, * from telemetry.assets order by asset_id",
        "batches": "select xmin::text, * from ingest.batches order by batch_id",
        "metrics": "select xmin::text, * from telemetry.metrics order by metric_id",
    }
    return {name: conn.execute(q).fetchall() for name, q in queries.items()}  # type: ignore[arg-type]
