"""Scale-out on NATS: a three-node JetStream cluster (Debian's nats-server, three processes on
loopback with cluster routes), a stream with three replicas, two consumers draining one
durable; the stream's leader is killed (SIGKILL) in the middle. No message may be lost and
none applied twice: the database is the judge."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import nats
import pytest
from nats.js.api import StorageType, StreamConfig

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
from tests.nats_support import NatsCluster, consumer_state

READINGS_PER_MESSAGE = 4

nats_binary = nats_support.nats_binary

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(nats_binary: str) -> Iterator[NatsCluster]:
    started = NatsCluster.start(nats_binary, size=3)
    try:
        yield started
    finally:
        started.cleanup()


async def _retrying(urls: Sequence[str], work: Any, timeout: float = 60) -> Any:
    """Run `work(js)` against the cluster until it succeeds (leader elections take a
    moment; a request may time out meanwhile)."""
    nc = await nats.connect(list(urls), connect_timeout=3, max_reconnect_attempts=-1,
                            reconnect_time_wait=0.2)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                return await work(nc.jetstream(timeout=3))
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


def add_replicated_stream(urls: Sequence[str], replicas: int = 3) -> None:
    async def work(js: Any) -> None:
        await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT], num_replicas=replicas,
                                         storage=StorageType.FILE, duplicate_window=120.0))
    asyncio.run(_retrying(urls, work))


def stream_leader(urls: Sequence[str]) -> tuple[str, int]:
    """The node leading the stream, and its replica count."""
    async def work(js: Any) -> tuple[str, int]:
        info = await js.stream_info(STREAM)
        assert info.cluster is not None and info.cluster.leader
        return info.cluster.leader, 1 + len(info.cluster.replicas or [])
    return asyncio.run(_retrying(urls, work))


def publish_with_ids(urls: Sequence[str], messages: Sequence[dict]) -> None:
    """Publish each message with its id as Nats-Msg-Id, retrying until the stream acks it
    (the duplicate window drops a retry of one it had stored)."""
    async def run() -> None:
        nc = await nats.connect(list(urls), connect_timeout=3, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.2)
        try:
            js = nc.jetstream(timeout=3)
            for message in messages:
                data = json.dumps(message).encode()
                deadline = time.monotonic() + 60
                while True:
                    try:
                        await js.publish(SUBJECT, data,
                                         headers={"Nats-Msg-Id": message["messageId"]})
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
        finally:
            await nc.close()
    asyncio.run(run())


def settled(urls: Sequence[str]) -> bool:
    for url in urls:
        try:
            state = consumer_state(url, STREAM, DURABLE)
        except Exception:
            continue  # this node cannot answer right now: ask another
        return state["num_pending"] == 0 and state["num_ack_pending"] == 0
    return False


def test_killing_the_stream_leader_while_two_consumers_drain_loses_and_doubles_nothing(
    cluster: NatsCluster, db_url: str
) -> None:
    add_replicated_stream(cluster.urls)
    # 10,000 messages: enough that two consumers (batches side by side since the ingest lock
    # went) are still draining when the leader is killed.
    before = fleet_messages(devices=20, steps=500, prefix="before")
    after = fleet_messages(devices=20, steps=20, prefix="after", start=T0 + timedelta(days=1))
    total = len(before) + len(after)
    publish_with_ids(cluster.urls, before)
    leader, replicas = stream_leader(cluster.urls)
    assert replicas == 3

    options = ("--batch", "25", "--ack-wait", "3s")
    with running_consumer(cluster.servers, db_url, *options) as first, \
            running_consumer(cluster.servers, db_url, *options) as second:
        first.wait_for_event("consumer_started")
        second.wait_for_event("consumer_started")
        wait_until(lambda: receipts(db_url) >= 100, what="the first batches", interval=0.05)
        assert receipts(db_url) < len(before), "drained before the kill: make the test bigger"
        cluster.node(leader).kill()
        alive = [node.url for node in cluster.nodes if node.name != leader]
        new_leader, _ = stream_leader(alive)
        assert new_leader != leader
        publish_with_ids(alive, after)  # the two survivors still make a quorum
        wait_until(lambda: receipts(db_url) == total, timeout=240, what="every message")
        wait_until(lambda: settled(alive), timeout=120, what="every ack")
        assert first.terminate() == 0, first.output()
        assert second.terminate() == 0, second.output()

    one, two = first.stats(), second.stats()
    # Every message applied once: new receipts counted once across both workers, any
    # redelivery (a lost ack, a pull request the dead leader held) a duplicate.
    assert one["processed"] + two["processed"] == total, (one, two)
    assert one["processed"] > 0 and two["processed"] > 0
    assert one["dead_lettered"] + two["dead_lettered"] == 0
    assert count(db_url, "select count(*) from ingest.message_receipts") == total
    assert count(db_url, "select count(distinct message_id) from ingest.message_receipts") == (
        total)
    assert count(db_url, "select count(*) from telemetry.readings") == (
        total * READINGS_PER_MESSAGE)
    assert count(db_url, "select count(*) from telemetry.readings where recorded_at >= %s",
                 [T0 + timedelta(days=1)]) == len(after) * READINGS_PER_MESSAGE
    assert count(db_url, "select count(*) from ingest.rejects") == 0
