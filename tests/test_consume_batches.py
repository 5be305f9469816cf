"""One micro-batch of raw payloads written through the consumer's hand-over
(loader.stream.sink.write_payloads): message-id deduplication and asset processing, in the
database."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from loader.stream.pipeline import Payload
from loader.stream.sink import BatchCounts, write_payloads
from tests.consume_support import asset_worker_message, pumps_for_worked_example
from tests.processing_support import add_device, add_link


def write_batch(conn: psycopg.Connection, *messages: dict[str, Any]) -> BatchCounts:
    written = write_payloads(conn, [Payload("telemetry.normalized.v1", None,
                                            json.dumps(m).encode(), sequence)
                                    for sequence, m in enumerate(messages, start=1)],
                             source_name="nats:test", events=False)
    assert written.counts is not None and written.poisoned == {}
    return written.counts


def count(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_a_batch_mixing_a_redelivered_message_with_new_ones_writes_only_the_new_ones(
        conn: psycopg.Connection) -> None:
    first = asset_worker_message("msg-1")
    write_batch(conn, first)
    before = count(conn, "select count(*) from telemetry.readings")
    second = asset_worker_message("msg-2", timestamp="2026-01-28T14:31:00Z")
    counts = write_batch(conn, first, second)
    assert (counts.messages, counts.messages_inserted, counts.messages_duplicate) == (2, 1, 1)
    assert counts.readings_inserted == len(second["metrics"])
    assert count(conn, "select count(*) from telemetry.readings") == before + len(
        second["metrics"])
    assert conn.execute(
        "select message_id, count(*) from ingest.message_receipts group by 1 order by 1"
    ).fetchall() == [("msg-1", 1), ("msg-2", 1)]


def test_only_the_batch_devices_links_are_mapped_and_other_links_change_nothing(
        conn: psycopg.Connection) -> None:
    pumps_for_worked_example(conn)
    tenant_id = count(conn, "select tenant_id from telemetry.tenants where tenant_key = 'org-1'")
    pump_a = count(conn, "select asset_id from telemetry.assets where asset_key = 'Pump A'")
    # Another device linked to Pump A, not in the batch, with a mapping of its own.
    other = add_device(conn, "device-other", tenant_id=tenant_id)
    add_link(conn, other, pump_a, tenant_id=tenant_id,
             mapping={"device.voltage": "asset.other_input"})
    counts = write_batch(conn, asset_worker_message("msg-1"))
    assert counts.messages_inserted == 1
    rows = conn.execute(
        "select a.asset_key, m.metric_name, ar.value from telemetry.asset_readings as ar"
        " join telemetry.assets as a using (asset_id)"
        " join telemetry.metrics as m using (metric_id)"
        " where m.metric_name in ('power_input', 'other_input', 'temp')"
        " order by 1, 2").fetchall()
    assert rows == [("Pump A", "power_input", 12.3), ("Pump B", "temp", 40.0)]
    assert count(conn, "select count(*) from telemetry.metrics"
                       " where metric_name = 'other_input'") == 0
