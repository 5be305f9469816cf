"""Deferred rollup refresh: the consumer's batches skip the loaders' per-batch
`rollups.refresh_after_load(batch_id)` (130-350 ms each). Every committed batch queues the
refresh its readings need (ingest.commit_batch, in the batch's transaction); at most every
--refresh-interval and at shutdown the queue is drained with `rollups.refresh_queued()`, on a
connection of its own (so a refresh overlaps the next batches' writes instead of blocking
them). The time ranges of the committed batches are collected here to know that a refresh is
due and to report what it covered.

The SQL decides what a range needs: on Community only what lies outside the refresh policies'
window (live data is left to the policies), on Apache always; a caller that does not own the
rollups leaves the queue to `tsfleet refresh`. A failed refresh is a warning: the data is
committed and acked, its ranges stay queued, and the next interval tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import datetime

import psycopg

from loader.db import plain_url
from loader.ingest.rollup_refresh import call_refresh
from loader.rollup_ranges import END_EXCLUSIVE, RangeSet
from loader.stream.stats import ConsumerStats, log_event

REFRESH_SQL = "call rollups.refresh_queued()"


class RollupRefresher:
    """Collects the committed readings' time ranges and refreshes them when due."""

    def __init__(self, database_url: str, interval_s: float) -> None:
        self.database_url = database_url
        self.interval_s = interval_s
        self.pending = RangeSet()
        self.last_refresh = time.monotonic()
        self._conn: psycopg.Connection | None = None

    def note(self, first_at: datetime | None, last_at: datetime | None) -> None:
        """A committed batch wrote readings from first_at to last_at (both inclusive)."""
        if first_at is not None and last_at is not None:
            self.pending.add(first_at, last_at + END_EXCLUSIVE)

    def due(self) -> bool:
        return bool(self.pending) and time.monotonic() - self.last_refresh >= self.interval_s

    def take(self) -> list[tuple[datetime, datetime]]:
        """The pending ranges, now owned by the caller (call on the event loop's thread, like
        note(): the ranges are never touched from two threads)."""
        self.last_refresh = time.monotonic()
        return self.pending.take()

    def refresh(self) -> None:
        """Drain the refresh queue, which holds the ranges taken (blocking: run it in a
        thread). A failure drops the connection and is raised, for the caller to put the
        ranges back."""
        try:
            call_refresh(self._connection(), REFRESH_SQL)
        except Exception:
            self.close()
            raise

    def put_back(self, ranges: list[tuple[datetime, datetime]]) -> None:
        for start, end in ranges:
            self.pending.add(start, end)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            # Autocommit: the Community refresh commits inside the procedure.
            self._conn = psycopg.connect(plain_url(self.database_url), autocommit=True,
                                         application_name="tsfleet-consume-refresh")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class BackgroundRefresh:
    """Runs the refresher off the event loop when it is due, one refresh at a time, counting
    and logging each; `finish()` at shutdown refreshes what is left."""

    def __init__(self, refresher: RollupRefresher, stats: ConsumerStats) -> None:
        self.refresher = refresher
        self.stats = stats
        self._running: asyncio.Task | None = None

    def start_when_due(self) -> None:
        """Start a refresh of the accumulated ranges when the interval has passed (in the
        background, on its own connection: the next batches keep flowing meanwhile)."""
        if self._running is None and self.refresher.due():
            self._running = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            started = time.perf_counter()
            ranges = self.refresher.take()
            try:
                await asyncio.to_thread(self.refresher.refresh)
            except Exception as exc:  # psycopg's, or a lost connection's: retried later
                self.refresher.put_back(ranges)
                self.stats.rollup_refresh_failures += 1
                log_event("rollups_refresh_failed", level="warning", error=str(exc).strip(),
                          pending_ranges=_iso(self.refresher.pending.ranges),
                          hint="data is committed; retried at the next interval, or run "
                               "`tsfleet refresh --start S --end E` for the ranges")
                return
            self.stats.rollup_refreshes += 1
            log_event("rollups_refreshed", ranges=_iso(ranges),
                      seconds=round(time.perf_counter() - started, 3))
        finally:
            self._running = None

    async def finish(self) -> None:
        """At shutdown: wait for a refresh under way, then refresh what is left."""
        if self._running is not None:
            await asyncio.shield(self._running)
        if self.refresher.pending:
            await self._refresh()
        await asyncio.to_thread(self.refresher.close)


def _iso(ranges: Sequence[tuple[datetime, datetime]]) -> list[list[str]]:
    return [[start.isoformat(), end.isoformat()] for start, end in ranges]
