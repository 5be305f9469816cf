"""The consumer loop: fetch a micro-batch, write it in one transaction, ack after commit.

Delivery guarantees, and where each comes from:
- at least once: JetStream redelivers every message not acked within ack_wait; a message is
  acked only after the transaction holding its data committed;
- exactly-once effect: the loaders' message-id idempotency turns a redelivered message into a
  counted duplicate that changes nothing;
- poison never blocks: an undecodable message is rejected, dead-lettered and terminated; a
  message the database refuses for a non-transient reason is isolated by splitting the batch,
  retried until max_deliver, then dead-lettered the same way;
- outages: while the database is down the batch is retried in process with backoff and its
  messages are kept alive (in-progress acks), so an outage burns no deliveries; NATS outages
  are handled by the client's reconnects, and a lost ack only means a duplicate later.

Rollups are refreshed for the accumulated time range of committed batches at most every
refresh_interval_s and at shutdown (loader/stream/refresh.py), not after every batch.

Throughput: a micro-batch is one pull request whose messages a subscription callback collects
(loader/stream/fetch.py; nats-py's fetch() waited for each message separately); the next batch
is fetched and decoded on the event loop while the worker thread writes the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
import psycopg
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from loader.db import plain_url
from loader.stream.deadletter import DeadLetter, dead_letter_message, record_rejects
from loader.stream.fetch import FetchFailed, Puller
from loader.stream.messages import Decoded, Poison, decode
from loader.stream.outbox import OutboxPublisher
from loader.stream.refresh import RefreshFailed, RollupRefresher
from loader.stream.settings import ConsumerSettings
from loader.stream.sink import KnownDevices, prepare_session, write_batch
from loader.stream.stats import ConsumerStats, log_event
from loader.stream.streams import ensure_streams

# Test hook: "pause-before-ack" makes the consumer stop for good between commit and ack, so a
# test can kill it there (SIGKILL) and check that the redelivery changes nothing.
FAULT_ENV = "TSFLEET_STREAM_FAULT"
TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57014"}
# Errors that say the deployment is wrong, not the message (undefined function, privileges,
# internal errors...): retried like an outage instead of dead-lettering the whole stream one
# message at a time. Message-specific errors (data exceptions 22, constraints 23, raised
# exceptions P0) are isolated and dead-lettered after max_deliver.
SYSTEMIC_SQLSTATE_CLASSES = ("42", "0A", "XX", "58", "3D", "3F", "25")
# A message makes a dozen container objects (NATS message, JSON, device, readings) that live
# for a batch or two and are freed by reference counting. With the default thresholds the
# cycle collector ran every few dozen messages and scanned the batches in flight again and
# again: a quarter of the decoding time. Collections now run every 50,000 allocations.
GC_THRESHOLDS = (50_000, 20, 20)


def is_transient(exc: BaseException | None) -> bool:
    """Worth retrying as is: connection trouble, server shutdown, serialization conflicts
    (anywhere in the exception's cause chain)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
        state = getattr(exc, "sqlstate", None) or ""
        if state in TRANSIENT_SQLSTATES or state.startswith(("08", "53", "57P")):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


def is_systemic(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        state = getattr(exc, "sqlstate", None) or ""
        if state.startswith(SYSTEMIC_SQLSTATE_CLASSES):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


def backoff_s(attempt: int, cap: float = 10.0) -> float:
    return min(cap, 0.25 * (2 ** min(attempt, 8)))


@dataclass
class _Failed:
    """A chunk the database refused for a non-transient reason."""

    error: BaseException


class _Stopped(Exception):
    """Shutdown was requested while a chunk was waiting for the database."""


class Consumer:
    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self.stats = ConsumerStats()
        self.stop = asyncio.Event()
        self._conn: psycopg.Connection | None = None
        self._nc: Any = None
        self._js: Any = None
        self._psub: Any = None
        self._puller: Puller | None = None
        self._publisher: OutboxPublisher | None = None
        self._events_dirty = True
        self._closing = False
        self._held: list[Msg] = []
        self._known_devices = KnownDevices()
        self._exhausted: list[dict[str, Any]] = []
        # Why the database refused a message, by stream sequence: if JetStream gives up on it
        # (max-deliver) before this worker dead-letters it, the letter still says why.
        self._last_errors: dict[int, str] = {}
        self._refresher = RollupRefresher(settings.database_url, settings.refresh_interval_s)
        self._refreshing: asyncio.Task | None = None

    # --- database (sync psycopg in a worker thread; NATS keeps running on the loop) ---------

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(plain_url(self.settings.database_url), autocommit=True,
                                   application_name="tsfleet-consume")
            prepare_session(conn, self.settings.events_subject)
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _db_write(self, messages: list[Decoded]):
        return write_batch(self._connection(), messages,
                           source_name=self.settings.source_name,
                           events=self.settings.events_subject is not None,
                           known=self._known_devices)

    def _db_rejects(self, letters: list[DeadLetter]) -> int | None:
        return record_rejects(self._connection(), self.settings.source_name, letters)

    async def _with_database(self, msgs: Sequence[Msg], work, *args):
        """Run `work(*args)` in a thread; retry transient failures with backoff until it
        succeeds or shutdown is requested, keeping `msgs` alive meanwhile. A non-transient
        failure is returned as _Failed."""
        keepalive = asyncio.create_task(self._keep_alive(msgs))
        attempt = 0
        try:
            while True:
                try:
                    return await asyncio.to_thread(work, *args)
                except Exception as exc:
                    transient, systemic = is_transient(exc), is_systemic(exc)
                    if not transient and not systemic:
                        return _Failed(exc)
                    attempt += 1
                    self.stats.retried_batches += 1
                    if transient:
                        if self._conn is not None:
                            self.stats.database_reconnects += 1
                        self._drop_connection()
                    delay = backoff_s(attempt)
                    log_event("database_unavailable" if transient else "database_error_retrying",
                              level="warning" if transient else "error", attempt=attempt,
                              retry_in_s=delay, messages=len(msgs), error=str(exc).strip())
                    if await self._sleep_or_stop(delay):
                        raise _Stopped from exc
        finally:
            keepalive.cancel()

    def _hold(self, task: asyncio.Task) -> None:
        """Remember prefetched messages, so that _keep_alive covers them too."""
        if not task.cancelled() and task.exception() is None:
            self._held = [msg for msg, _ in task.result()]

    async def _keep_alive(self, msgs: Sequence[Msg]) -> None:
        """Tell JetStream the messages are still being worked on (a slow write, an outage),
        and the prefetched ones waiting behind them."""
        period = max(0.5, self.settings.ack_wait_s / 3)
        while True:
            await asyncio.sleep(period)
            for msg in [*msgs, *self._held]:
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _sleep_or_stop(self, seconds: float) -> bool:
        """Sleep; True when shutdown was requested meanwhile."""
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return False
        return True

    # --- NATS ---------------------------------------------------------------------------

    async def _connect_nats(self) -> None:
        async def disconnected() -> None:
            if self._closing:
                return
            self.stats.nats_disconnects += 1
            log_event("nats_disconnected", level="warning")

        async def reconnected() -> None:
            log_event("nats_reconnected", server=str(self._nc.connected_url.netloc
                                                      if self._nc.connected_url else ""))

        async def error(exc: Exception) -> None:
            log_event("nats_error", level="warning", error=repr(exc))

        attempt = 0
        while True:
            try:
                self._nc = await nats.connect(
                    servers=list(self.settings.servers), name="tsfleet-consume",
                    max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=3,
                    disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error,
                )
                break
            except Exception as exc:
                attempt += 1
                delay = backoff_s(attempt)
                log_event("nats_unavailable", level="warning", attempt=attempt,
                          retry_in_s=delay, error=repr(exc))
                if await self._sleep_or_stop(delay):
                    raise _Stopped from exc
        self._js = self._nc.jetstream(timeout=5)
        while True:
            try:
                if self.settings.create_streams:
                    await ensure_streams(self._js, self.settings)
                self._psub = await self._js.pull_subscribe(
                    self.settings.subject, durable=self.settings.durable,
                    stream=self.settings.stream,
                    config=ConsumerConfig(
                        durable_name=self.settings.durable,
                        ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL,
                        max_deliver=self.settings.max_deliver,
                        ack_wait=self.settings.ack_wait_s,
                        filter_subject=self.settings.subject,
                        max_ack_pending=max(20_000, 4 * self.settings.batch_size),
                    ),
                )
                self._puller = Puller(self._nc, self.settings.stream, self.settings.durable)
                await self._puller.start()
                break
            except Exception as exc:
                attempt += 1
                delay = backoff_s(attempt)
                log_event("jetstream_unavailable", level="warning", attempt=attempt,
                          retry_in_s=delay, error=repr(exc))
                if await self._sleep_or_stop(delay):
                    raise _Stopped from exc
        if self.settings.events_subject:
            self._publisher = OutboxPublisher(self._js, self.settings.database_url)
        # JetStream gives up on a message after max_deliver deliveries without an ack (a
        # worker died on each of them); its advisory sends that message down the dead-letter
        # path too, instead of leaving it behind silently.
        await self._nc.subscribe(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.settings.stream}"
            f".{self.settings.durable}", cb=self._on_max_deliveries)
        log_event("consumer_started", servers=list(self.settings.servers),
                  stream=self.settings.stream, subject=self.settings.subject,
                  durable=self.settings.durable, batch=self.settings.batch_size,
                  max_deliver=self.settings.max_deliver, ack_wait_s=self.settings.ack_wait_s,
                  events_subject=self.settings.events_subject)

    async def _on_max_deliveries(self, advisory: Msg) -> None:
        try:
            self._exhausted.append(json.loads(advisory.data))
        except ValueError:
            log_event("advisory_unreadable", level="warning", data=repr(advisory.data[:200]))

    async def _dead_letter_exhausted(self) -> None:
        """Dead-letter the messages JetStream stopped delivering (run between batches, on
        the loop's own turn, so the database connection is never shared)."""
        while self._exhausted:
            info = self._exhausted.pop(0)
            sequence = int(info.get("stream_seq", 0))
            deliveries = int(info.get("deliveries", self.settings.max_deliver))
            try:
                stored = await self._js.get_msg(self.settings.stream, sequence)
            except Exception as exc:
                log_event("exhausted_message_unreadable", level="error", sequence=sequence,
                          error=repr(exc))
                continue
            last_error = self._last_errors.pop(sequence, None)
            reason = (
                f"{last_error} (not acknowledged after {deliveries} deliveries, max-deliver)"
                if last_error else
                f"not acknowledged after {deliveries} deliveries (max-deliver): a worker "
                "stopped on each delivery; if its data was committed, a replay is a no-op"
            )
            await self._dead_letter([DeadLetter(
                stored.subject or self.settings.subject, sequence, deliveries,
                stored.data or b"", reason,
            )])

    async def _fetch(self) -> list[Msg]:
        assert self._puller is not None
        try:
            return await self._puller.fetch(self.settings.batch_size, self.settings.max_wait_s)
        except FetchFailed as exc:  # the consumer cannot serve requests right now
            log_event("fetch_failed", level="warning", error=str(exc))
            await self._sleep_or_stop(0.5)
            return []
        except Exception as exc:  # disconnected, reconnecting, JetStream restarting ...
            log_event("fetch_failed", level="warning", error=repr(exc))
            await self._sleep_or_stop(0.5)
            return []

    async def _fetch_decoded(self) -> list[tuple[Msg, Decoded | Poison]]:
        """Fetch and decode a micro-batch. As the prefetch, the decoding runs on the loop
        while the worker thread waits for the database on the batch before."""
        return [(msg, decode(msg.data, msg.metadata.sequence.stream))
                for msg in await self._fetch()]

    async def _drained(self) -> bool:
        try:
            info = await self._psub.consumer_info()
        except Exception:
            return False
        return info.num_pending == 0 and info.num_ack_pending == 0 and not self._events_dirty

    # --- one micro-batch ------------------------------------------------------------------

    async def _handle(self, batch: list[tuple[Msg, Decoded | Poison]]) -> None:
        started = time.perf_counter()
        self.stats.messages_received += len(batch)
        good: list[tuple[Msg, Decoded]] = []
        letters: list[DeadLetter] = []
        repeats: list[tuple[Msg, str]] = []
        seen: set[str] = set()
        for msg, decoded in batch:
            if msg.metadata.num_delivered > 1:
                self.stats.redelivered += 1
            if isinstance(decoded, Poison):
                letters.append(DeadLetter.of(msg, decoded.reason, decoded.field))
            elif decoded.message_id in seen:
                repeats.append((msg, decoded.message_id))
            else:
                seen.add(decoded.message_id)
                good.append((msg, decoded))
        if letters:
            await self._dead_letter(letters)
        committed = await self._write(good) if good else set()
        for msg, message_id in repeats:  # the same id twice in one fetch: one write
            if message_id in committed:
                self.stats.duplicates += 1
                await self._ack(msg)
            else:
                await self._nak(msg)
        self.stats.record_batch(time.perf_counter() - started)

    async def _write(self, items: list[tuple[Msg, Decoded]]) -> set[str]:
        """Write the items, splitting around any the database refuses; returns the ids of
        committed messages. Each committed chunk is acked right after its commit."""
        committed: set[str] = set()
        pending = [items]
        while pending:
            chunk = pending.pop()
            msgs = [m for m, _ in chunk]
            try:
                outcome = await self._with_database(
                    msgs, self._db_write, [d for _, d in chunk])
            except _Stopped:
                for rest in [chunk, *pending]:
                    for msg, _ in rest:
                        await self._nak(msg)
                return committed
            if isinstance(outcome, _Failed):
                if len(chunk) > 1:
                    middle = len(chunk) // 2
                    pending += [chunk[middle:], chunk[:middle]]  # the first half goes first
                else:
                    await self._refused(chunk[0][0], outcome.error)
                continue
            counts = outcome
            enqueued = counts.events_enqueued
            self.stats.processed += counts.messages_inserted
            self.stats.duplicates += counts.messages_duplicate
            self.stats.rejected += counts.rejected
            self.stats.readings_inserted += counts.readings_inserted
            self.stats.events_enqueued += enqueued
            self._events_dirty = self._events_dirty or enqueued > 0
            self._refresher.note(counts.first_recorded_at, counts.last_recorded_at)
            if os.environ.get(FAULT_ENV) == "pause-before-ack":
                log_event("fault_pause_before_ack", batch_id=counts.batch_id,
                          messages=len(chunk))
                await asyncio.Event().wait()
            for msg in msgs:
                await self._ack(msg)
            committed.update(d.message_id for _, d in chunk)
        return committed

    async def _refused(self, msg: Msg, error: BaseException) -> None:
        """One message the database refuses: retry it later, or dead-letter it at the end."""
        deliveries = msg.metadata.num_delivered
        reason = f"database refused the message: {str(error).strip()}"[:2000]
        sequence = msg.metadata.sequence.stream
        if deliveries >= self.settings.max_deliver:
            self._last_errors.pop(sequence, None)
            await self._dead_letter(
                [DeadLetter.of(msg, f"{reason} (after {deliveries} deliveries)")])
        else:
            if len(self._last_errors) >= 10_000:
                self._last_errors.pop(next(iter(self._last_errors)))
            self._last_errors[sequence] = reason
            log_event("message_refused", level="warning", sequence=msg.metadata.sequence.stream,
                      deliveries=deliveries, max_deliver=self.settings.max_deliver,
                      error=reason)
            await self._nak(msg, delay=min(30.0, 0.5 * deliveries))

    async def _dead_letter(self, letters: list[DeadLetter]) -> None:
        msgs = [d.msg for d in letters if d.msg is not None]
        try:
            outcome = await self._with_database(msgs, self._db_rejects, letters)
        except _Stopped:
            for msg in msgs:
                await self._nak(msg)
            return
        if isinstance(outcome, _Failed):
            log_event("rejects_not_recorded", level="error", error=str(outcome.error),
                      sequences=[d.sequence for d in letters])
        bodies = [self._dlq(d) for d in letters]
        acks = await asyncio.gather(
            *(self._js.publish(self.settings.dlq_subject, data, headers=headers)
              for data, headers in bodies),
            return_exceptions=True,
        )
        for letter, ack in zip(letters, acks, strict=True):
            if isinstance(ack, BaseException):
                # Not terminated: JetStream redelivers it and the dead-letter path runs again.
                log_event("dead_letter_publish_failed", level="warning",
                          sequence=letter.sequence, error=repr(ack))
                continue
            if letter.msg is not None:
                with contextlib.suppress(Exception):
                    await letter.msg.term()
            self.stats.dead_lettered += 1
            self.stats.rejected += 1
            log_event("dead_lettered", sequence=letter.sequence, deliveries=letter.deliveries,
                      field=letter.field, reason=letter.reason,
                      dlq_subject=self.settings.dlq_subject)

    def _dlq(self, letter: DeadLetter) -> tuple[bytes, dict[str, str]]:
        return dead_letter_message(letter, stream=self.settings.stream,
                                   consumer=self.settings.durable)

    async def _ack(self, msg: Msg) -> None:
        try:
            await msg.ack()
        except Exception as exc:  # NATS gone: the redelivery will be a counted duplicate
            log_event("ack_failed", level="warning", error=repr(exc))

    async def _nak(self, msg: Msg, delay: float | None = None) -> None:
        with contextlib.suppress(Exception):
            await msg.nak(delay=delay)

    async def _publish_events(self) -> None:
        if self._publisher is None:
            self._events_dirty = False
            return
        if not self._events_dirty:
            return
        try:
            self.stats.events_published += await self._publisher.publish_pending()
            self._events_dirty = False
        except Exception as exc:
            log_event("events_publish_deferred", level="warning", error=repr(exc))

    # --- rollups ----------------------------------------------------------------------------

    def _maybe_refresh(self) -> None:
        """Start a refresh of the accumulated range when the interval has passed (in the
        background, on its own connection: the next batches keep flowing meanwhile)."""
        if self._refreshing is None and self._refresher.due():
            self._refreshing = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            started = time.perf_counter()
            ranges = self._refresher.take()
            try:
                await asyncio.to_thread(self._refresher.refresh, ranges)
            except RefreshFailed as exc:
                self._refresher.put_back(exc.remaining)
                self.stats.rollup_refresh_failures += 1
                log_event("rollups_refresh_failed", level="warning", error=str(exc).strip(),
                          pending_ranges=_iso(self._refresher.pending.ranges),
                          hint="data is committed; retried at the next interval, or run "
                               "`tsfleet refresh --start S --end E` for the ranges")
                return
            self.stats.rollup_refreshes += 1
            log_event("rollups_refreshed", ranges=_iso(ranges),
                      seconds=round(time.perf_counter() - started, 3))
        finally:
            self._refreshing = None

    async def _final_refresh(self) -> None:
        """At shutdown: wait for a refresh under way, then refresh what is left."""
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
        if self._refresher.pending:
            await self._refresh()
        await asyncio.to_thread(self._refresher.close)

    # --- the loop ---------------------------------------------------------------------------

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            log_event("stats", **self.stats.snapshot())
            self.stats.write_json(self.settings.stats_json)

    async def run(self) -> ConsumerStats:
        reporter = asyncio.create_task(self._report())
        try:
            try:
                await self._connect_nats()
            except _Stopped:
                return self.stats
            await self._publish_events()  # what a previous run committed but did not publish
            msgs: list[tuple[Msg, Decoded | Poison]] = []
            while not self.stop.is_set():
                if not msgs:
                    msgs = await self._fetch_decoded()
                if msgs:
                    # Fetch and decode the next batch while this one is written (the write
                    # runs in a thread); the prefetched messages are kept alive with the
                    # batch's.
                    prefetch = asyncio.create_task(self._fetch_decoded())
                    prefetch.add_done_callback(self._hold)
                    await self._handle(msgs)
                    await self._dead_letter_exhausted()
                    await self._publish_events()
                    self._maybe_refresh()
                    msgs = await prefetch
                    self._held = []
                    if self.stop.is_set():
                        for msg, _ in msgs:  # not started: let another worker have them now
                            await self._nak(msg)
                        msgs = []
                    continue
                await self._dead_letter_exhausted()
                await self._publish_events()
                self._maybe_refresh()
                if self.settings.stop_when_drained and await self._drained():
                    log_event("drained")
                    break
        finally:
            reporter.cancel()
            await self._shutdown()
        return self.stats

    async def _shutdown(self) -> None:
        self._closing = True
        if self._puller is not None:
            for msg in self._puller.take_buffered():  # delivered, never started: hand back
                await self._nak(msg)
        if self._nc is not None:
            with contextlib.suppress(Exception):  # acks must reach the server before we go
                await self._nc.flush(timeout=5)
            with contextlib.suppress(Exception):
                await self._nc.close()
        if self._publisher is not None:
            await self._publisher.close()
        await asyncio.to_thread(self._drop_connection)
        await self._final_refresh()
        log_event("consumer_stopped", **self.stats.snapshot())
        self.stats.write_json(self.settings.stats_json)


def _iso(ranges: Sequence[tuple[datetime, datetime]]) -> list[list[str]]:
    return [[start.isoformat(), end.isoformat()] for start, end in ranges]


async def run_consumer(settings: ConsumerSettings) -> ConsumerStats:
    """Run until SIGTERM/SIGINT (or drained, with stop_when_drained); returns the counters."""
    consumer = Consumer(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, consumer.stop.set)
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return await consumer.run()
    finally:
        gc.set_threshold(*thresholds)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
