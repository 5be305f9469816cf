"""The one place the consumer writes data: raw payloads through the loaders' SQL path.

`write_payloads(conn, payloads)` is the consumer's hand-over: what it received
(loader.stream.pipeline.Payload: subject, Nats-Msg-Id header, payload bytes, stream
sequence), as received, with the messages rejected whole coming back as poison by stream
sequence for the pipeline to dead-letter and terminate.

`write_messages(conn, messages)` writes a micro-batch as one committed batch: the payloads
are COPYed as text into pg_temp.ingest_lines (line number = stream sequence) and
ingest.write_batch parses and checks them (ingest.parse_messages), registers devices, applies
the message-id idempotency (a message loaded before is a duplicate and changes nothing),
rejects bad messages and readings with their sequence, inserts, runs ingest.process_batch and
commits, like `tsfleet load messages` does with a file (loader/ingest/batch.py). Python does
not decode the JSON. A batch whose every message is rejected still commits (its rejects are
the record of the poison); `BatchCounts.poison` lists the messages rejected whole, for the
consumer to dead-letter and terminate (they are in ingest.rejects already).

Asset events join that transaction through the session setting tsfleet.asset_events_subject:
when the batch turns committed, a trigger (sql/functions/70_stream_outbox.sql) writes its
telemetry.asset.v1 events to the outbox before the commit, so an event exists exactly when
its batch does.

Rollups are not refreshed per batch (refresh_rollups=False): the batch's time range goes back
to the consumer, which refreshes the accumulated range later (loader/stream/refresh.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from loader.formats.records import Source
from loader.ingest import BatchFailed, LoadOptions, load_source
from loader.ingest.copy import copy_rows
from loader.stream.messages import RawMessage
from loader.stream.pipeline import Payload, Poisoned

SOURCE_KIND = "nats"
STREAM_OPTIONS = LoadOptions(refresh_rollups=False, allow_empty=True)
# One round trip after the commit: whole-message rejects and (when asked) outbox events.
AFTER_COMMIT_SQL = (
    "select (select count(*) from ingest.asset_event_outbox as o"
    " where %(events)s and o.batch_id = %(batch_id)s),"
    " array(select array[r.line_number::text, r.field_name, r.reason]"
    " from ingest.rejects as r where r.batch_id = %(batch_id)s"
    " and coalesce(r.field_name, '') not like 'metrics.%%' order by r.line_number)"
)


@dataclass(frozen=True)
class RejectedMessage:
    """A message rejected whole: its stream sequence, the field at fault and why."""

    sequence: int
    field: str | None
    reason: str


@dataclass(frozen=True)
class BatchCounts:
    batch_id: int | None
    messages: int
    messages_inserted: int
    messages_duplicate: int
    readings_inserted: int
    rejected: int
    events_enqueued: int
    first_recorded_at: datetime | None = None  # readings written, for the rollup refresh
    last_recorded_at: datetime | None = None
    poison: list[RejectedMessage] = field(default_factory=list)


def prepare_session(conn: psycopg.Connection, events_subject: str | None) -> None:
    """Once per connection: ask (or not) for asset events in every batch's transaction."""
    conn.execute("select pg_catalog.set_config('tsfleet.asset_events_subject', %s, false)",
                 [events_subject or ""])


def write_messages(conn: psycopg.Connection, messages: Sequence[RawMessage], *,
                   source_name: str, events: bool = False) -> BatchCounts:
    """Write the messages as one committed batch; rejects name their stream sequence.
    Raises the underlying error when the batch failed (nothing of it was written)."""
    rows, poison = [], []
    for m in messages:
        problem = _unreadable(m.payload)
        if problem is None:
            rows.append((1, m.sequence, m.message_id, m.subject, m.payload.decode("utf-8")))
        else:
            poison.append(RejectedMessage(m.sequence, None, problem))
    unreadable = len(poison)
    source = Source(kind=SOURCE_KIND, name=source_name, checksum=None, format="messages",
                    feed=lambda cur, _progress: copy_rows(cur, rows))
    try:
        result = load_source(conn, source, STREAM_OPTIONS) if rows else None
    except BatchFailed as exc:
        raise (exc.__cause__ or exc) from exc
    enqueued = 0
    if result is not None and result.batch_id is not None:
        row = conn.execute(AFTER_COMMIT_SQL,
                           {"events": events, "batch_id": result.batch_id}).fetchone()
        if row is not None:
            enqueued = int(row[0])
            poison += [RejectedMessage(int(line), field_name, reason)
                       for line, field_name, reason in row[1]]
    if result is None:
        return BatchCounts(None, len(messages), 0, 0, 0, 0, 0, poison=poison)
    duplicate = result.messages_duplicate
    return BatchCounts(
        batch_id=result.batch_id,
        messages=len(messages),
        messages_inserted=len(rows) - duplicate - len(poison) + unreadable,
        messages_duplicate=duplicate,
        readings_inserted=result.rows_inserted,
        rejected=result.rows_rejected,
        events_enqueued=enqueued,
        first_recorded_at=_moment(result.recorded_from),
        last_recorded_at=_moment(result.recorded_until),
        poison=poison,
    )


def _unreadable(payload: bytes) -> str | None:
    """Why a payload cannot travel as text to the database (None: it can). Checked here
    because one such payload would fail the COPY of the whole micro-batch."""
    if b"\0" in payload:
        return "payload holds a NUL byte: binary data, not text"
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"payload is not UTF-8 text ({exc.reason} at byte {exc.start})"
    return None


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Written:
    """What a committed write did: the counts and the payloads that can never load (by stream
    sequence)."""

    counts: BatchCounts
    poisoned: dict[int, Poisoned] = field(default_factory=dict)


def write_payloads(conn: psycopg.Connection, payloads: Sequence[Payload], *,
                   source_name: str, events: bool) -> Written:
    """Write the payloads as one committed batch (raises what write_messages raises: nothing
    of the chunk was written then). A message id repeated within the chunk is written once
    and counted as a duplicate by the database."""
    counts = write_messages(
        conn, [RawMessage(p.subject, p.message_id, p.data, p.sequence) for p in payloads],
        source_name=source_name, events=events)
    return Written(counts, {m.sequence: Poisoned(m.reason, m.field) for m in counts.poison})
