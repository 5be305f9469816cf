"""The consumer under faults: SIGKILL between commit and ack, two workers on one durable,
NATS and PostgreSQL restarting under a running consumer. Everything is counted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from loader import migrate
from loader.db import with_database
from loader.devdb.cluster import LocalCluster, start_local_cluster
from tests import nats_support
from tests.consume_support import (
    DURABLE,
    STREAM,
    SUBJECT,
    T0,
    ConsumerProcess,
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

READINGS_PER_MESSAGE = 4
TABLES_SQL = """
select
    (select count(*) from telemetry.readings),
    (select coalesce(sum(value), 0) from telemetry.readings),
    (select count(*) from ingest.message_receipts),
    (select count(*) from telemetry.devices)
"""

# The fixtures this module uses (a NATS server per test), bound here so pytest finds them.
nats_binary = nats_support.nats_binary
nats_server = nats_support.nats_server


def tables(url: str) -> tuple:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(TABLES_SQL).fetchone()


def settled(nats: NatsServer) -> bool:
    state = consumer_state(nats.url, STREAM, DURABLE)
    return state["num_pending"] == 0 and state["num_ack_pending"] == 0


def test_a_consumer_killed_after_commit_before_ack_is_redelivered_and_changes_nothing(
    nats_server: NatsServer, db_url: str
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    messages = fleet_messages(devices=4, steps=5)
    publish(nats_server.url, SUBJECT, messages)

    victim = ConsumerProcess(nats_server.url, db_url, ["--ack-wait", "2s"],
                             pause_before_ack=True).start()
    paused = victim.wait_for_event("fault_pause_before_ack")
    after_commit = tables(db_url)
    assert after_commit[0] == len(messages) * READINGS_PER_MESSAGE  # written and committed
    assert consumer_state(nats_server.url, STREAM, DURABLE)["num_ack_pending"] == len(messages)
    victim.kill()

    with running_consumer(nats_server.url, db_url, "--ack-wait", "2s",
                          "--stop-when-drained") as survivor:
        assert survivor.wait() == 0, survivor.output()
    assert tables(db_url) == after_commit
    stats = survivor.stats()
    assert (stats["processed"], stats["duplicates"]) == (0, len(messages))
    assert stats["redelivered"] == len(messages)
    assert count(db_url, "select count(*) from ingest.batches where batch_id = %s",
                 [paused["batch_id"]]) == 1
    assert settled(nats_server)


def test_events_committed_but_not_published_by_a_killed_consumer_are_published_on_restart(
    nats_server: NatsServer, db_url: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        pumps_for_worked_example(conn)
    add_stream(nats_server.url, STREAM, [SUBJECT])
    publish(nats_server.url, SUBJECT, [asset_worker_message("msg-1")])

    victim = ConsumerProcess(nats_server.url, db_url, ["--ack-wait", "2s", "--asset-events"],
                             pause_before_ack=True).start()
    victim.wait_for_event("fault_pause_before_ack")
    victim.kill()
    pending = count(db_url, "select count(*) from ingest.asset_event_outbox"
                            " where published_at is null")
    assert pending == 2  # Pump A and Pump B, committed with the batch, never published

    with running_consumer(nats_server.url, db_url, "--ack-wait", "2s", "--asset-events",
                          "--stop-when-drained") as survivor:
        assert survivor.wait() == 0, survivor.output()
    events = stream_messages(nats_server.url, "telemetry.asset.v1")
    assert sorted(json.loads(data)["assetId"] for _h, data in events) == ["Pump A", "Pump B"]
    assert count(db_url, "select count(*) from ingest.asset_event_outbox"
                         " where published_at is null") == 0
    assert survivor.stats()["duplicates"] == 1


def test_a_message_whose_every_delivery_died_goes_to_the_dead_letter_path(
    nats_server: NatsServer, db_url: str
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    (seq,) = publish(nats_server.url, SUBJECT, [asset_worker_message("msg-unlucky")])
    settings = ["--ack-wait", "3s", "--max-deliver", "2"]
    for _delivery in range(2):  # each worker commits, then dies before acking
        victim = ConsumerProcess(nats_server.url, db_url, settings,
                                 pause_before_ack=True).start()
        victim.wait_for_event("fault_pause_before_ack")
        victim.kill()

    with running_consumer(nats_server.url, db_url, *settings) as survivor:
        letter_event = survivor.wait_for_event("dead_lettered")
    assert letter_event["sequence"] == seq
    (_headers, data), = stream_messages(nats_server.url, "telemetry.dlq")
    letter = json.loads(data)
    assert (letter["streamSequence"], letter["deliveryCount"]) == (seq, 2)
    assert "max-deliver" in letter["lastError"]
    assert json.loads(letter["payload"])["messageId"] == "msg-unlucky"
    assert count(db_url, "select count(*) from ingest.rejects where line_number = %s",
                 [seq]) == 1
    assert receipts(db_url) == 1  # its data was committed once, by the first worker


def test_two_consumers_on_one_durable_split_the_stream_without_duplicates_or_losses(
    nats_server: NatsServer, db_url: str
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    messages = fleet_messages(devices=20, steps=60)  # 1,200 messages
    with running_consumer(nats_server.url, db_url, "--batch", "25") as first, \
            running_consumer(nats_server.url, db_url, "--batch", "25") as second:
        first.wait_for_event("consumer_started")
        second.wait_for_event("consumer_started")
        publish(nats_server.url, SUBJECT, messages)
        wait_until(lambda: receipts(db_url) == len(messages), what="every message")
        wait_until(lambda: settled(nats_server), what="every ack")
        assert first.terminate() == 0 and second.terminate() == 0
    one, two = first.stats(), second.stats()
    assert one["processed"] > 0 and two["processed"] > 0, (one, two)
    assert one["processed"] + two["processed"] == len(messages)
    assert one["duplicates"] + two["duplicates"] == 0
    assert count(db_url, "select count(*) from telemetry.readings") == (
        len(messages) * READINGS_PER_MESSAGE)
    assert count(db_url, "select count(distinct message_id) from ingest.message_receipts") == (
        len(messages))


def test_restarting_nats_under_a_running_consumer_loses_nothing(
    nats_server: NatsServer, db_url: str
) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    before = fleet_messages(devices=10, steps=30, prefix="before")
    after = fleet_messages(devices=10, steps=30, prefix="after", start=T0 + timedelta(days=1))
    with running_consumer(nats_server.url, db_url, "--batch", "20") as consumer:
        consumer.wait_for_event("consumer_started")
        publish(nats_server.url, SUBJECT, before)
        wait_until(lambda: receipts(db_url) > 0, what="the first batches")
        nats_server.restart(downtime_s=1.0)
        publish(nats_server.url, SUBJECT, after)
        wait_until(lambda: receipts(db_url) == len(before) + len(after), what="every message")
        wait_until(lambda: settled(nats_server), what="every ack")
        assert consumer.terminate() == 0, consumer.output()
    assert consumer.wait_for_event("nats_reconnected")
    assert count(db_url, "select count(*) from telemetry.readings") == (
        (len(before) + len(after)) * READINGS_PER_MESSAGE)


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A PostgreSQL cluster this test may restart (never the shared test server)."""
    cluster = start_local_cluster(log=lambda _m: None)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_restarting_the_database_under_a_running_consumer_loses_nothing(
    nats_server: NatsServer, own_cluster: LocalCluster
) -> None:
    url = with_database(own_cluster.url, "postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create database tsfleet_restart")
    url = with_database(own_cluster.url, "tsfleet_restart")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create extension if not exists timescaledb")
    migrate.apply(url)
    add_stream(nats_server.url, STREAM, [SUBJECT])
    before = fleet_messages(devices=10, steps=30, prefix="before")
    during = fleet_messages(devices=10, steps=30, prefix="during",
                            start=T0 + timedelta(days=1))

    def written() -> int:
        try:
            return receipts(url)
        except psycopg.OperationalError:
            return -1  # the database is down right now

    with running_consumer(nats_server.url, url, "--batch", "20",
                          "--max-deliver", "2") as consumer:
        consumer.wait_for_event("consumer_started")
        publish(nats_server.url, SUBJECT, before)
        wait_until(lambda: written() == len(before), what="the messages before the outage")
        restart = threading.Thread(target=own_cluster.restart, kwargs={"downtime_s": 3.0})
        restart.start()
        wait_until(lambda: written() == -1, what="the database to go down", interval=0.05)
        publish(nats_server.url, SUBJECT, during)  # arrive while the database is down
        restart.join()
        wait_until(lambda: written() == len(before) + len(during), what="every message",
                   timeout=180)
        wait_until(lambda: settled(nats_server), what="every ack")
        assert consumer.terminate() == 0, consumer.output()
    assert consumer.wait_for_event("database_unavailable")
    stats = consumer.stats()
    assert stats["dead_lettered"] == 0
    assert stats["processed"] == len(before) + len(during)
    assert count(url, "select count(*) from telemetry.readings") == (
        (len(before) + len(during)) * READINGS_PER_MESSAGE)
    assert count(url, "select count(*) from ingest.rejects") == 0
