"""The consumer's decisions, without I/O: what a micro-batch is, and what to do with each
delivery once the database has answered (ack, nak, dead-letter, write again in halves).

Plain data in, plain data out, so that every rule is tested without a server
(tests/test_consume_pipeline.py). loader/stream/consumer.py carries the actions out on NATS,
loader/stream/database.py talks to PostgreSQL.

The rules:
- a chunk that committed: every delivery in it is acked, except those the write named
  poison (they can never load): they are dead-lettered, then terminated;
- a chunk the database refused for a reason of its own (a constraint, a trigger, a raised
  exception): written again in halves, the first half first, until the refused message is
  alone; alone, it is nak'ed with a growing delay and dead-lettered at its max-deliver-th
  delivery with the database's words;
- transient trouble (connection, shutdown, serialization) and systemic errors (the deployment
  is wrong, not the message) are retried as they are, never split and never dead-lettered
  (loader/stream/retrying.py);
- shutdown while a chunk waits for the database: everything not written is nak'ed at once, so
  another worker takes it.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

RAW_TEXT_LIMIT = 100_000  # of a dead letter's raw text in ingest.rejects
REASON_LIMIT = 2000
NAK_DELAY_CAP_S = 30.0
TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57014"}
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57P")
# Errors that say the deployment is wrong, not the message (undefined function, privileges,
# internal errors...): retried like an outage instead of dead-lettering the whole stream one
# message at a time. Message-specific errors (data exceptions 22, constraints 23, raised
# exceptions P0) are isolated and dead-lettered after max_deliver.
SYSTEMIC_SQLSTATE_CLASSES = ("42", "0A", "XX", "58", "3D", "3F", "25")


@dataclass(frozen=True)
class Payload:
    """One message as the sink takes it: its subject, the publisher's Nats-Msg-Id header (None
    when it set none), the payload bytes as published, and its stream sequence (which locates
    its rejects: ingest.rejects.line_number)."""

    subject: str
    message_id: str | None
    data: bytes
    sequence: int


@dataclass(frozen=True)
class Delivery:
    """One delivery of a message: the payload, how often JetStream delivered it so far, and
    the handle the I/O side acks it by (a nats-py Msg; opaque here)."""

    payload: Payload
    deliveries: int
    handle: Any = None


@dataclass(frozen=True)
class DeadLetter:
    """A message on its way to ingest.rejects and the dead-letter subject, and the delivery to
    terminate afterwards (None: JetStream has given up on it already)."""

    subject: str
    sequence: int
    deliveries: int
    data: bytes
    reason: str
    field: str | None = None
    delivery: Delivery | None = None

    @classmethod
    def of(cls, delivery: Delivery, reason: str, field: str | None = None) -> DeadLetter:
        p = delivery.payload
        return cls(p.subject, p.sequence, delivery.deliveries, p.data, reason, field, delivery)

    @property
    def raw_text(self) -> str:
        return self.data.decode("utf-8", errors="replace")[:RAW_TEXT_LIMIT]


@dataclass(frozen=True)
class Ack:
    delivery: Delivery


@dataclass(frozen=True)
class Nak:
    """Hand the delivery back: at once, or after delay_s when the database refused it
    (reason: its words)."""

    delivery: Delivery
    delay_s: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Letter:
    letter: DeadLetter


Action = Ack | Nak | Letter


@dataclass(frozen=True)
class Poisoned:
    """The write's word on a message that can never load (not JSON, no messageId ...)."""

    reason: str
    field: str | None = None


class Failure(enum.Enum):
    TRANSIENT = "transient"  # retry as is, on a new connection
    SYSTEMIC = "systemic"  # retry as is: the deployment is wrong, not the message
    REFUSED = "refused"  # the database refuses this data: isolate it


def _causes(exc: BaseException | None, depth: int = 10) -> list[BaseException]:
    chain = []
    while exc is not None and len(chain) < depth:
        chain.append(exc)
        exc = exc.__cause__
    return chain


def classify(exc: BaseException) -> Failure:
    """What kind of failure a database error is (looking down its cause chain)."""
    chain = _causes(exc)
    for link in chain:
        if isinstance(link, (psycopg.OperationalError, psycopg.InterfaceError)):
            return Failure.TRANSIENT
        state = getattr(link, "sqlstate", None) or ""
        if state in TRANSIENT_SQLSTATES or state.startswith(TRANSIENT_SQLSTATE_CLASSES):
            return Failure.TRANSIENT
    for link in chain:
        if (getattr(link, "sqlstate", None) or "").startswith(SYSTEMIC_SQLSTATE_CLASSES):
            return Failure.SYSTEMIC
    return Failure.REFUSED


def refused_reason(error: BaseException) -> str:
    return f"database refused the message: {str(error).strip()}"[:REASON_LIMIT]


def nak_delay_s(deliveries: int) -> float:
    return min(NAK_DELAY_CAP_S, 0.5 * deliveries)


class BatchPlan:
    """The chunks of one micro-batch, in the order to write them: the whole batch, then the
    halves of every refused chunk before anything after it. The I/O side asks for the next
    chunk, writes it, and tells the outcome; the plan answers with the actions to carry out."""

    def __init__(self, batch: Sequence[Delivery], max_deliver: int) -> None:
        self.max_deliver = max_deliver
        self._pending: deque[tuple[Delivery, ...]] = deque([tuple(batch)] if batch else [])

    def next_chunk(self) -> tuple[Delivery, ...] | None:
        return self._pending.popleft() if self._pending else None

    def committed(self, chunk: Sequence[Delivery],
                  poisoned: Mapping[int, Poisoned]) -> list[Action]:
        """Ack the chunk; dead-letter what the write named poison (by stream sequence)."""
        actions: list[Action] = []
        for delivery in chunk:
            poison = poisoned.get(delivery.payload.sequence)
            actions.append(Ack(delivery) if poison is None else
                           Letter(DeadLetter.of(delivery, poison.reason, poison.field)))
        return actions

    def refused(self, chunk: Sequence[Delivery], error: BaseException) -> list[Action]:
        """Write the halves next (first half first); a message alone is nak'ed with a delay,
        or dead-lettered at its max_deliver-th delivery."""
        if len(chunk) > 1:
            middle = len(chunk) // 2
            self._pending.extendleft([tuple(chunk[middle:]), tuple(chunk[:middle])])
            return []
        (delivery,) = chunk
        reason = refused_reason(error)
        if delivery.deliveries >= self.max_deliver:
            return [Letter(DeadLetter.of(
                delivery, f"{reason} (after {delivery.deliveries} deliveries)"))]
        return [Nak(delivery, nak_delay_s(delivery.deliveries), reason)]

    def stopped(self, chunk: Sequence[Delivery]) -> list[Action]:
        """Shutdown while `chunk` waited for the database: it and the rest go back at once."""
        actions: list[Action] = [Nak(d) for c in (chunk, *self._pending) for d in c]
        self._pending.clear()
        return actions


def exhausted_letter(sequence: int, deliveries: int, subject: str, data: bytes,
                     last_error: str | None) -> DeadLetter:
    """JetStream gave up on a message after `deliveries` unacked deliveries (its
    MAX_DELIVERIES advisory): the letter says why, as far as this worker knows."""
    reason = (
        f"{last_error} (not acknowledged after {deliveries} deliveries, max-deliver)"
        if last_error else
        f"not acknowledged after {deliveries} deliveries (max-deliver): a worker "
        "stopped on each delivery; if its data was committed, a replay is a no-op"
    )
    return DeadLetter(subject, sequence, deliveries, data, reason)


class LastErrors:
    """Why the database refused a message, by stream sequence (the newest `limit`): if
    JetStream gives up on it before this worker dead-letters it, the letter still says why."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._reasons: dict[int, str] = {}

    def note(self, actions: Sequence[Action]) -> None:
        """Remember the refusal behind a Nak, forget the message once it is dead-lettered."""
        for action in actions:
            if isinstance(action, Nak) and action.reason is not None:
                if len(self._reasons) >= self.limit:
                    self._reasons.pop(next(iter(self._reasons)))
                self._reasons[action.delivery.payload.sequence] = action.reason
            elif isinstance(action, Letter):
                self._reasons.pop(action.letter.sequence, None)

    def pop(self, sequence: int) -> str | None:
        return self._reasons.pop(sequence, None)

    def __len__(self) -> int:
        return len(self._reasons)
