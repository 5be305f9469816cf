"""`tsfleet consume nats` against a real NATS JetStream server and a real TimescaleDB."""

from __future__ import annotations

import json
import time

import psycopg

from tests import nats_support
from tests.consume_support import (
    DURABLE,
    STREAM,
    SUBJECT,
    asset_worker_message,
    count,
    fleet_messages,
    pumps_for_worked_example,
    receipts,
    running_consumer,
    wait_until,
)
from tests.nats_support import (
    NatsServer,
    add_stream,
    consumer_state,
    publish,
    stream_messages,
)

DRAIN = ("--stop-when-drained", "--max-wait", "100ms")

# The fixtures this module uses (a NATS server per test), bound here so pytest finds them.
nats_binary = nats_support.nats_binary
nats_server = nats_support.nats_server


def drained(nats: NatsServer) -> bool:
    state = consumer_state(nats.url, STREAM, DURABLE)
    return state["num_pending"] == 0 and state["num_ack_pending"] == 0


def test_asset_worker_message_lands_as_device_and_asset_readings_with_health(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    pumps_for_worked_example(conn)
    add_stream(nats_server.url, STREAM, [SUBJECT])
    publish(nats_server.url, SUBJECT, [asset_worker_message()])

    with running_consumer(nats_server.url, db_url, *DRAIN) as consumer:
        assert consumer.wait() == 0, consumer.output()

    device_rows = conn.execute(
        "select m.metric_name, r.value from telemetry.readings as r"
        " inner join telemetry.devices as d on d.device_id = r.device_id"
        " inner join telemetry.metrics as m on m.metric_id = r.metric_id"
        " where d.device_key = 'device-abc-123' and r.recorded_at = '2026-01-28T14:30:00Z'"
    ).fetchall()
    assert dict(device_rows) == {"temperature": 25.5, "voltage": 12.3, "current": 2.5,
                                 "pressure": 101.3, "port_1_temp": 40.0, "port_2_temp": 55.0}
    asset_rows = conn.execute(
        "select a.asset_key, m.metric_name, d.device_key, ar.value"
        " from telemetry.asset_readings as ar"
        " inner join telemetry.assets as a on a.asset_id = ar.asset_id"
        " inner join telemetry.metrics as m on m.metric_id = ar.metric_id"
        " inner join telemetry.devices as d on d.device_id = ar.source_device_id"
        " where ar.recorded_at = '2026-01-28T14:30:00Z'").fetchall()
    # Issue 3's worked example: Pump A maps and derives; Pump B takes port 1 only (port_1_temp
    # stripped to temp); no health rule fires on either.
    dev = "device-abc-123"
    assert sorted(asset_rows) == sorted([
        ("Pump A", "power_input", dev, 12.3),
        ("Pump A", "power_current", dev, 2.5),
        ("Pump A", "motor_temperature", dev, 25.5),
        ("Pump A", "pressure", dev, 101.3),
        ("Pump A", "power_consumption", dev, 12.3 * 2.5),
        ("Pump A", "health_score", dev, 100.0),
        ("Pump B", "temp", dev, 40.0),
        ("Pump B", "health_score", dev, 100.0),
    ])
    health = dict(conn.execute(
        "select asset_key, latest_health_score from telemetry.assets").fetchall())
    assert health == {"Pump A": 100.0, "Pump B": 100.0}
    device = conn.execute(
        "select device_type, serial_number, firmware_version from telemetry.devices"
        " where device_key = 'device-abc-123'").fetchone()
    assert device == ("pump-controller", "SN-4711", "2.3.1")
    assert drained(nats_server)


def test_the_same_message_id_published_twice_writes_one_set_of_rows(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    message = asset_worker_message("msg-twice")
    publish(nats_server.url, SUBJECT, [message])
    with running_consumer(nats_server.url, db_url, *DRAIN) as first:
        assert first.wait() == 0, first.output()
    publish(nats_server.url, SUBJECT, [message])  # a redelivery by the publisher
    with running_consumer(nats_server.url, db_url, *DRAIN) as second:
        assert second.wait() == 0, second.output()

    assert count(db_url, "select count(*) from telemetry.readings") == 6
    assert receipts(db_url) == 1
    assert first.stats()["processed"] == 1
    assert second.stats()["processed"] == 0
    assert second.stats()["duplicates"] == 1


def test_the_same_message_id_twice_in_one_batch_is_written_once(
    nats_server: NatsServer, db_url: str
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    message = asset_worker_message("msg-burst")
    publish(nats_server.url, SUBJECT, [message, message, message])
    with running_consumer(nats_server.url, db_url, *DRAIN) as consumer:
        assert consumer.wait() == 0, consumer.output()
    assert count(db_url, "select count(*) from telemetry.readings") == 6
    stats = consumer.stats()
    assert (stats["processed"], stats["duplicates"]) == (1, 2)
    assert drained(nats_server)


def test_poison_messages_are_rejected_dead_lettered_and_do_not_block_good_ones(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    good = fleet_messages(devices=2, steps=3)
    no_id = {k: v for k, v in good[0].items() if k != "messageId"}
    seqs = publish(nats_server.url, SUBJECT,
                   [good[0], b"{not json", *good[1:3], no_id, b"[1, 2]", *good[3:]])

    with running_consumer(nats_server.url, db_url, *DRAIN) as consumer:
        assert consumer.wait() == 0, consumer.output()

    assert receipts(db_url) == 6
    assert count(db_url, "select count(*) from telemetry.readings") == 6 * 4
    rejects = conn.execute(
        "select line_number, field_name, reason, raw_text, source_name from ingest.rejects"
        " order by line_number").fetchall()
    assert [(r[0], r[1]) for r in rejects] == [(seqs[1], None), (seqs[4], "messageId"),
                                               (seqs[5], None)]
    assert "invalid JSON" in rejects[0][2]
    assert "messageId is missing" in rejects[1][2]
    assert "must be a JSON object" in rejects[2][2]
    assert rejects[0][3] == "{not json"
    assert {r[4] for r in rejects} == {f"nats:{STREAM}:{SUBJECT}"}

    letters = stream_messages(nats_server.url, "telemetry.dlq")
    assert len(letters) == 3
    bodies = [json.loads(data) for _headers, data in letters]
    assert [b["streamSequence"] for b in bodies] == [seqs[1], seqs[4], seqs[5]]
    assert bodies[0]["payload"] == "{not json"
    assert bodies[0]["originalSubject"] == SUBJECT
    assert bodies[0]["deliveryCount"] == 1
    assert "invalid JSON" in bodies[0]["lastError"]
    assert letters[0][0]["Tsfleet-Original-Subject"] == SUBJECT
    stats = consumer.stats()
    assert (stats["processed"], stats["dead_lettered"]) == (6, 3)
    assert drained(nats_server)  # terminated: never redelivered


CURSE_DEVICE_SQL = """
create function public.curse_device() returns trigger language plpgsql as $$
begin
    raise exception 'device % is cursed', new.device_key;
end;
$$;
create trigger devices_curse before insert on telemetry.devices
for each row when (new.device_key = 'device-cursed') execute function public.curse_device();
"""


def test_a_message_the_database_refuses_is_retried_then_dead_lettered_after_max_deliver(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    conn.execute(CURSE_DEVICE_SQL)
    add_stream(nats_server.url, STREAM, [SUBJECT])
    good = fleet_messages(devices=3, steps=2)
    cursed = {**good[0], "messageId": "cursed-1", "deviceId": "device-cursed"}
    seqs = publish(nats_server.url, SUBJECT, [good[0], cursed, *good[1:]])

    with running_consumer(nats_server.url, db_url, "--max-deliver", "3",
                          *DRAIN) as consumer:
        assert consumer.wait() == 0, consumer.output()

    assert receipts(db_url) == 6
    assert count(db_url, "select count(*) from telemetry.devices"
                         " where device_key = 'device-cursed'") == 0
    (line, reason), = conn.execute("select line_number, reason from ingest.rejects").fetchall()
    assert line == seqs[1]
    assert "device device-cursed is cursed" in reason and "after 3 deliveries" in reason
    (_headers, data), = stream_messages(nats_server.url, "telemetry.dlq")
    letter = json.loads(data)
    assert letter["deliveryCount"] == 3
    assert json.loads(letter["payload"])["messageId"] == "cursed-1"
    assert consumer.stats()["dead_lettered"] == 1
    assert drained(nats_server)


def test_sigterm_commits_and_acks_the_batch_in_hand_and_exits_cleanly(
    nats_server: NatsServer, db_url: str
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    messages = fleet_messages(devices=5, steps=20)
    with running_consumer(nats_server.url, db_url, "--batch", "10") as consumer:
        consumer.wait_for_event("consumer_started")
        publish(nats_server.url, SUBJECT, messages)
        wait_until(lambda: receipts(db_url) > 0, what="the first batch")
        assert consumer.terminate() == 0, consumer.output()
    assert consumer.wait_for_event("consumer_stopped")
    written = receipts(db_url)
    assert consumer.stats()["processed"] == written
    # Everything written was acked: a successor gets exactly the rest, and no duplicate.
    with running_consumer(nats_server.url, db_url, *DRAIN) as successor:
        assert successor.wait() == 0, successor.output()
    assert successor.stats()["processed"] == len(messages) - written
    assert successor.stats()["duplicates"] == 0
    assert receipts(db_url) == len(messages)


def test_asset_events_go_through_the_outbox_with_health_and_previous_health(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    pumps_for_worked_example(conn)
    add_stream(nats_server.url, STREAM, [SUBJECT])
    first = asset_worker_message("msg-1")
    hot = asset_worker_message("msg-2", timestamp="2026-01-28T14:31:00Z",
                               metrics={"temperature": 85.0, "voltage": 12.3, "current": 2.5})
    publish(nats_server.url, SUBJECT, [first, hot])

    with running_consumer(nats_server.url, db_url, "--asset-events", *DRAIN) as consumer:
        assert consumer.wait() == 0, consumer.output()

    events = [json.loads(data) for _h, data in stream_messages(nats_server.url,
                                                               "telemetry.asset.v1")]
    pump_a = sorted((e for e in events if e["assetId"] == "Pump A"),
                    key=lambda e: e["timestamp"])
    assert [(e["timestamp"], e["healthScore"], e["previousHealthScore"]) for e in pump_a] == [
        ("2026-01-28T14:30:00.000Z", 100.0, None),
        ("2026-01-28T14:31:00.000Z", 70.0, 100.0),  # motor_temperature 85 > 80 costs 30
    ]
    assert pump_a[1]["metrics"]["motor_temperature"] == 85.0
    assert pump_a[1]["sourceDeviceId"] == "device-abc-123"
    assert pump_a[1]["organizationId"] == "org-1"
    assert {e["assetId"] for e in events} == {"Pump A", "Pump B"}
    assert count(db_url, "select count(*) from ingest.asset_event_outbox"
                         " where published_at is null") == 0
    assert count(db_url, "select count(*) from ingest.asset_event_outbox") == len(events)
    assert consumer.stats()["events_published"] == len(events)


def test_a_bad_duration_is_a_usage_error(db_url: str) -> None:
    from click.testing import CliRunner

    from loader.cli import main

    result = CliRunner().invoke(main, ["consume", "nats", "--servers", "nats://127.0.0.1:1",
                                       "--stream", "S", "--durable", "d", "--database-url",
                                       db_url, "--max-wait", "soon"])
    assert result.exit_code == 2
    assert "duration like 200ms" in result.output


FAIL_ASSET_SQL = """
create function public.refuse_asset_value() returns trigger language plpgsql as $$
begin
    raise exception 'asset reading % refused', new.value;
end;
$$;
create trigger asset_readings_refuse before insert on telemetry.asset_readings
for each row when (new.value = 999) execute function public.refuse_asset_value();
"""


def test_no_asset_event_exists_for_a_batch_that_rolled_back(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    pumps_for_worked_example(conn)
    conn.execute(FAIL_ASSET_SQL)  # processing fails for voltage 999, after mapping started
    add_stream(nats_server.url, STREAM, [SUBJECT])
    good = asset_worker_message("msg-good")
    bad = asset_worker_message("msg-bad", timestamp="2026-01-28T14:31:00Z",
                               metrics={"temperature": 30.0, "voltage": 999.0, "current": 1.0})
    publish(nats_server.url, SUBJECT, [good, bad])

    with running_consumer(nats_server.url, db_url, "--asset-events", "--max-deliver", "2",
                          *DRAIN) as consumer:
        assert consumer.wait() == 0, consumer.output()

    stamps = {json.loads(data)["timestamp"]
              for _h, data in stream_messages(nats_server.url, "telemetry.asset.v1")}
    assert stamps == {"2026-01-28T14:30:00.000Z"}
    assert count(db_url, "select count(*) from ingest.asset_event_outbox"
                         " where recorded_at = '2026-01-28T14:31:00Z'") == 0
    assert count(db_url, "select count(*) from telemetry.readings"
                         " where recorded_at = '2026-01-28T14:31:00Z'") == 0
    assert consumer.stats()["dead_lettered"] == 1


def test_a_broken_deployment_is_retried_not_dead_lettered_message_by_message(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    conn.execute("alter function ingest.commit_batch(bigint, bigint, bigint)"
                 " rename to commit_batch_elsewhere")  # as if a migration went wrong
    add_stream(nats_server.url, STREAM, [SUBJECT])
    messages = fleet_messages(devices=2, steps=5)
    publish(nats_server.url, SUBJECT, messages)
    with running_consumer(nats_server.url, db_url, "--max-deliver", "2") as consumer:
        retrying = consumer.wait_for_event("database_error_retrying")
        assert "commit_batch" in retrying["error"]
        conn.execute("alter function ingest.commit_batch_elsewhere(bigint, bigint, bigint)"
                     " rename to commit_batch")  # the operator fixes it
        wait_until(lambda: receipts(db_url) == len(messages), what="every message")
        wait_until(lambda: drained(nats_server), what="every ack")
        assert consumer.terminate() == 0, consumer.output()
    assert consumer.stats()["dead_lettered"] == 0
    assert count(db_url, "select count(*) from ingest.rejects") == 0


def test_a_device_record_changed_in_a_later_batch_updates_the_device(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    """The consumer skips re-registering a device whose record it already committed unchanged;
    a changed record (new firmware) still reaches telemetry.devices."""
    add_stream(nats_server.url, STREAM, [SUBJECT])
    metadata = asset_worker_message()["deviceMetadata"]
    publish(nats_server.url, SUBJECT, [
        asset_worker_message("fw-1"),
        asset_worker_message("fw-2", timestamp="2026-01-28T14:31:00Z"),
        asset_worker_message("fw-3", timestamp="2026-01-28T14:32:00Z",
                             deviceMetadata={**metadata, "firmwareVersion": "2.4.0"}),
    ])
    with running_consumer(nats_server.url, db_url, "--batch", "1", *DRAIN) as consumer:
        assert consumer.wait() == 0, consumer.output()
    assert consumer.stats()["batches"] == 3
    device = conn.execute("select t.tenant_key, d.firmware_version from telemetry.devices as d"
                          " inner join telemetry.tenants as t on t.tenant_id = d.tenant_id"
                          ).fetchall()
    assert device == [("org-1", "2.4.0")]
    assert count(db_url, "select count(*) from telemetry.readings") == 3 * 6


def test_two_workers_in_one_process_write_side_by_side_and_once(
    nats_server: NatsServer, db_url: str
) -> None:
    """--workers 2: two pull subscriptions and two database connections in one process share
    the durable; every message is written once, and the counters are the process's."""
    add_stream(nats_server.url, STREAM, [SUBJECT])
    messages = fleet_messages(50, 100)
    publish(nats_server.url, SUBJECT, messages)
    writers_seen = 0
    with running_consumer(nats_server.url, db_url, *DRAIN, "--workers", "2",
                          "--batch", "100") as consumer, \
            psycopg.connect(db_url, autocommit=True) as watcher:
        while consumer.process is not None and consumer.process.poll() is None:
            row = watcher.execute(
                "select count(*) from pg_stat_activity where application_name ="
                " 'tsfleet-consume' and datname = current_database()").fetchone()
            writers_seen = max(writers_seen, row[0] if row else 0)
            time.sleep(0.02)
        assert consumer.wait() == 0, consumer.output()
    assert writers_seen == 2
    assert count(db_url, "select count(*) from telemetry.readings") == 4 * len(messages)
    assert receipts(db_url) == len(messages)
    stats = consumer.stats()
    assert (stats["processed"], stats["duplicates"]) == (len(messages), 0)
    assert stats["batches"] >= len(messages) // 100
    assert drained(nats_server)
