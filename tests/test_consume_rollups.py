"""The consumer's deferred rollup refresh: not after every batch, but for the accumulated time
range of committed batches every --refresh-interval and at shutdown; a failed refresh is a
warning that loses no message. Real NATS, real TimescaleDB, real consumer processes."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from tests import nats_support
from tests.consume_support import (
    DURABLE,
    STREAM,
    SUBJECT,
    T0,
    count,
    fleet_messages,
    receipts,
    running_consumer,
    wait_until,
)
from tests.nats_support import NatsServer, add_stream, consumer_state, publish

DRAIN = ("--stop-when-drained", "--max-wait", "100ms")
READINGS_PER_MESSAGE = 4
ROLLED_UP = "select coalesce(sum(reading_count), 0) from rollups.device_metrics_hourly"

nats_binary = nats_support.nats_binary
nats_server = nats_support.nats_server


def refresh_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("event", "").startswith("rollups_refresh")]


def test_rollups_catch_up_in_one_refresh_when_the_consumer_has_drained(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    messages = fleet_messages(devices=3, steps=8)  # 24 messages, 3 hours of T0's day
    publish(nats_server.url, SUBJECT, messages)

    with running_consumer(nats_server.url, db_url, "--batch", "5", "--refresh-interval", "1h",
                          *DRAIN) as consumer:
        assert consumer.wait() == 0, consumer.output()

    readings = len(messages) * READINGS_PER_MESSAGE
    assert count(db_url, "select count(*) from telemetry.readings") == readings
    assert count(db_url, ROLLED_UP) == readings
    assert count(db_url, "select coalesce(sum(reading_count), 0)"
                         " from rollups.device_metrics_daily") == readings
    stats = consumer.stats()
    assert stats["batches"] >= 5
    assert (stats["rollup_refreshes"], stats["rollup_refresh_failures"]) == (1, 0)
    [refreshed] = refresh_events(consumer.events())
    assert refreshed["event"] == "rollups_refreshed"
    last = T0 + timedelta(minutes=7)
    assert refreshed["ranges"] == [[T0.isoformat(),
                                    (last + timedelta(microseconds=1)).isoformat()]]


def test_rollups_are_refreshed_every_interval_while_the_consumer_runs(
    nats_server: NatsServer, db_url: str
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    first = fleet_messages(devices=2, steps=3, prefix="a")
    late = fleet_messages(devices=2, steps=3, prefix="b", start=T0 - timedelta(days=20))
    publish(nats_server.url, SUBJECT, first)

    with running_consumer(nats_server.url, db_url, "--refresh-interval", "1s",
                          "--max-wait", "100ms") as consumer:
        wait_until(lambda: count(db_url, ROLLED_UP) == len(first) * READINGS_PER_MESSAGE,
                   timeout=60, what="the first messages in the hourly rollup")
        publish(nats_server.url, SUBJECT, late)  # late data, 20 days earlier
        total = (len(first) + len(late)) * READINGS_PER_MESSAGE
        wait_until(lambda: count(db_url, ROLLED_UP) == total, timeout=60,
                   what="the late messages in the hourly rollup")
        assert consumer.process is not None and consumer.process.poll() is None
    assert consumer.stats()["rollup_refreshes"] >= 2


def test_a_failing_rollup_refresh_is_a_warning_and_loses_no_message(
    nats_server: NatsServer, db_url: str, conn: psycopg.Connection
) -> None:
    conn.execute(
        "create or replace procedure rollups.refresh_queued(inout ranges_refreshed integer"
        " default null) language plpgsql"
        " as $$ begin raise exception 'rollups are down'; end; $$")
    add_stream(nats_server.url, STREAM, [SUBJECT])
    messages = fleet_messages(devices=2, steps=4)
    publish(nats_server.url, SUBJECT, messages)

    with running_consumer(nats_server.url, db_url, "--batch", "3", *DRAIN) as consumer:
        assert consumer.wait() == 0, consumer.output()

    assert receipts(db_url) == len(messages)
    assert count(db_url, "select count(*) from telemetry.readings") == (
        len(messages) * READINGS_PER_MESSAGE)
    state = consumer_state(nats_server.url, STREAM, DURABLE)
    assert (state["num_pending"], state["num_ack_pending"]) == (0, 0)
    [failed] = refresh_events(consumer.events())
    assert failed["event"] == "rollups_refresh_failed" and failed["level"] == "warning"
    assert "rollups are down" in failed["error"]
    assert failed["pending_ranges"][0][0] == T0.isoformat()
    assert consumer.stats()["rollup_refresh_failures"] == 1
