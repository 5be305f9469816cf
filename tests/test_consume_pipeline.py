"""The consumer's decisions (loader/stream/pipeline.py) and retries (retrying.py), without a
server: which deliveries are acked, nak'ed, dead-lettered or written again, checked against a
reference over random batches."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader.stream.pipeline import (
    Ack,
    BatchPlan,
    Delivery,
    Failure,
    LastErrors,
    Letter,
    Nak,
    Payload,
    Poisoned,
    classify,
    exhausted_letter,
)
from loader.stream.retrying import Stopped, until_stopped


def delivery(sequence: int, deliveries: int = 1) -> Delivery:
    return Delivery(Payload("telemetry.normalized.v1", None, f"m{sequence}".encode(), sequence),
                    deliveries, handle=f"msg-{sequence}")


class Refused(Exception):
    """What a trigger raising on one message looks like (no SQLSTATE of a systemic kind)."""


def drive(plan: BatchPlan, refused: set[int], poison: set[int]) -> tuple[list, list]:
    """Play the database's part: a chunk commits unless it holds a refused sequence; poison
    is named by the write. Returns (every action, every chunk written)."""
    actions, writes = [], []
    while (chunk := plan.next_chunk()) is not None:
        writes.append([d.payload.sequence for d in chunk])
        bad = [d.payload.sequence for d in chunk if d.payload.sequence in refused]
        if bad:
            actions += plan.refused(chunk, Refused(f"message {bad[0]} is cursed"))
        else:
            actions += plan.committed(chunk, {d.payload.sequence: Poisoned("not valid JSON")
                                              for d in chunk if d.payload.sequence in poison})
    return actions, writes


@given(st.data())
def test_every_delivery_gets_exactly_one_decision_and_refused_ones_are_isolated(
        data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 64), label="batch size")
    max_deliver = data.draw(st.integers(1, 5), label="max_deliver")
    batch = [delivery(seq, data.draw(st.integers(1, 5))) for seq in range(1, size + 1)]
    refused = data.draw(st.sets(st.integers(1, size), max_size=4), label="refused")
    poison = data.draw(st.sets(st.integers(1, size), max_size=4), label="poison") - refused
    actions, writes = drive(BatchPlan(batch, max_deliver), refused, poison)

    decided = [a.letter.sequence if isinstance(a, Letter) else a.delivery.payload.sequence
               for a in actions]
    assert sorted(decided) == list(range(1, size + 1))  # one decision each, none lost
    for d in batch:
        seq = d.payload.sequence
        [action] = [a for a, s in zip(actions, decided, strict=True) if s == seq]
        if seq in refused and d.deliveries >= max_deliver:
            assert isinstance(action, Letter)
            assert "message" in action.letter.reason and "after" in action.letter.reason
        elif seq in refused:
            assert isinstance(action, Nak) and action.delay_s == min(30.0, 0.5 * d.deliveries)
            assert action.reason and "cursed" in action.reason
        elif seq in poison:
            assert isinstance(action, Letter) and action.letter.reason == "not valid JSON"
            assert action.letter.delivery is d
        else:
            assert action == Ack(d)
    # Refused messages are isolated by halving: a refused one is written alone at the end,
    # and writes stay within 2 log2(n) + 1 per refused message.
    for seq in refused:
        assert [seq] in writes
    assert len(writes) <= 1 + len(refused) * 2 * max(1, size.bit_length())
    # Written in stream order: the first half of a refused chunk before its second half.
    committed = [s for chunk in writes if not set(chunk) & refused for s in chunk]
    assert committed == sorted(committed)


def test_a_batch_without_trouble_is_one_write_and_all_acks() -> None:
    batch = [delivery(s) for s in (7, 8, 9)]
    actions, writes = drive(BatchPlan(batch, 3), set(), set())
    assert writes == [[7, 8, 9]] and actions == [Ack(d) for d in batch]


def test_shutdown_while_waiting_hands_back_the_chunk_and_everything_after_it() -> None:
    plan = BatchPlan([delivery(s) for s in range(1, 9)], max_deliver=3)
    first = plan.next_chunk()
    assert first is not None
    assert plan.refused(first, Refused("x")) == []  # two halves queued, no decision yet
    half = plan.next_chunk()
    assert half is not None and [d.payload.sequence for d in half] == [1, 2, 3, 4]
    naks = plan.stopped(half)
    assert [(type(a), a.delivery.payload.sequence, a.delay_s) for a in naks] == [
        (Nak, s, None) for s in range(1, 9)]
    assert plan.next_chunk() is None


def test_last_errors_remember_refusals_until_the_letter_and_stay_bounded() -> None:
    errors = LastErrors(limit=3)
    for seq in range(1, 6):
        errors.note(BatchPlan([delivery(seq)], 9).refused((delivery(seq),), Refused(f"e{seq}")))
    assert len(errors) == 3 and errors.pop(1) is None
    assert errors.pop(5) == "database refused the message: e5"
    letter = exhausted_letter(4, 3, "telemetry.normalized.v1", b"{}", errors.pop(4))
    assert letter.reason == ("database refused the message: e4 (not acknowledged after 3 "
                             "deliveries, max-deliver)")
    assert "a worker stopped" in exhausted_letter(9, 3, "s", b"", None).reason


@pytest.mark.parametrize(("error", "kind"), [
    (psycopg.OperationalError("connection refused"), Failure.TRANSIENT),
    (psycopg.errors.SerializationFailure(), Failure.TRANSIENT),
    (psycopg.errors.AdminShutdown(), Failure.TRANSIENT),
    (psycopg.errors.UndefinedFunction(), Failure.SYSTEMIC),
    (psycopg.errors.InsufficientPrivilege(), Failure.SYSTEMIC),
    (psycopg.errors.UniqueViolation(), Failure.REFUSED),
    (psycopg.errors.RaiseException(), Failure.REFUSED),
    (psycopg.errors.InvalidTextRepresentation(), Failure.REFUSED),
    (ValueError("a bug"), Failure.REFUSED),
])
def test_database_errors_are_classified_by_sqlstate(error: Exception, kind: Failure) -> None:
    assert classify(error) is kind
    wrapped = RuntimeError("batch failed")
    wrapped.__cause__ = error
    assert classify(wrapped) is kind  # found down the cause chain


def test_retries_back_off_until_success_and_reraise_what_is_not_worth_retrying() -> None:
    calls: list[float] = []
    retries: list[tuple[str, int, float]] = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise psycopg.OperationalError("down")
        return "written"

    async def refused() -> None:
        raise psycopg.errors.UniqueViolation("dup")

    async def run() -> tuple[str, BaseException | None]:
        retrying = until_stopped(asyncio.Event(), lambda e: classify(e) is Failure.TRANSIENT,
                                 lambda e, n, w: retries.append((str(e), n, w)))
        result = await retrying(flaky)
        try:
            await retrying(refused)
        except psycopg.errors.UniqueViolation as exc:
            return result, exc
        return result, None

    result, error = asyncio.run(run())
    assert result == "written" and isinstance(error, psycopg.errors.UniqueViolation)
    assert retries == [("down", 1, 0.5), ("down", 2, 1.0)]
    assert calls[2] - calls[0] >= 1.4


def test_a_shutdown_ends_the_wait_between_attempts_at_once() -> None:
    async def run() -> float:
        stop = asyncio.Event()

        async def down() -> None:
            raise psycopg.OperationalError("down")

        retrying = until_stopped(stop, lambda _e: True, lambda *_a: None)
        asyncio.get_running_loop().call_later(0.2, stop.set)
        started = time.monotonic()
        with pytest.raises(Stopped):  # else it would wait 0.5 s, 1 s, 2 s ... forever
            await retrying(down)
        return time.monotonic() - started

    assert asyncio.run(run()) < 1.0
