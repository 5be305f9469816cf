"""The one place the consumer writes data: the loaders' one-transaction batch function.

`loader.ingest.load_source` (the loaders' library, which `tsfleet load messages` runs too)
owns the ingest SQL: COPY of readings, device and metric registration, message-id
idempotency, row-level rejects and `ingest.process_batch(batch_id)` (mapping, derived
metrics, health), all in one transaction that it commits. Nothing here duplicates that SQL.
The messages arrive decoded (loader/stream/messages.py, with the JSON Lines loader's own
decode_message), so the batch's source hands their items over instead of decoding them again.

Asset events join that transaction through the session setting tsfleet.asset_events_subject:
when the batch turns committed, a trigger (sql/functions/70_stream_outbox.sql) writes its
telemetry.asset.v1 events to the outbox before the commit, so an event exists exactly when
its batch does.

Rollups are not refreshed per batch (LoadOptions.refresh_rollups=False): the batch's time range
goes back to the consumer, which refreshes the accumulated range later (loader/stream/refresh.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from loader.formats.records import Device, Item, Source
from loader.ingest import BatchFailed, LoadOptions, load_source
from loader.stream.messages import Decoded

SOURCE_KIND = "nats"
NO_REFRESH = LoadOptions(refresh_rollups=False)
# One round trip after the commit: the batch's time range and (when asked) its outbox events.
AFTER_COMMIT_SQL = (
    "select b.min_recorded_at, b.max_recorded_at,"
    " case when %(events)s then (select count(*) from ingest.asset_event_outbox as o"
    " where o.batch_id = b.batch_id) else 0 end"
    " from ingest.batches as b where b.batch_id = %(batch_id)s"
)


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


def _metadata(device: Device) -> tuple[str | None, ...]:
    return (device.tenant_key, device.device_type, device.description, device.state,
            device.serial_number, device.firmware_version)


@dataclass
class KnownDevices:
    """Device records this process registered in committed batches, so that the next batches
    skip re-registering a device whose record has not changed (ingest.register_devices would
    change nothing for it; on a stream every message repeats its device's record). Forgotten
    every `max_age_s`, so that a record changed meanwhile by another writer (a concurrent
    loader or consumer) is registered again within that time."""

    max_age_s: float = 60.0
    records: dict[str, tuple[str | None, ...]] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)

    def unchanged(self, device: Device) -> bool:
        if time.monotonic() - self.since > self.max_age_s:
            self.records.clear()
            self.since = time.monotonic()
        return self.records.get(device.device_key) == _metadata(device)

    def committed(self, decoded: Sequence[Decoded]) -> None:
        """Remember the records of a committed batch; a device whose records differed within
        the batch is forgotten (which one the database applied depends on message ids)."""
        seen: dict[str, tuple[str | None, ...] | None] = {}
        for item in decoded:
            key, record = item.device.device_key, _metadata(item.device)
            seen[key] = record if seen.get(key, record) == record else None
        for key, record in seen.items():
            if record is None:
                self.records.pop(key, None)
            else:
                self.records[key] = record


def prepare_session(conn: psycopg.Connection, events_subject: str | None) -> None:
    """Once per connection: ask (or not) for asset events in every batch's transaction."""
    conn.execute("select pg_catalog.set_config('tsfleet.asset_events_subject', %s, false)",
                 [events_subject or ""])


def write_batch(
    conn: psycopg.Connection,
    decoded: Sequence[Decoded],
    *,
    source_name: str,
    events: bool,
    known: KnownDevices | None = None,
) -> BatchCounts:
    """Write the decoded messages as one committed batch; rejects name their stream sequence.
    Raises the underlying error when the batch failed (nothing of it was written)."""
    source = Source(kind=SOURCE_KIND, name=source_name, checksum=None, items=lambda: iter(()))

    def items() -> Iterator[Item]:
        for message in decoded:
            device = message.device
            if known is None or not known.unchanged(device):
                source.devices[device.device_key] = device
            yield from message.items

    source.items = items
    try:
        result = load_source(conn, source, NO_REFRESH)
    except BatchFailed as exc:
        raise (exc.__cause__ or exc) from exc
    if known is not None:
        known.committed(decoded)
    first_at = last_at = None
    enqueued = 0
    if result.batch_id is not None:
        row = conn.execute(AFTER_COMMIT_SQL,
                           {"events": events, "batch_id": result.batch_id}).fetchone()
        if row is not None:
            first_at, last_at, enqueued = row[0], row[1], int(row[2])
    # Message ids loaded before are counted once per message, new ones are the rest.
    return BatchCounts(
        batch_id=result.batch_id,
        messages=len(decoded),
        messages_inserted=len(decoded) - result.messages_duplicate,
        messages_duplicate=result.messages_duplicate,
        readings_inserted=result.rows_inserted,
        rejected=result.rows_rejected,
        events_enqueued=enqueued,
        first_recorded_at=first_at,
        last_recorded_at=last_at,
    )
