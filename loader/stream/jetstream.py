"""The consumer's NATS side: connect (retried until it works or shutdown), the streams, the
durable pull consumer, its puller, and the MAX_DELIVERIES advisories; and what the pipeline
gets of a nats-py message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from loader.stream.fetch import Puller
from loader.stream.pipeline import Delivery, Payload
from loader.stream.retrying import until_stopped
from loader.stream.settings import ConsumerSettings
from loader.stream.stats import ConsumerStats, log_event
from loader.stream.streams import ensure_streams


@dataclass
class Link:
    """A connection to NATS and the durable consumer this process pulls from."""

    nc: Any
    js: Any
    psub: Any
    puller: Puller
    closing: bool = False  # set at shutdown: a disconnect then is no news


def delivery_of(msg: Msg) -> Delivery:
    """What the pipeline needs of a nats-py message (the message rides along to be acked)."""
    metadata = msg.metadata
    message_id = msg.headers.get("Nats-Msg-Id") if msg.headers else None
    return Delivery(Payload(msg.subject, message_id, msg.data or b"", metadata.sequence.stream),
                    metadata.num_delivered, msg)


def _any_error(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


def _log_retry(event: str) -> Callable[[BaseException, int, float], None]:
    def on_retry(error: BaseException, attempt: int, wait_s: float) -> None:
        log_event(event, level="warning", attempt=attempt, retry_in_s=wait_s, error=repr(error))
    return on_retry


async def connect(settings: ConsumerSettings, stop: asyncio.Event, stats: ConsumerStats,
                  on_max_deliveries: Callable[[Msg], Awaitable[None]]) -> Link:
    """Connect and bind the durable consumer, retrying each step (raises Stopped)."""
    link: Link | None = None

    async def disconnected() -> None:
        if link is None or not link.closing:
            stats.nats_disconnects += 1
            log_event("nats_disconnected", level="warning")

    async def reconnected() -> None:
        url = nc.connected_url
        log_event("nats_reconnected", server=str(url.netloc if url else ""))

    async def error(exc: Exception) -> None:
        log_event("nats_error", level="warning", error=repr(exc))

    nc = await until_stopped(stop, _any_error, _log_retry("nats_unavailable"))(
        nats.connect, servers=list(settings.servers), name="tsfleet-consume",
        max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=3,
        disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error)
    js = nc.jetstream(timeout=5)

    async def bind() -> Any:
        if settings.create_streams:
            await ensure_streams(js, settings)
        return await js.pull_subscribe(
            settings.subject, durable=settings.durable, stream=settings.stream,
            config=ConsumerConfig(
                durable_name=settings.durable, ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL, max_deliver=settings.max_deliver,
                ack_wait=settings.ack_wait_s, filter_subject=settings.subject,
                max_ack_pending=max(20_000, 4 * settings.batch_size),
            ),
        )

    psub = await until_stopped(stop, _any_error, _log_retry("jetstream_unavailable"))(bind)
    puller = Puller(nc, settings.stream, settings.durable)
    await puller.start()
    # JetStream gives up on a message after max_deliver deliveries without an ack (a worker
    # died on each of them); its advisory sends that message down the dead-letter path too,
    # instead of leaving it behind silently.
    await nc.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{settings.stream}"
                       f".{settings.durable}", cb=on_max_deliveries)
    link = Link(nc, js, psub, puller)
    return link
