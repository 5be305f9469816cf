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
from datetime import datetime, timedelta

import numpy as np
import psycopg
from psycopg import sql

from loader.formats.records import ReadingBlock
from loader.ingest import binary_copy
from loader.ingest.binary_copy import FieldCache

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
    ranged: set[str] = field(default_factory=set)
    generation: int = 0
    in_savepoint: bool = False  # the chunk savepoint is set (copy_block releases it next time)
    # Newest reading per device id of the chunks copied so far (booked once, at the end), in
    # microseconds since 2000-01-01 UTC.
    last_at: dict[int, int] = field(default_factory=dict)

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
            new_devices = list(device_keys)
        if len(self.metrics) + len(new_metrics) > CACHE_KEYS:
            self.generation += 1
            self.metrics.clear()
            self.ranged.clear()
            new_metrics = list(metric_names)
        rows = cur.execute("select * from ingest.resolve_keys(%s, %s, %s)",
                           [tenant_key, sorted(new_devices), sorted(new_metrics)]).fetchall()
        for kind, name, key_id, valid_min, valid_max in rows:
            if kind == "device":
                self.devices[name] = key_id
            else:
                self.metrics[name] = key_id
                if valid_min is not None or valid_max is not None:
                    self.ranged.add(name)

    def knows(self, device_keys: Collection[str], metric_names: Collection[str]) -> bool:
        devices, metrics = self.devices, self.metrics
        return (all(key in devices for key in device_keys)
                and all(name in metrics for name in metric_names))

    def book_devices(self, cur: psycopg.Cursor) -> None:
        """Advance devices.last_reading_at for the copied chunks (once per batch, or whenever
        more than CACHE_KEYS devices are waiting)."""
        if self.last_at:
            cur.execute("select ingest.record_device_last_readings(%s, %s)",
                        [list(self.last_at), list(map(moment, self.last_at.values()))])
            self.last_at.clear()


class StampCache(FieldCache):
    """Canonical stamps as microseconds since 2000-01-01 UTC (PostgreSQL's timestamptz), one
    per thread (emptied when full)."""

    def __init__(self) -> None:
        super().__init__(micros)


def micros(stamp: str) -> int:
    """A canonical ISO-8601 stamp with offset as PostgreSQL's timestamptz microseconds."""
    return binary_copy.timestamptz_micros(datetime.fromisoformat(stamp))


def moment(micros: int) -> datetime:
    return binary_copy.PG_EPOCH + timedelta(microseconds=micros)


class _Rejected(Exception):
    """A row of the chunk needs the checked path (ingest.record_copied_readings said so)."""


@dataclass
class ChunkFacts:
    """What ingest.record_copied_readings needs to know about a chunk, computed here so that
    it need not scan the rows it was just given (array passes: this runs for every row)."""

    oldest: datetime
    newest: datetime
    device_keys: set[str]
    metric_names: set[str]
    device_last_at: dict[str, int]  # newest reading per device, microseconds since 2000
    value_ranges: dict[str, tuple[float, float]]  # per metric
    micros: np.ndarray  # per row, for the COPY

    @classmethod
    def of(cls, block: ReadingBlock, stamps: StampCache | None = None) -> ChunkFacts:
        times = block.recorded_at.mapped(
            (stamps or StampCache()).covering(block.recorded_at.distinct()), np.int64)
        devices = block.device_keys
        newest_by_code = np.full(len(devices.categories), np.iinfo(np.int64).min)
        np.maximum.at(newest_by_code, devices.codes, times)
        device_last_at: dict[str, int] = {}
        for code in devices.used().tolist():  # two categories may hold one key
            key, newest = devices.categories[code], int(newest_by_code[code])
            if newest > device_last_at.get(key, newest - 1):
                device_last_at[key] = newest
        metrics, values = block.metric_names, block.values
        lows = np.full(len(metrics.categories), np.inf)
        highs = np.full(len(metrics.categories), -np.inf)
        np.minimum.at(lows, metrics.codes, values)
        np.maximum.at(highs, metrics.codes, values)
        value_ranges: dict[str, tuple[float, float]] = {}
        for code in metrics.used().tolist():
            name, low, high = metrics.categories[code], float(lows[code]), float(highs[code])
            known = value_ranges.get(name)
            value_ranges[name] = (low, high) if known is None else (
                min(low, known[0]), max(high, known[1]))
        return cls(moment(int(times.min())), moment(int(times.max())), set(device_last_at),
                   set(value_ranges), device_last_at, value_ranges, times)


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
    facts = ChunkFacts.of(block, stamps)
    prepared = Prepared(block, facts)
    generation = ids.generation
    if encode_now and ids.knows(facts.device_keys, facts.metric_names):
        try:
            prepared.data = encode(block, batch_id, ids, facts.micros)
            prepared.generation = generation
        except KeyError:  # the writer emptied the id cache meanwhile: it encodes this one
            prepared.data = None
    return prepared


def _row_type(quality_bytes: int) -> np.dtype:
    """One READINGS_COPY row in binary COPY format, with a quality of that many bytes."""
    return np.dtype([
        ("fields", ">i2"),
        ("recorded_at_size", ">i4"), ("recorded_at", ">i8"),
        ("device_id_size", ">i4"), ("device_id", ">i4"),
        ("metric_id_size", ">i4"), ("metric_id", ">i4"),
        ("value_size", ">i4"), ("value", ">f8"),
        ("quality_size", ">i4"), ("quality", f"S{quality_bytes}"),
        ("batch_id_size", ">i4"), ("batch_id", ">i8"),
    ])


def encode(block: ReadingBlock, batch_id: int, ids: KeyIds, times: np.ndarray) -> bytes:
    """The block as a binary COPY stream for READINGS_COPY (ids resolved already; KeyError if
    one is not). Rows are numpy records of fixed size, so rows whose quality has another
    length go in a group of their own (row order within a COPY does not matter)."""
    device_ids = block.device_keys.mapped(ids.devices, np.int32)
    metric_ids = block.metric_names.mapped(ids.metrics, np.int32)
    qualities = block.qualities
    if qualities is None:
        labels, quality_codes = [DEFAULT_QUALITY.encode()], None
    else:
        labels = [binary_copy.text_field(q or DEFAULT_QUALITY)[4:] for q in qualities.categories]
        quality_codes = qualities.codes
    sizes = np.array([len(label) for label in labels])
    bodies = []
    distinct_sizes = sorted(set(sizes.tolist()))
    for size in distinct_sizes:
        rows = slice(None) if len(distinct_sizes) == 1 else sizes[quality_codes] == size
        record = np.empty(len(times[rows]), dtype=_row_type(size))
        record["fields"] = 6
        record["recorded_at_size"] = record["value_size"] = record["batch_id_size"] = 8
        record["device_id_size"] = record["metric_id_size"] = 4
        record["quality_size"] = size
        record["recorded_at"] = times[rows]
        record["device_id"] = device_ids[rows]
        record["metric_id"] = metric_ids[rows]
        record["value"] = block.values[rows]
        record["quality"] = (labels[0] if quality_codes is None else
                             np.array(labels, dtype=f"S{max(sizes)}")[quality_codes[rows]])
        record["batch_id"] = batch_id
        bodies.append(record.tobytes())
    return binary_copy.stream(bodies)


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
               ids: KeyIds) -> bool:
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
        data = encode(block, batch_id, ids, facts.micros)
    ranged = [name for name in facts.metric_names if name in ids.ranged]
    try:
        with cur.copy(READINGS_COPY) as copy:
            copy.write(data)
        row = cur.execute(
            "select ingest.record_copied_readings(%s, %s, %s, %s, %s, %s, %s)",
            [batch_id, len(block), facts.oldest, facts.newest,
             [ids.metrics[name] for name in ranged],
             [facts.value_ranges[name][0] for name in ranged],
             [facts.value_ranges[name][1] for name in ranged]]).fetchone()
        if not row or not row[0]:
            raise _Rejected
    except (psycopg.errors.UniqueViolation, _Rejected):
        cur.execute("rollback to savepoint tsfleet_chunk")
        return False
    booked = ids.last_at
    for device, newest in facts.device_last_at.items():
        device_id = ids.devices[device]
        if newest > booked.get(device_id, newest - 1):
            booked[device_id] = newest
    if len(booked) > CACHE_KEYS:
        ids.book_devices(cur)
    return True
