"""The consumer's loop and its NATS side: fetch a micro-batch, write it, carry out what
loader/stream/pipeline.py decided (ack after commit, nak, dead-letter and terminate).

Delivery guarantees, and where each comes from:
- at least once: JetStream redelivers every message not acked within ack_wait; a message is
  acked only after the transaction holding its data committed;
- exactly-once effect: the loaders' message-id idempotency turns a redelivered message into a
  counted duplicate that changes nothing;
- poison never blocks: a message that can never load is rejected, dead-lettered and
  terminated; a message the database refuses for a reason of its own is isolated by writing
  the batch again in halves, retried until max_deliver, then dead-lettered the same way;
- outages: while the database is down the batch is retried in process (loader/stream/
  retrying.py, tenacity) and its messages are kept alive (in-progress acks), so an outage
  burns no deliveries; NATS outages are handled by the client's reconnects, and a lost ack
  only means a duplicate later.

Rollups are refreshed for the accumulated time range of committed batches at most every
refresh_interval_s and at shutdown (loader/stream/refresh.py), not after every batch.

Throughput: a micro-batch is one pull request whose messages a subscription callback collects
(loader/stream/fetch.py: nats-py's fetch() waits for each message separately, measured at a
third of the rate); the next batch is fetched on the event loop while a worker thread writes
the current one (loader/stream/database.py). `--workers N` runs N Consumers in the process
(run_consumer), each with its own pull subscription and database connection, so that N
micro-batches are in the database at once; they share the stop event, the counters and the
rollup refresher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nats.aio.msg import Msg

from loader.stream import jetstream
from loader.stream.database import Database
from loader.stream.deadletter import dead_letter_message
from loader.stream.fetch import FetchFailed
from loader.stream.outbox import OutboxPublisher
from loader.stream.pipeline import (
    Ack,
    Action,
    BatchPlan,
    DeadLetter,
    Delivery,
    Failure,
    LastErrors,
    Letter,
    Nak,
    classify,
    exhausted_letter,
)
from loader.stream.refresh import BackgroundRefresh, RollupRefresher
from loader.stream.retrying import Stopped, until_stopped
from loader.stream.settings import ConsumerSettings
from loader.stream.sink import Written
from loader.stream.stats import ConsumerStats, log_event

# Called after a chunk committed and before its acks: tests stop the consumer there.
AfterCommit = Callable[[Written, Sequence[Delivery]], Awaitable[None]]
FETCH_PAUSE_S = 0.5  # after a failed pull request, before the next


class Consumer:
    """One worker: its own pull subscription and database connection. The workers of a
    process share the stop event, the counters and the rollup refresher (run_consumer)."""

    def __init__(self, settings: ConsumerSettings, after_commit: AfterCommit | None = None,
                 shared: Consumer | None = None) -> None:
        self.settings = settings
        self.stats = shared.stats if shared else ConsumerStats()
        self.stop = shared.stop if shared else asyncio.Event()
        self.db = Database(settings)
        self._after_commit = after_commit
        self._link: jetstream.Link | None = None
        self._js: Any = None
        self._publisher: OutboxPublisher | None = None
        self._events_dirty = True
        self._held: list[Msg] = []
        self._exhausted: list[dict[str, Any]] = []
        self._last_errors = LastErrors()
        self.refresh = shared.refresh if shared else BackgroundRefresh(
            RollupRefresher(settings.database_url, settings.refresh_interval_s), self.stats)

    # --- the database, retried ------------------------------------------------------------

    async def _database(self, deliveries: Sequence[Delivery], work: Callable[..., Any],
                        *args: Any) -> Any:
        """`work(*args)` in a worker thread, transient and systemic failures retried until it
        succeeds (raises Stopped at shutdown), the deliveries kept alive meanwhile. A refusal
        is raised as it is."""
        keepalive = asyncio.create_task(self._keep_alive(deliveries))
        retrying = until_stopped(self.stop, lambda exc: classify(exc) is not Failure.REFUSED,
                                 self._database_retry)
        try:
            return await retrying(asyncio.to_thread, work, *args)
        finally:
            keepalive.cancel()

    def _database_retry(self, error: BaseException, attempt: int, wait_s: float) -> None:
        transient = classify(error) is Failure.TRANSIENT
        self.stats.retried_batches += 1
        if transient:
            if self.db.connected:
                self.stats.database_reconnects += 1
            self.db.close()
        log_event("database_unavailable" if transient else "database_error_retrying",
                  level="warning" if transient else "error", attempt=attempt,
                  retry_in_s=wait_s, error=str(error).strip())

    async def _keep_alive(self, deliveries: Sequence[Delivery]) -> None:
        """Tell JetStream the messages are still being worked on (a slow write, an outage),
        and the prefetched ones waiting behind them."""
        period = max(0.5, self.settings.ack_wait_s / 3)
        while True:
            await asyncio.sleep(period)
            for msg in [*(d.handle for d in deliveries), *self._held]:
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    # --- NATS -------------------------------------------------------------------------------

    async def _connect(self) -> None:
        self._link = await jetstream.connect(self.settings, self.stop, self.stats,
                                             self._on_max_deliveries)
        self._js = self._link.js
        if self.settings.events_subject:
            self._publisher = OutboxPublisher(self._js, self.settings.database_url)
        s = self.settings
        log_event("consumer_started", servers=list(s.servers), stream=s.stream,
                  subject=s.subject, durable=s.durable, batch=s.batch_size,
                  max_deliver=s.max_deliver, ack_wait_s=s.ack_wait_s,
                  events_subject=s.events_subject)

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
            await self._dead_letter([exhausted_letter(
                sequence, deliveries, stored.subject or self.settings.subject,
                stored.data or b"", self._last_errors.pop(sequence))])

    async def _fetch(self) -> list[Delivery]:
        assert self._link is not None
        try:
            msgs = await self._link.puller.fetch(self.settings.batch_size, self.settings.max_wait_s)
        except FetchFailed as exc:  # the consumer cannot serve requests right now
            log_event("fetch_failed", level="warning", error=str(exc))
        except Exception as exc:  # disconnected, reconnecting, JetStream restarting ...
            log_event("fetch_failed", level="warning", error=repr(exc))
        else:
            return [jetstream.delivery_of(msg) for msg in msgs]
        with contextlib.suppress(asyncio.TimeoutError):  # a pause, unless stopping
            await asyncio.wait_for(self.stop.wait(), FETCH_PAUSE_S)
        return []

    async def _drained(self) -> bool:
        try:
            assert self._link is not None
            info = await self._link.psub.consumer_info()
        except Exception:
            return False
        return info.num_pending == 0 and info.num_ack_pending == 0 and not self._events_dirty

    # --- one micro-batch --------------------------------------------------------------------

    async def _handle(self, batch: Sequence[Delivery]) -> None:
        started = time.perf_counter()
        self.stats.messages_received += len(batch)
        self.stats.redelivered += sum(1 for d in batch if d.deliveries > 1)
        plan = BatchPlan(batch, self.settings.max_deliver)
        while (chunk := plan.next_chunk()) is not None:
            try:
                written = await self._database(chunk, self.db.write,
                                               [d.payload for d in chunk])
            except Stopped:
                await self._carry_out(plan.stopped(chunk))
                break
            except Exception as exc:  # refused: classify() said it is about the data
                actions = plan.refused(chunk, exc)
                self._last_errors.note(actions)
            else:
                self._count(written)
                if self._after_commit is not None:
                    await self._after_commit(written, chunk)
                actions = plan.committed(chunk, written.poisoned)
            await self._carry_out(actions)
        self.stats.record_batch(time.perf_counter() - started)

    def _count(self, written: Written) -> None:
        counts = written.counts
        self.stats.processed += counts.messages_inserted
        self.stats.duplicates += counts.messages_duplicate
        self.stats.rejected += counts.rejected
        self.stats.readings_inserted += counts.readings_inserted
        self.stats.events_enqueued += counts.events_enqueued
        self._events_dirty = self._events_dirty or counts.events_enqueued > 0
        self.refresh.refresher.note(counts.first_recorded_at, counts.last_recorded_at)

    async def _carry_out(self, actions: Sequence[Action]) -> None:
        letters = []
        for action in actions:
            if isinstance(action, Ack):
                try:
                    await action.delivery.handle.ack()
                except Exception as exc:  # NATS gone: the redelivery is a counted duplicate
                    log_event("ack_failed", level="warning", error=repr(exc))
            elif isinstance(action, Nak):
                if action.reason is not None:
                    log_event("message_refused", level="warning",
                              sequence=action.delivery.payload.sequence,
                              deliveries=action.delivery.deliveries,
                              max_deliver=self.settings.max_deliver, error=action.reason)
                await self._nak(action.delivery.handle, action.delay_s)
            elif isinstance(action, Letter):
                letters.append(action.letter)
        if letters:
            await self._dead_letter(letters)

    async def _dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        deliveries = [d.delivery for d in letters if d.delivery is not None]
        try:
            await self._database(deliveries, self.db.record_rejects, letters)
        except Stopped:
            for delivery in deliveries:
                await self._nak(delivery.handle)
            return
        except Exception as exc:
            log_event("rejects_not_recorded", level="error", error=str(exc),
                      sequences=[d.sequence for d in letters])
        bodies = [dead_letter_message(d, stream=self.settings.stream,
                                      consumer=self.settings.durable) for d in letters]
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
            if letter.delivery is not None:
                with contextlib.suppress(Exception):
                    await letter.delivery.handle.term()
            self.stats.dead_lettered += 1
            self.stats.rejected += 1
            log_event("dead_lettered", sequence=letter.sequence, deliveries=letter.deliveries,
                      field=letter.field, reason=letter.reason,
                      dlq_subject=self.settings.dlq_subject)

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

    # --- the loop ---------------------------------------------------------------------------

    def _hold(self, task: asyncio.Task) -> None:
        """Remember prefetched messages, so that _keep_alive covers them too."""
        if not task.cancelled() and task.exception() is None:
            self._held = [d.handle for d in task.result()]

    async def _between_batches(self) -> None:
        await self._dead_letter_exhausted()
        await self._publish_events()
        self.refresh.start_when_due()

    async def run(self) -> None:
        try:
            try:
                await self._connect()
            except Stopped:
                return
            await self._publish_events()  # what a previous run committed but did not publish
            batch: list[Delivery] = []
            while not self.stop.is_set():
                if not batch:
                    batch = await self._fetch()
                if batch:
                    # Fetch the next batch while this one is written (the write runs in a
                    # thread); the prefetched messages are kept alive with the batch's.
                    prefetch = asyncio.create_task(self._fetch())
                    prefetch.add_done_callback(self._hold)
                    await self._handle(batch)
                    await self._between_batches()
                    batch = await prefetch
                    self._held = []
                    if self.stop.is_set():
                        for delivery in batch:  # not started: another worker's now
                            await self._nak(delivery.handle)
                        batch = []
                    continue
                await self._between_batches()
                if self.settings.stop_when_drained and await self._drained():
                    log_event("drained")
                    break
        finally:  # drained, stopped or failed: the process's other workers finish and go
            self.stop.set()
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self._link is not None:
            self._link.closing = True
            for msg in self._link.puller.take_buffered():  # delivered, never started
                await self._nak(msg)
            with contextlib.suppress(Exception):  # acks must reach the server before we go
                await self._link.nc.flush(timeout=5)
            with contextlib.suppress(Exception):
                await self._link.nc.close()
        if self._publisher is not None:
            await self._publisher.close()
        await asyncio.to_thread(self.db.close)


async def _report(stats: ConsumerStats, settings: ConsumerSettings) -> None:
    while True:
        await asyncio.sleep(settings.stats_interval_s)
        log_event("stats", **stats.snapshot())
        stats.write_json(settings.stats_json)


async def run_consumer(settings: ConsumerSettings,
                       after_commit: AfterCommit | None = None) -> ConsumerStats:
    """Run `settings.workers` workers until SIGTERM/SIGINT (or drained, with
    stop_when_drained); returns the counters of all. `after_commit` is a test hook, awaited
    after each commit and before its acks."""
    first = Consumer(settings, after_commit)
    workers = [first, *(Consumer(settings, after_commit, first)
                        for _ in range(settings.workers - 1))]
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, first.stop.set)
    reporter = asyncio.create_task(_report(first.stats, settings))
    try:  # every worker ends (one that ends stops the others), then a failure is raised
        ended = await asyncio.gather(*(w.run() for w in workers), return_exceptions=True)
    finally:
        reporter.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await first.refresh.finish()  # the refresher the workers share: once, at the end
        log_event("consumer_stopped", workers=settings.workers, **first.stats.snapshot())
        first.stats.write_json(settings.stats_json)
    for outcome in ended:
        if isinstance(outcome, BaseException):
            raise outcome
    return first.stats
