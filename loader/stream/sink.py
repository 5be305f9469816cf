"""The one place the consumer writes data: the loaders' one-transaction batch function.

`loader.ingest.load_messages` (the JSON Lines loader's library) owns the ingest SQL: COPY of
readings, device and metric registration, message-id idempotency, row-level rejects and
`ingest.process_batch(batch_id)` (mapping, derived metrics, health), all in one transaction
that it commits. Nothing here duplicates that SQL.

Asset events join that transaction through the session setting tsfleet.asset_events_subject:
when the batch turns committed, a trigger (sql/functions/70_stream_outbox.sql) writes its
telemetry.asset.v1 events to the outbox before the commit, so an event exists exactly when
its batch does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from loader.ingest import BatchFailed, load_messages

SOURCE_KIND = "nats"


@dataclass(frozen=True)
class BatchCounts:
    batch_id: int | None
    messages: int
    messages_inserted: int
    messages_duplicate: int
    readings_inserted: int
    rejected: int
    events_enqueued: int


def prepare_session(conn: psycopg.Connection, events_subject: str | None) -> None:
    """Once per connection: ask (or not) for asset events in every batch's transaction."""
    conn.execute("select pg_catalog.set_config('tsfleet.asset_events_subject', %s, false)",
                 [events_subject or ""])


def write_batch(
    conn: psycopg.Connection,
    messages: Sequence[Mapping[str, Any]],
    sequences: Sequence[int],
    *,
    source_name: str,
    events: bool,
) -> BatchCounts:
    """Write the messages as one committed batch; rejects name their stream sequence.
    Raises the underlying error when the batch failed (nothing of it was written)."""
    try:
        result = load_messages(conn, messages, source_name=source_name,
                               source_kind=SOURCE_KIND, line_numbers=sequences)
    except BatchFailed as exc:
        raise (exc.__cause__ or exc) from exc
    enqueued = 0
    if events and result.batch_id is not None:
        row = conn.execute("select count(*) from ingest.asset_event_outbox where batch_id = %s",
                           [result.batch_id]).fetchone()
        enqueued = int(row[0]) if row else 0
    # Message ids loaded before are counted once per message, new ones are the rest.
    return BatchCounts(
        batch_id=result.batch_id,
        messages=len(messages),
        messages_inserted=len(messages) - result.messages_duplicate,
        messages_duplicate=result.messages_duplicate,
        readings_inserted=result.rows_inserted,
        rejected=result.rows_rejected,
        events_enqueued=enqueued,
    )
