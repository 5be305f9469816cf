"""The polling runner: each cycle refreshes what the edition needs, calls alerts.evaluate(),
then delivers the notification outbox to every sink.

Delivery is at-least-once and, in normal operation, exactly once per transition: the SQL side
leases due deliveries to one runner (SKIP LOCKED + lease, so two runners never send the same
one) and marks a delivery done only after the sink confirmed it. A sink's answer that could not
be recorded because the database went away is kept in memory and recorded first after the
reconnect, so a restart of the database neither loses nor repeats a notification.
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
from psycopg.rows import dict_row

from loader.alerts.sinks import AlertmanagerSink, Notification, Sink, SinkError
from loader.db import connect, redacted
from loader.logs import EventLog

REFRESH_PROCEDURE = "rollups.refresh(timestamptz,timestamptz)"

FIRING_PAYLOADS_SQL = """
select distinct on (n.episode_id) n.payload
from alerts.notifications as n
inner join alerts.episodes as e on n.episode_id = e.episode_id
where e.state = 'firing' and n.transition in ('firing', 'repeat') and n.silence_id is null
order by n.episode_id, n.notification_id desc
"""


@dataclass
class RunnerConfig:
    database_url: str
    sinks: Sequence[Sink]
    interval: timedelta = timedelta(seconds=10)
    batch_size: int = 100
    lease: timedelta = timedelta(minutes=2)
    retry_base: timedelta = timedelta(seconds=1)
    retry_max: timedelta = timedelta(minutes=5)
    reconnect_max: timedelta = timedelta(seconds=30)
    refresh: bool = True
    # Per runner (its sinks): rules decide with send_resolved too; both must say yes.
    send_resolved: bool = True
    # Rollups the conditions read (hourly means and counts) are refreshed over this recent
    # window each cycle; loads queue older ranges themselves (issue 5).
    refresh_window: timedelta = timedelta(hours=1)
    runner_id: str = field(default_factory=lambda: (
        f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"))


@dataclass
class CycleStats:
    transitions: int = 0
    delivered: int = 0
    failed: int = 0


@dataclass
class _Answer:
    sink: str
    notification_id: int
    ok: bool
    error: str | None


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
        backoff = 1.0
        try:
            while True:
                started = time.monotonic()
                try:
                    stats = self.cycle()
                    backoff = 1.0
                    self.log("cycle", transitions=stats.transitions, delivered=stats.delivered,
                             failed=stats.failed,
                             duration_ms=round((time.monotonic() - started) * 1000, 1))
                    if once:
                        return 0 if stats.failed == 0 else 1
                    wait = self.config.interval.total_seconds() - (time.monotonic() - started)
                except psycopg.Error as exc:
                    self._drop_connection()
                    self.log("database_unavailable", level="warning",
                             error=str(exc).strip().splitlines()[0] if str(exc) else repr(exc),
                             retry_in_s=backoff, unrecorded=len(self._unrecorded))
                    if once:
                        return 1
                    wait = backoff
                    backoff = min(backoff * 2, self.config.reconnect_max.total_seconds())
                if self._stop.wait(max(wait, 0)):
                    return 0
        finally:
            self._drop_connection()
            self.log("stopped", unrecorded=len(self._unrecorded))

    # -- one cycle ---------------------------------------------------------------------------

    def cycle(self) -> CycleStats:
        conn = self._connection()
        stats = CycleStats()
        self._record_unrecorded(conn)
        if self.config.refresh:
            self._refresh(conn)
        if self.stopping:
            return stats
        try:
            rows = conn.execute(
                "select rule, transition, labels, value from alerts.evaluate(%s)",
                [self.clock()]).fetchall()
        except psycopg.errors.InvalidParameterValue as exc:
            # Another runner evaluated at a later time first: state never moves backwards.
            self.log("evaluation_skipped", level="info", reason=exc.diag.message_primary)
            rows = []
        stats.transitions = len(rows)
        for rule, transition, labels, value in rows:
            self.log("transition", rule=rule, transition=transition, labels=labels, value=value)
        for sink in self.config.sinks:
            if self.stopping:
                break
            self._deliver(conn, sink, stats)
            if isinstance(sink, AlertmanagerSink):
                self._resend_firing(conn, sink)
        return stats

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.config.database_url, autocommit=True,
                                 connect_timeout=5)
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
            conn.execute("call rollups.refresh(%s, %s)",
                          [now - self.config.refresh_window, now + timedelta(seconds=1)])
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:  # a failed refresh must not stop alerting
            self.log("refresh_failed", level="warning", error=str(exc).strip())

    def _deliver(self, conn: psycopg.Connection, sink: Sink, stats: CycleStats) -> None:
        while not self.stopping:
            with conn.cursor(row_factory=dict_row) as cur:
                claimed = cur.execute(
                    "select * from alerts.claim_deliveries(%s, %s, %s, %s)",
                    [sink.name, self.config.runner_id, self.config.batch_size, self.config.lease],
                ).fetchall()
            if not claimed:
                return
            for row in claimed:
                notification = Notification(**row)
                answer = self._send(sink, notification)
                if answer.ok:
                    stats.delivered += 1
                else:
                    stats.failed += 1
                self._unrecorded.append(answer)
                self._record_unrecorded(conn)
            if len(claimed) < self.config.batch_size:
                return

    def _send(self, sink: Sink, notification: Notification) -> _Answer:
        if notification.transition == "resolved" and not self.config.send_resolved:
            self.log("skipped_resolved", sink=sink.name,
                     notification_id=notification.notification_id)
            return _Answer(sink.name, notification.notification_id, True, "not sent: resolved")
        try:
            sink.send(notification)
        except SinkError as exc:
            self.log("delivery_failed", level="warning", sink=sink.name,
                     notification_id=notification.notification_id,
                     attempts=notification.attempts, error=str(exc))
            return _Answer(sink.name, notification.notification_id, False, str(exc))
        self.log("delivered", sink=sink.name, notification_id=notification.notification_id,
                 transition=notification.transition,
                 alertname=notification.payload.get("labels", {}).get("alertname"),
                 attempts=notification.attempts)
        return _Answer(sink.name, notification.notification_id, True, None)

    def _record_unrecorded(self, conn: psycopg.Connection) -> None:
        while self._unrecorded:
            answer = self._unrecorded[0]
            conn.execute(
                "select alerts.record_delivery(%s, %s, %s, %s, %s, %s, %s)",
                [answer.sink, answer.notification_id, self.config.runner_id, answer.ok,
                 answer.error, self.config.retry_base, self.config.retry_max])
            self._unrecorded.pop(0)

    def _resend_firing(self, conn: psycopg.Connection, sink: AlertmanagerSink) -> None:
        now = time.monotonic()
        last = self._last_resend.get(sink.name)
        if last is not None and now - last < sink.resend_interval.total_seconds():
            return
        self._last_resend[sink.name] = now
        payloads: list[dict[str, Any]] = [r[0] for r in conn.execute(FIRING_PAYLOADS_SQL)]
        try:
            sink.resend_firing(payloads)
        except SinkError as exc:
            self.log("resend_failed", level="warning", sink=sink.name, error=str(exc))
            return
        if payloads:
            self.log("resent_firing", sink=sink.name, alerts=len(payloads))
