"""The fast path of a chunk: COPY readings with resolved ids straight into telemetry.readings.

A first load has no stored keys to collide with, so the staging table and its set-based
insert are pure overhead. Per chunk: ingest.resolve_keys registers unseen devices and metrics
and returns their ids (cached for the batch); the rows are COPYed into telemetry.readings
inside a savepoint; ingest.record_copied_readings then runs the row checks that need the
catalog (valid range, future timestamps) on the chunk's facts (time range, value range per
metric, computed here so that no row is read back) and books the chunk. A unique violation
(a duplicate or conflicting reading) or a row those checks would reject rolls back to the
savepoint and the caller loads the chunk through staging instead, which rejects and counts
exactly as before. A chunk whose first or last key is stored already (a reload) skips the
COPY attempt; chunks with message ids or a last-write-wins load always go through staging.
devices.last_reading_at of copied chunks is booked once per batch (book_devices).
Couples with: sql/functions/20_ingest.sql (resolve_keys, record_copied_readings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter, le

import psycopg

from loader.formats.records import Reading
from loader.ingest.staging import escape

CACHE_KEYS = 20_000  # ids cached per batch, and device times held before booking them
READINGS_COPY = (
    "copy telemetry.readings (recorded_at, device_id, metric_id, value, quality, batch_id)"
    " from stdin"
)


@dataclass
class KeyIds:
    """Device and metric ids (as COPY text) resolved so far in this batch (its transaction),
    and the valid range of each metric that has one."""

    devices: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    ranged: set[str] = field(default_factory=set)
    # Newest reading per device id of the chunks copied so far (booked once, at the end).
    last_at: dict[str, datetime] = field(default_factory=dict)
    qualities: dict[str | None, str] = field(default_factory=lambda: {None: "good"})

    def resolve(self, cur: psycopg.Cursor, tenant_key: str, device_keys: set[str],
                metric_names: set[str]) -> None:
        new_devices = device_keys.difference(self.devices)
        new_metrics = metric_names.difference(self.metrics)
        if not new_devices and not new_metrics:
            return
        # Bounded memory, whatever the number of keys in a file: forget and ask again.
        if len(self.devices) + len(new_devices) > CACHE_KEYS:
            self.devices.clear()
            new_devices = device_keys
        if len(self.metrics) + len(new_metrics) > CACHE_KEYS:
            self.metrics.clear()
            self.ranged.clear()
            new_metrics = metric_names
        rows = cur.execute("select * from ingest.resolve_keys(%s, %s, %s)",
                           [tenant_key, sorted(new_devices), sorted(new_metrics)]).fetchall()
        for kind, name, key_id, valid_min, valid_max in rows:
            if kind == "device":
                self.devices[name] = str(key_id)
            else:
                self.metrics[name] = str(key_id)
                if valid_min is not None or valid_max is not None:
                    self.ranged.add(name)

    def book_devices(self, cur: psycopg.Cursor) -> None:
        """Advance devices.last_reading_at for the copied chunks (once per batch, or whenever
        more than CACHE_KEYS devices are waiting)."""
        if self.last_at:
            cur.execute("select ingest.record_device_last_readings(%s, %s)",
                        [[int(k) for k in self.last_at], list(self.last_at.values())])
            self.last_at.clear()


class _Rejected(Exception):
    """A row of the chunk needs the checked path (ingest.record_copied_readings said so)."""


_STAMP = itemgetter(1)
_DEVICE = itemgetter(2)
_METRIC = itemgetter(3)


@dataclass
class ChunkFacts:
    """What ingest.record_copied_readings needs to know about a chunk, computed here so that
    it need not scan the rows it was just given (C-level passes: this runs for every row)."""

    oldest: datetime
    newest: datetime
    device_keys: set[str]
    metric_names: set[str]
    device_last_at: dict[str, datetime]

    @classmethod
    def of(cls, readings: list[Reading]) -> ChunkFacts:
        stamps = list(map(_STAMP, readings))
        # Canonical stamps repeat: parse each distinct one once.
        moments = {stamp: datetime.fromisoformat(stamp) for stamp in dict.fromkeys(stamps)}
        ranks = {stamp: rank for rank, stamp in enumerate(sorted(moments, key=moments.get))}
        ordered = list(map(ranks.__getitem__, stamps))
        devices = list(map(_DEVICE, readings))
        if not all(map(le, ordered, ordered[1:])):  # not time-ordered: put it in order first
            order = sorted(range(len(ordered)), key=ordered.__getitem__)
            devices = list(map(devices.__getitem__, order))
            stamps = list(map(stamps.__getitem__, order))
        # In time order, a device's last row is its newest.
        last = {device: moments[stamp]
                for device, stamp in dict(zip(devices, stamps, strict=True)).items()}
        return cls(min(moments.values()), max(moments.values()), set(last),
                   set(map(_METRIC, readings)), last)


def can_copy(readings: list[Reading], last_write_wins: bool) -> bool:
    """Whether a chunk may try the fast path: no message ids to deduplicate, keep-stored mode."""
    return not last_write_wins and all(r[6] is None for r in readings)


def copy_chunk(cur: psycopg.Cursor, batch_id: int, tenant_key: str, readings: list[Reading],
               ids: KeyIds) -> bool:
    """COPY the chunk into telemetry.readings; True if done, False if not (a stored key, a key
    twice, or a row to reject; rolled back to its savepoint): then load it through staging."""
    first, last = readings[0], readings[-1]
    # Ids are resolved outside the savepoint, so they stay valid whatever happens to the COPY.
    ids.resolve(cur, tenant_key, {first[2], last[2]}, {first[3], last[3]})
    devices, metrics, qualities = ids.devices, ids.metrics, ids.qualities
    probe = cur.execute(
        "select exists (select from telemetry.readings as r"
        " where r.recorded_at = %s and r.device_id = %s and r.metric_id = %s)"
        " or exists (select from telemetry.readings as r"
        " where r.recorded_at = %s and r.device_id = %s and r.metric_id = %s)",
        [first[1], int(devices[first[2]]), int(metrics[first[3]]),
         last[1], int(devices[last[2]]), int(metrics[last[3]])]).fetchone()
    if probe and probe[0]:
        return False  # a reload: do not COPY what the unique key would refuse
    facts = ChunkFacts.of(readings)
    ids.resolve(cur, tenant_key, facts.device_keys, facts.metric_names)
    devices, metrics = ids.devices, ids.metrics  # the resolve may have replaced the cache
    ranged = [name for name in facts.metric_names if name in ids.ranged]
    values = {name: [r[4] for r in readings if r[3] == name] for name in ranged}
    tail = f"\t{batch_id}\n"
    lines = []
    append = lines.append
    for reading in readings:
        quality = reading[5]
        text = qualities.get(quality)
        if text is None:
            text = qualities[quality] = escape(quality)  # type: ignore[arg-type]
        append(f"{reading[1]}\t{devices[reading[2]]}\t{metrics[reading[3]]}\t{reading[4]!r}\t"
               f"{text}{tail}")
    try:
        with cur.connection.transaction():
            with cur.copy(READINGS_COPY) as copy:
                copy.write("".join(lines))
            row = cur.execute(
                "select ingest.record_copied_readings(%s, %s, %s, %s, %s, %s, %s)",
                [batch_id, len(readings), facts.oldest, facts.newest,
                 [int(metrics[name]) for name in ranged],
                 [min(values[name]) for name in ranged],
                 [max(values[name]) for name in ranged]]).fetchone()
            if not row or not row[0]:
                raise _Rejected
    except (psycopg.errors.UniqueViolation, _Rejected):
        return False
    booked = ids.last_at
    for device, moment in facts.device_last_at.items():
        device_id = devices[device]
        known = booked.get(device_id)
        if known is None or moment > known:
            booked[device_id] = moment
    if len(booked) > CACHE_KEYS:
        ids.book_devices(cur)
    return True
