"""The fast path of a chunk: binary COPY of resolved ids straight into telemetry.readings.

A first load has no stored keys to collide with, so the staging table and its set-based
insert are pure overhead. Per chunk (a ReadingBlock: columns, no Python code per row):

- the parser thread prepares it (prepare): the chunk's facts (time range, devices' newest
  times, value range per metric, computed here so that no row is read back) and its COPY
  data, when every key's id is cached already;
- the writer thread (copy_block) has ingest.resolve_keys register unseen devices and metrics
  and return their ids (cached for the batch), COPYs the rows into telemetry.readings in
  binary format (binary_copy.py) inside the chunk savepoint (one name, released when the
  next chunk sets it), and ingest.record_copied_readings runs the row checks that need the
  catalog (valid range, future timestamps) on the facts and books the chunk.

A unique violation (a duplicate or conflicting reading) or a row those checks would reject
rolls back to the savepoint and the caller loads the chunk through staging instead, which
rejects and counts exactly as before. A chunk whose first or last key is stored already (a
reload) skips the COPY attempt; chunks with message ids or a last-write-wins load always go
through staging. devices.last_reading_at of copied chunks is booked once per batch
(book_devices). Couples with: sql/functions/20_ingest.sql (resolve_keys,
record_copied_readings).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice, repeat
from operator import itemgetter, le

import psycopg
from psycopg import sql

from loader.formats.records import ReadingBlock
from loader.ingest import binary_copy
from loader.ingest.binary_copy import FieldCache, int4_field

CACHE_KEYS = 20_000  # ids cached per batch, and device times held before booking them
DEFAULT_QUALITY = "good"  # telemetry.readings.quality's default, for readings without one
READINGS_COPY = (
    "copy telemetry.readings (recorded_at, device_id, metric_id, value, quality, batch_id)"
    " from stdin (format binary)"
)


@dataclass
class KeyIds:
    """Device and metric ids resolved so far in this batch (its transaction), their encoded
    COPY fields and the metrics that have a valid range. Only the writer thread changes it;
    the parser thread reads the fields to encode chunks ahead (see prepare), and
    `generation` tells whether the cache was emptied meanwhile."""

    devices: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, int] = field(default_factory=dict)
    device_fields: dict[str, bytes] = field(default_factory=dict)
    metric_fields: dict[str, bytes] = field(default_factory=dict)
    ranged: set[str] = field(default_factory=set)
    generation: int = 0
    in_savepoint: bool = False  # the chunk savepoint is set (copy_block releases it next time)
    # Newest reading per device id of the chunks copied so far (booked once, at the end).
    last_at: dict[int, datetime] = field(default_factory=dict)

    def resolve(self, cur: psycopg.Cursor, tenant_key: str, device_keys: Collection[str],
                metric_names: Collection[str]) -> None:
        new_devices = [key for key in device_keys if key not in self.devices]
        new_metrics = [name for name in metric_names if name not in self.metrics]
        if not new_devices and not new_metrics:
            return
        # Bounded memory, whatever the number of keys in a file: forget and ask again.
        if len(self.devices) + len(new_devices) > CACHE_KEYS:
            self.generation += 1
            self.devices.clear()
            self.device_fields.clear()
            new_devices = list(device_keys)
        if len(self.metrics) + len(new_metrics) > CACHE_KEYS:
            self.generation += 1
            self.metrics.clear()
            self.metric_fields.clear()
            self.ranged.clear()
            new_metrics = list(metric_names)
        rows = cur.execute("select * from ingest.resolve_keys(%s, %s, %s)",
                           [tenant_key, sorted(new_devices), sorted(new_metrics)]).fetchall()
        for kind, name, key_id, valid_min, valid_max in rows:
            if kind == "device":
                self.devices[name] = key_id
                self.device_fields[name] = int4_field(key_id)
            else:
                self.metrics[name] = key_id
                self.metric_fields[name] = int4_field(key_id)
                if valid_min is not None or valid_max is not None:
                    self.ranged.add(name)

    def knows(self, device_keys: Collection[str], metric_names: Collection[str]) -> bool:
        fields, metric_fields = self.device_fields, self.metric_fields
        return (all(key in fields for key in device_keys)
                and all(name in metric_fields for name in metric_names))

    def book_devices(self, cur: psycopg.Cursor) -> None:
        """Advance devices.last_reading_at for the copied chunks (once per batch, or whenever
        more than CACHE_KEYS devices are waiting)."""
        if self.last_at:
            cur.execute("select ingest.record_device_last_readings(%s, %s)",
                        [list(self.last_at), list(self.last_at.values())])
            self.last_at.clear()


@dataclass
class StampCache:
    """Parsed timestamps and their COPY fields, one per thread (caches are emptied when full)."""

    moments: FieldCache = field(default_factory=lambda: FieldCache(datetime.fromisoformat))
    fields: FieldCache = field(
        default_factory=lambda: FieldCache(binary_copy.iso_timestamptz_field))


class _Rejected(Exception):
    """A row of the chunk needs the checked path (ingest.record_copied_readings said so)."""


@dataclass
class ChunkFacts:
    """What ingest.record_copied_readings needs to know about a chunk, computed here so that
    it need not scan the rows it was just given (C-level passes: this runs for every row)."""

    oldest: datetime
    newest: datetime
    device_keys: set[str]
    metric_names: set[str]
    device_last_at: dict[str, datetime]
    stamps: set[str]  # distinct

    @classmethod
    def of(cls, block: ReadingBlock, moments: FieldCache | None = None) -> ChunkFacts:
        stamps = block.recorded_at
        distinct, _, metric_names = block.distinct or (set(stamps), None,
                                                       set(block.metric_names))
        # Canonical stamps repeat: parse each distinct one once.
        moment = (moments or FieldCache(datetime.fromisoformat)).covering(distinct)
        order = sorted(distinct, key=moment.__getitem__)
        ranks = {stamp: rank for rank, stamp in enumerate(order)}
        ranked = list(map(ranks.__getitem__, stamps))
        devices = block.device_keys
        if all(map(le, ranked, islice(ranked, 1, None))):
            last = dict(zip(devices, ranked, strict=True))  # in time order, a device's last
        else:  # row is its newest; otherwise put the rows in time order first
            pairs = sorted(zip(ranked, devices, strict=True))
            last = dict(zip(map(itemgetter(1), pairs), map(itemgetter(0), pairs), strict=True))
        return cls(moment[order[0]], moment[order[-1]], set(last), metric_names,
                   {device: moment[order[rank]] for device, rank in last.items()}, distinct)


def can_copy(block: ReadingBlock | None, last_write_wins: bool) -> bool:
    """Whether a chunk may try the fast path: a block (no message ids), keep-stored mode."""
    return block is not None and len(block) > 0 and not last_write_wins


@dataclass
class Prepared:
    """A block with its facts and, when every key's id was known, its COPY data; built by
    the parser thread, so that the writer thread only COPYs (the two overlap)."""

    block: ReadingBlock
    facts: ChunkFacts
    data: bytes | None = None
    generation: int = -1


def prepare(block: ReadingBlock, batch_id: int, ids: KeyIds, stamps: StampCache,
            encode_now: bool = True) -> Prepared:
    facts = ChunkFacts.of(block, stamps.moments)
    prepared = Prepared(block, facts)
    generation = ids.generation
    if encode_now and ids.knows(facts.device_keys, facts.metric_names):
        try:
            prepared.data = encode(block, batch_id, ids, stamps, facts.stamps)
            prepared.generation = generation
        except KeyError:  # the writer emptied the id cache meanwhile: it encodes this one
            prepared.data = None
    return prepared


def encode(block: ReadingBlock, batch_id: int, ids: KeyIds, stamp_cache: StampCache,
           distinct_stamps: set[str] | None = None) -> bytes:
    """The block as a binary COPY stream for READINGS_COPY (ids resolved already)."""
    stamps = stamp_cache.fields.covering(distinct_stamps or set(block.recorded_at))
    batch = binary_copy.int8_field(batch_id)
    qualities = block.qualities
    tail = {quality: binary_copy.text_field(quality or DEFAULT_QUALITY) + batch
            for quality in (set(qualities) if qualities is not None else {None})}
    devices, metrics = ids.device_fields, ids.metric_fields
    return binary_copy.stream(
        binary_copy.rows(6, [
            map(stamps.__getitem__, block.recorded_at[rows]),
            map(devices.__getitem__, block.device_keys[rows]),
            map(metrics.__getitem__, block.metric_names[rows]),
            binary_copy.float8_fields(block.values[rows]),
            # quality and batch_id
            map(tail.__getitem__, qualities[rows]) if qualities is not None
            else repeat(tail[None], len(block.lines[rows])),
        ])
        for rows in binary_copy.pieces(len(block)))


# One savepoint per chunk, reused: the next chunk releases it in the same round trip that sets
# its own and asks whether its first or last key is stored (2 round trips a chunk, not 4).
_PROBE = sql.SQL(
    "{release}savepoint tsfleet_chunk;"
    " select exists (select from telemetry.readings as r"
    " where r.recorded_at = {} and r.device_id = {} and r.metric_id = {})"
    " or exists (select from telemetry.readings as r"
    " where r.recorded_at = {} and r.device_id = {} and r.metric_id = {})"
)


def copy_block(cur: psycopg.Cursor, batch_id: int, tenant_key: str, prepared: Prepared,
               ids: KeyIds, stamps: StampCache) -> bool:
    """COPY the block into telemetry.readings; True if done, False if not (a stored key, a key
    twice, or a row to reject; rolled back to its savepoint): then load it through staging."""
    block, facts = prepared.block, prepared.facts
    devices, metrics, stamp_texts = block.device_keys, block.metric_names, block.recorded_at
    end = len(block) - 1
    # Ids are resolved outside the savepoint, so they stay valid whatever happens to the COPY.
    ids.resolve(cur, tenant_key, facts.device_keys, facts.metric_names)
    # Literals, no parameters: several statements go in one simple query.
    cur.execute(_PROBE.format(
        sql.Literal(stamp_texts[0]), ids.devices[devices[0]], ids.metrics[metrics[0]],
        sql.Literal(stamp_texts[end]), ids.devices[devices[end]], ids.metrics[metrics[end]],
        release=sql.SQL("release savepoint tsfleet_chunk; " if ids.in_savepoint else "")))
    ids.in_savepoint = True
    while cur.pgresult is not None and cur.pgresult.ntuples == 0 and cur.nextset():
        pass  # to the select's result
    probe = cur.fetchone()
    if probe and probe[0]:
        return False  # a reload: do not COPY what the unique key would refuse
    data = prepared.data
    if data is None or prepared.generation != ids.generation:
        data = encode(block, batch_id, ids, stamps, facts.stamps)
    ranged = [name for name in facts.metric_names if name in ids.ranged]
    values = {name: [v for v, m in zip(block.values, metrics, strict=True) if m == name]
              for name in ranged}
    try:
        with cur.copy(READINGS_COPY) as copy:
            copy.write(data)
        row = cur.execute(
            "select ingest.record_copied_readings(%s, %s, %s, %s, %s, %s, %s)",
            [batch_id, len(block), facts.oldest, facts.newest,
             [ids.metrics[name] for name in ranged],
             [min(values[name]) for name in ranged],
             [max(values[name]) for name in ranged]]).fetchone()
        if not row or not row[0]:
            raise _Rejected
    except (psycopg.errors.UniqueViolation, _Rejected):
        cur.execute("rollback to savepoint tsfleet_chunk")
        return False
    booked = ids.last_at
    for device, moment in facts.device_last_at.items():
        device_id = ids.devices[device]
        known = booked.get(device_id)
        if known is None or moment > known:
            booked[device_id] = moment
    if len(booked) > CACHE_KEYS:
        ids.book_devices(cur)
    return True
