"""The polling runner: each cycle refreshes what the edition needs, calls alerts.evaluate(),
then delivers the notification outbox to every sink.

Delivery is at-least-once and, in normal operation, exactly once per transition. The SQL side
(sql/functions/54_alerts_delivery.sql) leases due deliveries to one runner under a lease token
(SKIP LOCKED + lease). While sending a batch, the runner renews the lease whenever a third of
it has passed, and sends a notification only while its claim still holds it; since one send
takes at most the HTTP timeout, which must be under a third of the lease, no lease runs out
while its holder is still sending, so a slow receiver never makes a second runner send the
same notification. The outcome is recorded with the token (a stale claim cannot record). A
sink's answer that could not be recorded because the database went away is kept in memory and
recorded first after the reconnect, so a restart of the database neither loses nor repeats a
notification.

A step that waits too long for a lock (lock_timeout: a concurrent rollup refresh, another
runner's evaluation) or is cancelled is skipped for this cycle with its own log event
(refresh_skipped, evaluation_skipped, delivery_skipped); only a lost connection is
`database_unavailable`, and then the runner reconnects with jittered exponential backoff.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg import errors
from psycopg.rows import dict_row
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from loader.alerts.sinks import AlertmanagerSink, Notification, Sink, SinkError
from loader.db import connect, redacted
from loader.ingest.rollup_refresh import refresh_in_turn
from loader.logs import EventLog

REFRESH_PROCEDURE = "rollups.refresh(timestamptz,timestamptz)"

# A step that hit one of these is skipped for this cycle; the connection stays usable.
SKIPPABLE_ERRORS: tuple[type[psycopg.Error], ...] = (
    errors.LockNotAvailable, errors.QueryCanceled, errors.SerializationFailure,
    errors.DeadlockDetected, errors.ObjectInUse)


@dataclass
class RunnerConfig:
    database_url: str
    sinks: Sequence[Sink]
    interval: timedelta = timedelta(seconds=10)
    batch_size: int = 100
    # A claim's lease; renewed while sending. Must exceed 3 x every sink's HTTP timeout.
    lease: timedelta = timedelta(minutes=2)
    retry_base: timedelta = timedelta(seconds=1)
    retry_max: timedelta = timedelta(minutes=5)
    # A retryable failure older than this (since the delivery was queued) is dead-lettered.
    retry_max_age: timedelta = timedelta(hours=1)
    reconnect_max: timedelta = timedelta(seconds=30)
    # How long a step waits for a lock before it is skipped for this cycle.
    lock_timeout: timedelta = timedelta(seconds=5)
    refresh: bool = True
    # Per runner (its sinks): rules decide with send_resolved too; both must say yes.
    send_resolved: bool = True
    # Rollups the conditions read (hourly means and counts) are refreshed over this recent
    # window each cycle; loads queue older ranges themselves (issue 5).
    refresh_window: timedelta = timedelta(hours=1)
    runner_id: str = field(default_factory=lambda: (
        f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"))

    def __post_init__(self) -> None:
        for sink in self.sinks:
            timeout = getattr(sink, "timeout", None)
            if timeout is not None and timedelta(seconds=3 * timeout) > self.lease:
                raise ValueError(
                    f"the delivery lease ({self.lease.total_seconds():g} s) must be at least "
                    f"3 x the HTTP timeout of {sink.name} ({timeout:g} s), so that no lease "
                    "runs out while a notification is being sent; raise --lease or lower "
                    "--timeout")


@dataclass
class CycleStats:
    transitions: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Answer:
    sink: str
    notification_id: int
    lease_token: str | None
    outcome: str  # delivered | retry | permanent
    status: int | None = None
    error: str | None = None
    body: str | None = None


class Runner:
    def __init__(self, config: RunnerConfig, log: Callable[..., None] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.log = log or EventLog("alerts", component="alerts-runner")
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._stop = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._unrecorded: list[_Answer] = []
        self._registered = False
        self._last_resend: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self, reason: str = "requested") -> None:
        if not self._stop.is_set():
            self.log("stopping", reason=reason)
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, once: bool = False) -> int:
        """Cycle until stopped (or once). Returns the exit code: 0, or 1 if --once failed."""
        self.log("started", runner_id=self.config.runner_id,
                 database=redacted(self.config.database_url),
                 sinks=[s.name for s in self.config.sinks],
                 interval_s=self.config.interval.total_seconds())
        try:
            while True:
                started = time.monotonic()
                try:
                    stats = self._cycle_reconnecting(once)
                except psycopg.Error:  # with --once, or stopped while the database was away
                    return 1 if once else 0
                self.log("cycle", transitions=stats.transitions, delivered=stats.delivered,
                         failed=stats.failed, dead=stats.dead, skipped=stats.skipped,
                         duration_ms=round((time.monotonic() - started) * 1000, 1))
                if once:
                    return 0 if stats.failed == 0 and stats.dead == 0 else 1
                wait = self.config.interval.total_seconds() - (time.monotonic() - started)
                if self._stop.wait(max(wait, 0)):
                    return 0
        finally:
            self._drop_connection()
            self.log("stopped", unrecorded=len(self._unrecorded))

    def _cycle_reconnecting(self, once: bool) -> CycleStats:
        """One cycle; while the database is unavailable, reconnect with jittered backoff."""
        retrying = Retrying(
            retry=retry_if_exception_type(psycopg.Error),
            wait=wait_exponential_jitter(initial=1,
                                         max=self.config.reconnect_max.total_seconds()),
            stop=stop_after_attempt(1) if once else (lambda _state: self.stopping),
            sleep=self._stop.wait,
            after=lambda _state: self._drop_connection(),
            before_sleep=self._database_unavailable,
            reraise=True,
        )
        try:
            return retrying(self.cycle)
        except psycopg.Error as exc:
            self._log_unavailable(exc, retry_in_s=None)
            raise

    def _database_unavailable(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else None
        self._log_unavailable(exc, retry_in_s=round(sleep, 2) if sleep is not None else None)

    def _log_unavailable(self, exc: BaseException | None, retry_in_s: float | None) -> None:
        text = str(exc).strip() if exc else ""
        self.log("database_unavailable", level="warning",
                 error=text.splitlines()[0] if text else repr(exc),
                 retry_in_s=retry_in_s, unrecorded=len(self._unrecorded))

    # -- one cycle ---------------------------------------------------------------------------

    def cycle(self) -> CycleStats:
        conn = self._connection()
        stats = CycleStats()
        self._record_unrecorded(conn)
        if self.config.refresh:
            self._step(stats, "refresh", lambda: self._refresh(conn))
        if self.stopping:
            return stats
        self._step(stats, "evaluation", lambda: self._evaluate(conn, stats))
        for sink in self.config.sinks:
            if self.stopping:
                break
            self._step(stats, "delivery", lambda sink=sink: self._deliver(conn, sink, stats),
                       sink=sink.name)
            if isinstance(sink, AlertmanagerSink):
                self._step(stats, "resend", lambda sink=sink: self._resend_firing(conn, sink),
                           sink=sink.name)
        return stats

    def _step(self, stats: CycleStats, name: str, action: Callable[[], None],
              **fields: object) -> None:
        """Run one step; a lock timeout or cancellation skips it (logged), nothing else."""
        try:
            action()
        except SKIPPABLE_ERRORS as exc:
            stats.skipped.append(name)
            self.log(f"{name}_skipped", level="warning", reason=type(exc).__name__,
                     sqlstate=exc.sqlstate, error=str(exc).strip().splitlines()[0], **fields)

    def _evaluate(self, conn: psycopg.Connection, stats: CycleStats) -> None:
        try:
            rows = conn.execute(
                "select rule, transition, labels, value from alerts.evaluate(%s)",
                [self.clock()]).fetchall()
        except errors.InvalidParameterValue as exc:
            # Another runner evaluated at a later time first: state never moves backwards.
            stats.skipped.append("evaluation")
            self.log("evaluation_skipped", level="info", reason="evaluated_later",
                     error=exc.diag.message_primary)
            return
        stats.transitions = len(rows)
        for rule, transition, labels, value in rows:
            self.log("transition", rule=rule, transition=transition, labels=labels, value=value)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.config.database_url, autocommit=True,
                                 connect_timeout=5)
            lock_ms = max(int(self.config.lock_timeout.total_seconds() * 1000), 1)
            self._conn.execute("select set_config('lock_timeout', %s, false)", [f"{lock_ms}ms"])
            self._registered = False
            self.log("connected", database=redacted(self.config.database_url))
        if not self._registered:
            for sink in self.config.sinks:
                self._conn.execute("select alerts.register_sink(%s, %s)", [sink.name, sink.kind])
            self._registered = True
        return self._conn

    def close(self) -> None:
        """Close the database connection (run() does this itself when it returns)."""
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def _refresh(self, conn: psycopg.Connection) -> None:
        row = conn.execute("select to_regprocedure(%s) is not null", [REFRESH_PROCEDURE]
                           ).fetchone()
        if not row or not row[0]:
            return
        try:
            # The end goes a second past now, so the bucket holding `now` is refreshed even
            # when `now` falls exactly on its start.
            now = self.clock()
            # In turn with tsfleet's other refreshes (Community), waiting at most lock_timeout.
            refresh_in_turn(conn, "call rollups.refresh(%s, %s)",
                            [now - self.config.refresh_window, now + timedelta(seconds=1)])
        except (psycopg.OperationalError, *SKIPPABLE_ERRORS):
            raise
        except psycopg.Error as exc:  # a failed refresh must not stop alerting
            self.log("refresh_failed", level="warning", error=str(exc).strip())

    def _deliver(self, conn: psycopg.Connection, sink: Sink, stats: CycleStats) -> None:
        lease = self.config.lease
        while not self.stopping:
            claimed_at = time.monotonic()
            with conn.cursor(row_factory=dict_row) as cur:
                claimed = cur.execute(
                    "select * from alerts.claim_deliveries(%s, %s, %s, %s)",
                    [sink.name, self.config.runner_id, self.config.batch_size, lease],
                ).fetchall()
            if not claimed:
                return
            token = str(claimed[0]["lease_token"])
            held = {row["notification_id"] for row in claimed}
            for row in claimed:
                if self.stopping:
                    break
                if time.monotonic() - claimed_at > lease.total_seconds() / 3:
                    claimed_at = time.monotonic()
                    held = {r[0] for r in conn.execute(
                        "select alerts.renew_deliveries(%s, %s, %s)", [sink.name, token, lease])}
                if row["notification_id"] not in held:
                    self.log("lease_lost", level="warning", sink=sink.name,
                             notification_id=row["notification_id"])
                    continue
                notification = Notification(**{**row, "lease_token": token})
                answer = self._send(sink, notification)
                self._unrecorded.append(answer)
                self._record_unrecorded(conn, stats)
            if len(claimed) < self.config.batch_size:
                return

    def _send(self, sink: Sink, notification: Notification) -> _Answer:
        answer = _Answer(sink.name, notification.notification_id, notification.lease_token,
                         "delivered")
        if notification.transition == "resolved" and not self.config.send_resolved:
            self.log("skipped_resolved", sink=sink.name,
                     notification_id=notification.notification_id)
            answer.error = "not sent: resolved"
            return answer
        try:
            sink.send(notification)
        except SinkError as exc:
            answer.outcome = "retry" if exc.retryable else "permanent"
            answer.status, answer.error, answer.body = exc.status, str(exc), exc.body
            return answer
        return answer

    def _record_unrecorded(self, conn: psycopg.Connection, stats: CycleStats | None = None
                           ) -> None:
        cfg = self.config
        while self._unrecorded:
            a = self._unrecorded[0]
            row = conn.execute(
                "select alerts.record_delivery(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [a.sink, a.notification_id, a.lease_token, a.outcome, a.status, a.error,
                 a.body, cfg.retry_base, cfg.retry_max, cfg.retry_max_age]).fetchone()
            self._unrecorded.pop(0)
            state = row[0] if row else None
            fields: dict[str, Any] = {"sink": a.sink, "notification_id": a.notification_id}
            if state is None:
                self.log("outcome_fenced", level="warning", outcome=a.outcome, **fields)
            elif state == "delivered":
                self.log("delivered", **fields)
            elif state == "dead":
                self.log("dead_lettered", level="error", status=a.status, error=a.error,
                         response=a.body, **fields)
            else:
                self.log("delivery_failed", level="warning", status=a.status, error=a.error,
                         **fields)
            if stats is not None:
                stats.delivered += state == "delivered"
                stats.failed += state == "retrying"
                stats.dead += state == "dead"

    def _resend_firing(self, conn: psycopg.Connection, sink: AlertmanagerSink) -> None:
        now = time.monotonic()
        last = self._last_resend.get(sink.name)
        if last is not None and now - last < sink.resend_interval.total_seconds():
            return
        self._last_resend[sink.name] = now
        payloads: list[dict[str, Any]] = [
            r[0] for r in conn.execute("select payload from alerts.firing_payloads")]
        try:
            sink.resend_firing(payloads)
        except SinkError as exc:
            self.log("resend_failed", level="warning", sink=sink.name, error=str(exc))
            return
        if payloads:
            self.log("resent_firing", sink=sink.name, alerts=len(payloads))
