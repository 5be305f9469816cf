"""The consumer's pull requests (loader/stream/fetch.py) against a real NATS JetStream server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from loader.stream.fetch import Puller
from tests import nats_support
from tests.nats_support import NatsServer, consumer_state

nats_binary = nats_support.nats_binary
nats_server = nats_support.nats_server

STREAM, SUBJECT, DURABLE = "FETCHES", "fetch.test", "fetcher"


def with_puller(url: str, work: Callable[[Puller, Any], Awaitable[Any]],
                published: int) -> Any:
    """Publish `published` messages, bind a durable pull consumer and run `work` with a
    started Puller on it and the connection."""
    async def run() -> Any:
        nc = await nats.connect(url, connect_timeout=5)
        try:
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT]))
            for i in range(published):
                await js.publish(SUBJECT, f"m{i}".encode())
            await js.pull_subscribe(SUBJECT, durable=DURABLE, stream=STREAM,
                                    config=ConsumerConfig(durable_name=DURABLE,
                                                          ack_policy=AckPolicy.EXPLICIT))
            puller = Puller(nc, STREAM, DURABLE)
            await puller.start()
            return await work(puller, nc)
        finally:
            await nc.close()
    return asyncio.run(run())


def test_fetches_take_up_to_the_batch_in_stream_order_and_ack_like_nats_py_messages(
        nats_server: NatsServer) -> None:
    async def work(puller: Puller, nc: Any) -> list[list[bytes]]:
        batches = []
        for _ in range(4):
            msgs = await puller.fetch(10, 0.3)
            batches.append([m.data for m in msgs])
            for msg in msgs:
                await msg.ack()
        await nc.flush()
        return batches

    batches = with_puller(nats_server.url, work, published=25)
    assert batches == [[f"m{i}".encode() for i in range(10)],
                       [f"m{i}".encode() for i in range(10, 20)],
                       [f"m{i}".encode() for i in range(20, 25)],
                       []]
    assert consumer_state(nats_server.url, STREAM, DURABLE)["num_ack_pending"] == 0


def test_a_fetch_waits_for_messages_published_while_it_is_open(
        nats_server: NatsServer) -> None:
    async def work(puller: Puller, nc: Any) -> tuple[list[bytes], list[Any]]:
        async def publish_later() -> None:
            await asyncio.sleep(0.1)
            for i in range(2, 5):
                await nc.jetstream().publish(SUBJECT, f"m{i}".encode())

        later = asyncio.create_task(publish_later())
        msgs = await puller.fetch(5, 5.0)  # returns as soon as the five are in
        await later
        for msg in msgs:
            await msg.ack()
        return [m.data for m in msgs], puller.take_buffered()

    data, left = with_puller(nats_server.url, work, published=2)
    assert data == [b"m0", b"m1", b"m2", b"m3", b"m4"] and left == []


def test_a_fetch_on_an_empty_stream_returns_nothing_after_the_wait(
        nats_server: NatsServer) -> None:
    async def work(puller: Puller, nc: Any) -> list[Any]:
        return await puller.fetch(100, 0.2)

    assert with_puller(nats_server.url, work, published=0) == []
