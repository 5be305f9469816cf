"""What every input format yields: readings, rejects, device records, and file-level errors.

A format module turns one source (a file, a directory, a stream of messages) into a `Source`:
its identity (kind, name, checksum) and an iterator of `Reading` and `Reject` items plus the
`Device` records it learned. The ingest package (loader/ingest/) writes them; formats never
touch the database.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import repeat
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from loader.formats.coded_column import CodedColumn

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Reading(NamedTuple):
    """One value. recorded_at is canonical ISO-8601 text with an offset (COPY-ready)."""

    line: int
    recorded_at: str
    device_key: str
    metric_name: str
    value: float
    quality: str | None = None
    message_id: str | None = None


class Reject(NamedTuple):
    """A row that cannot be loaded: where it was, the raw text, and why."""

    line: int | None
    field: str | None
    raw_text: str
    reason: str


@dataclass
class Device:
    """What a source says about a device; None fields leave the stored value unchanged."""

    device_key: str
    tenant_key: str | None = None
    device_type: str | None = None
    description: str | None = None
    state: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    # The message that said so: a redelivered message (id already loaded) changes nothing.
    message_id: str | None = None

    def as_json(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class ReadingBlock:
    """Many readings at once, as columns: what a fast parser yields for a run of rows that all
    passed every row check (so the block holds no reject). Position i of each column is one
    reading. Keys are coded columns (their few distinct values and a code per row) and values
    a float64 array, so that ingest checks, maps and encodes a block without Python code per
    row (loader/ingest/direct.py). `qualities` None means no quality anywhere (the default);
    a quality category None means none for those rows."""

    lines: Sequence[int]
    recorded_at: CodedColumn  # canonical ISO-8601 with offset, as Reading.recorded_at
    device_keys: CodedColumn
    metric_names: CodedColumn
    values: np.ndarray  # float64, finite
    qualities: CodedColumn | None = None

    def __len__(self) -> int:
        return len(self.lines)

    @classmethod
    def of(cls, readings: Sequence[Reading]) -> ReadingBlock:
        """The readings as columns (message ids are not part of a block)."""
        lines, stamps, devices, metrics, values, qualities, _ = zip(*readings, strict=True)
        return cls(lines, CodedColumn.of(stamps), CodedColumn.of(devices),
                   CodedColumn.of(metrics), np.array(values, dtype=np.float64),
                   CodedColumn.of(qualities) if any(q is not None for q in qualities)
                   else None)

    def readings(self) -> list[Reading]:
        count = len(self.lines)
        qualities = self.qualities if self.qualities is not None else repeat(None, count)
        return list(map(Reading._make, zip(self.lines, self.recorded_at, self.device_keys,
                                           self.metric_names, self.values.tolist(), qualities,
                                           repeat(None, count), strict=True)))

    def slice(self, start: int, stop: int) -> ReadingBlock:
        return ReadingBlock(
            self.lines[start:stop], self.recorded_at[start:stop],
            self.device_keys[start:stop], self.metric_names[start:stop],
            self.values[start:stop],
            None if self.qualities is None else self.qualities[start:stop])


class FileStart(NamedTuple):
    """Marks that the following items come from another file of a multi-file source."""

    name: str


class FormatError(Exception):
    """The source cannot be read as its format: the whole batch fails, nothing is written."""

    def __init__(self, source: str, line: int | None, field: str | None, message: str,
                 hint: str = "") -> None:
        self.source, self.line, self.field, self.message, self.hint = (
            source, line, field, message, hint)
        where = source + (f":{line}" if line is not None else "") + (
            f":{field}" if field else "")
        super().__init__(f"{where}: {message}" + (f" ({hint})" if hint else ""))


Item = Reading | ReadingBlock | Reject | FileStart


@dataclass
class Source:
    """One batch to load: identity, a way to read its items, and what it says about devices.

    `items()` may be called once; it streams. `devices` fills while items are read (a format
    may also fill it up front); ingest registers each device before its first reading.
    """

    kind: str
    name: str
    checksum: str | None
    items: Callable[[], Iterator[Item]]
    devices: dict[str, Device] = field(default_factory=dict)
    tenant_key: str = "default"
    size: int = 0
    position: Callable[[], int] | None = None


def is_finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def parse_value(raw: str) -> float:
    """A finite float from text, or ValueError with the reason."""
    text = raw.strip()
    if not text:
        raise ValueError("empty value")
    if "_" in text:
        raise ValueError(f"not a number: {raw!r}")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {raw!r}") from None
    if not is_finite(value):
        raise ValueError(f"value {raw.strip()} is not a finite number")
    return value


class TimestampParser:
    """Text to canonical ISO-8601 with offset; cached (time-ordered data repeats stamps).

    mode: 'iso' (offset or Z; naive times are in `zone`), 'epoch_s' or 'epoch_ms'.
    """

    MODES = ("iso", "epoch_s", "epoch_ms")

    def __init__(self, mode: str = "iso", zone: str = "UTC") -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown time format {mode!r}; use one of {', '.join(self.MODES)}")
        self.mode = mode
        self.zone = UTC if zone.upper() == "UTC" else ZoneInfo(zone)
        # raw text -> canonical text; hot loops may read it directly before calling.
        self.cache: dict[str, str] = {}

    def __call__(self, raw: str) -> str:
        hit = self.cache.get(raw)
        if hit is not None:
            return hit
        value = self._parse(raw)
        if len(self.cache) > 10_000:
            self.cache.clear()
        self.cache[raw] = value
        return value

    def _parse(self, raw: str) -> str:
        text = raw.strip()
        if not text:
            raise ValueError("empty timestamp")
        if self.mode == "iso":
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"not an ISO-8601 timestamp: {raw!r}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=self.zone)
        else:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"not an epoch number: {raw!r}") from None
            if not is_finite(number):
                raise ValueError(f"not an epoch number: {raw!r}")
            seconds = number / 1000 if self.mode == "epoch_ms" else number
            try:
                moment = EPOCH + timedelta(seconds=seconds)
            except OverflowError:
                raise ValueError(f"epoch value out of range: {raw!r}") from None
        if not 1 <= moment.year <= 9999:
            raise ValueError(f"timestamp out of range: {raw!r}")
        return moment.isoformat()


def epoch_ms_to_iso(ms: float) -> str:
    """Epoch milliseconds (JSON number) to canonical text, ValueError when out of range."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not is_finite(float(ms)):
        raise ValueError(f"timestamp is not epoch milliseconds: {ms!r}")
    try:
        return (EPOCH + timedelta(milliseconds=ms)).isoformat()
    except OverflowError:
        raise ValueError(f"epoch milliseconds out of range: {ms!r}") from None


