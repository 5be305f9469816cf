"""Micro-batches pulled from the durable consumer, collected on an inbox of our own.

nats-py's `PullSubscription.fetch()` waits for every message of a batch separately (a task, a
timeout and a uuid per message): about 60 us a message, as much as decoding it and a fifth of
the consumer's time at a few thousand messages per second. Here one pull request asks the
durable consumer for up to N messages (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`, the
JetStream wire API that fetch() sends too) and a subscription callback collects what arrives.
A fetch ends when N messages are in, when the server ends the request (408: it expired with
fewer; 404: nothing there for a no-wait request; 409: the consumer cannot serve it), or at a
client-side deadline (a request lost while NATS reconnected).

Every JetStream message that arrives is kept, whichever request it answers: a message
delivered late (after its fetch gave up) is handed to the next fetch instead of waiting for
its redelivery. Status messages end only the request they answer (each request has its own
reply subject). The messages are ordinary nats-py `Msg` objects: ack, nak, in_progress and
term work as with fetch().
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.aio.msg import Msg

# Couples with Consumer._connect_nats: nc.jetstream() without a domain or an API prefix.
JS_API_PREFIX = "$JS.API"
# How long after the request's own expiry a fetch waits for the server's word.
GRACE_S = 1.0


class FetchFailed(Exception):
    """The server refused the pull request (a 409 status: consumer deleted, leadership
    change ...); nothing was delivered."""


class Puller:
    """Pull requests for one durable consumer; `fetch()` is called by one task at a time."""

    def __init__(self, nc: Any, stream: str, durable: str) -> None:
        self._nc = nc
        self._next_subject = f"{JS_API_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._sub: Any = None
        self._buffer: list[Msg] = []
        self._requests = 0
        self._current: str | None = None  # reply subject of the request under way
        self._want = 0
        self._ended = asyncio.Event()
        self._refusal: str | None = None

    async def start(self) -> None:
        """Subscribe to the inbox (once; nats-py re-subscribes it after a reconnect)."""
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        if msg.reply:  # a JetStream message: its reply subject is where its ack goes
            self._buffer.append(msg)
            if len(self._buffer) >= self._want:
                self._ended.set()
            return
        if msg.subject != self._current:
            return  # the end of an earlier request
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "100":
            return  # idle heartbeat or flow control: not asked for, not an end
        if status not in ("404", "408"):
            self._refusal = f"{status} {headers.get('Description', '')}".strip()
        self._ended.set()

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:
        """Up to `batch` messages: what arrived, once `batch` are in or the request ended
        (at most `timeout` seconds, plus GRACE_S if the server does not answer). Messages
        delivered already are returned without waiting for more than the server has now."""
        if len(self._buffer) < batch:
            self._requests += 1
            self._current = f"{self._inbox}.{self._requests}"
            self._want = batch
            self._refusal = None
            self._ended.clear()
            need = batch - len(self._buffer)
            request: dict[str, Any] = (
                {"batch": need, "no_wait": True} if self._buffer
                else {"batch": need, "expires": max(1_000_000, int(timeout * 1e9))}
            )
            try:
                await self._nc.publish(self._next_subject, json.dumps(request).encode(),
                                       reply=self._current)
                await asyncio.wait_for(self._ended.wait(), timeout + GRACE_S)
            except asyncio.TimeoutError:
                pass
            finally:
                self._current = None
            if self._refusal and not self._buffer:
                raise FetchFailed(self._refusal)
        taken, self._buffer = self._buffer[:batch], self._buffer[batch:]
        return taken

    def take_buffered(self) -> list[Msg]:
        """Messages delivered but not fetched yet (at shutdown: to hand them back)."""
        taken, self._buffer = self._buffer, []
        return taken
