"""Generic CSV: narrow (time,device,metric,value[,quality]) or wide (one column per metric).

Narrow: every row is one reading. Wide: a time column, a device column (or one fixed device
for the whole file) and one column per metric; an empty cell means "no reading" and is skipped.
Timestamps: ISO-8601 with an offset or Z, naive times in --timezone (default UTC), or epoch
seconds / milliseconds (--time-format epoch_s / epoch_ms).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

from loader.formats.csv_reading import open_csv
from loader.formats.records import (
    Device,
    FormatError,
    Item,
    Reading,
    ReadingBlock,
    Reject,
    Source,
    TimestampParser,
    parse_value,
)

SOURCE_KIND = "generic_csv"
# Blocks of consecutive chunks handed over as one (about 2 MB of text): fewer, larger COPYs.
MERGED_CHUNKS = 4


@dataclass(frozen=True)
class CsvLayout:
    """How to read a generic CSV file (all of it goes into the checksum)."""

    layout: str = "narrow"
    time_column: str = "time"
    device_column: str | None = "device"
    metric_column: str = "metric"
    value_column: str = "value"
    quality_column: str | None = "quality"
    device: str | None = None
    time_format: str = "iso"
    timezone: str = "UTC"

    def describe(self) -> str:
        return repr(sorted(self.__dict__.items()))


def open_generic_csv(path: Path, layout: CsvLayout, checksum: str | None,
                     tenant_key: str = "default") -> Source:
    if layout.layout not in ("narrow", "wide"):
        raise ValueError(f"unknown layout {layout.layout!r}: use narrow or wide")
    parse_time = TimestampParser(layout.time_format, layout.timezone)
    source = Source(kind=SOURCE_KIND, name=str(path), checksum=checksum, items=lambda: iter(()),
                    tenant_key=tenant_key, size=path.stat().st_size if path.exists() else 0)

    def items() -> Iterator[Item]:
        with open_csv(path) as csv_file:
            source.position = csv_file.position
            if layout.layout == "narrow":
                yield from _narrow(csv_file, layout, parse_time, source)
            else:
                yield from _wide(csv_file, layout, parse_time, source)

    source.items = items
    return source


def _narrow(csv_file, layout: CsvLayout, parse_time: TimestampParser,
            source: Source) -> Iterator[Item]:
    header = csv_file.header
    fixed = layout.device
    needed = [layout.time_column, layout.metric_column, layout.value_column]
    if fixed is None:
        if layout.device_column is None:
            raise FormatError(csv_file.name, None, None, "no device column and no fixed device",
                              "pass --device-column or --device")
        needed.insert(1, layout.device_column)
    csv_file.require(*needed)
    i_time = header.index(layout.time_column)
    i_metric = header.index(layout.metric_column)
    i_value = header.index(layout.value_column)
    i_device = header.index(layout.device_column) if fixed is None else -1
    i_quality = (header.index(layout.quality_column)
                 if layout.quality_column and layout.quality_column in header else -1)
    width = len(header)
    if fixed is not None:
        source.devices[fixed] = Device(fixed)
    columns = _NarrowColumns(i_time, i_device, i_metric, i_value, i_quality, width, fixed)
    any_rows = False
    pending: list[ReadingBlock] = []  # consecutive blocks, yielded as one
    for chunk in csv_file.chunks():
        block = columns.block(chunk.first_line, chunk.plain, parse_time) if chunk.plain else None
        if block is not None:
            any_rows = True
            pending.append(block)
            del block, chunk
            if len(pending) == MERGED_CHUNKS:
                yield merged(pending)
                # Freed before the next blocks are built: their memory is reused in the same
                # order, which keeps the next blocks' objects together (up to 2x faster).
                pending = []
            continue
        if pending:
            yield merged(pending)
            pending = []
        for item in _narrow_rows(csv_file.rows_of(chunk), layout, parse_time, columns):
            any_rows = True
            yield item
    if pending:
        yield merged(pending)
    if not any_rows:
        raise FormatError(csv_file.name, 2, None, "the file has a header but no data rows")


@dataclass(frozen=True)
class _NarrowColumns:
    """Where the fields of a narrow row are, and the column-at-a-time parse of a plain chunk:
    every step is a C-level pass over a column, and the few distinct timestamps, devices,
    metrics and qualities are checked once each. A chunk with any row that a check refuses
    gives None, and the row-by-row parser (_narrow_rows) reads it instead, rejects and all."""

    i_time: int
    i_device: int
    i_metric: int
    i_value: int
    i_quality: int
    width: int
    fixed: str | None

    def block(self, first_line: int, text: str, parse_time: TimestampParser,
              ) -> ReadingBlock | None:
        body = text[:-1] if text.endswith("\n") else text
        lines = body.split("\n")
        count, width = len(lines), self.width
        if set(map(str.count, lines, repeat(",", count))) != {width - 1}:
            return None
        flat = body.replace("\n", ",").split(",")
        columns = [flat[i::width] for i in range(width)]
        try:
            stamps, stamp_set = _canonical(columns[self.i_time], parse_time)
        except ValueError:
            return None
        if self.fixed is not None:
            devices: Sequence[str] | None = [self.fixed] * count
            device_set: set[str] | None = {self.fixed}
        else:
            devices, device_set = _stripped(columns[self.i_device])
        metrics, metric_set = _stripped(columns[self.i_metric])
        if devices is None or metrics is None:
            return None
        raw_values = columns[self.i_value]
        if "_" in "".join(raw_values):  # float() takes 1_000; the row parser refuses it
            return None
        try:
            values = list(map(float, raw_values))
        except ValueError:
            return None
        total = sum(values)
        if total - total != 0.0:  # a NaN or an infinity somewhere (or an overflowing sum)
            return None
        qualities = None
        if self.i_quality >= 0:
            raw_qualities = columns[self.i_quality]
            quality = {q: q.strip().lower() or None for q in set(raw_qualities)}
            if any(quality.values()):
                qualities = list(map(quality.__getitem__, raw_qualities))
        return ReadingBlock(range(first_line, first_line + count), stamps, devices, metrics,
                            values, qualities,
                            (stamp_set, device_set, metric_set))  # type: ignore[arg-type]


def merged(blocks: list[ReadingBlock]) -> ReadingBlock:
    """Consecutive blocks of one file as one (their lines follow each other)."""
    if len(blocks) == 1:
        return blocks[0]
    first, last = blocks[0], blocks[-1]
    stamps: list[str] = []
    devices: list[str] = []
    metrics: list[str] = []
    values: list[float] = []
    distinct: tuple[set[str], set[str], set[str]] = (set(), set(), set())
    for block in blocks:
        stamps += block.recorded_at
        devices += block.device_keys
        metrics += block.metric_names
        values += block.values
        for known, more in zip(distinct, block.distinct or ((), (), ()), strict=True):
            known.update(more)
    qualities = None
    if any(block.qualities is not None for block in blocks):
        qualities = []
        for block in blocks:
            qualities += (block.qualities if block.qualities is not None
                          else [None] * len(block))
    return ReadingBlock(range(first.lines[0], last.lines[-1] + 1), stamps, devices, metrics,
                        values, qualities,
                        distinct if all(block.distinct for block in blocks) else None)


def _canonical(raw_stamps: Sequence[str], parse_time: TimestampParser,
               ) -> tuple[list[str], set[str]]:
    """Canonical stamps of a column and the distinct ones; ValueError if one does not parse."""
    canonical = {raw: parse_time(raw) for raw in set(raw_stamps)}
    return list(map(canonical.__getitem__, raw_stamps)), set(canonical.values())


def _stripped(keys: Sequence[str]) -> tuple[Sequence[str] | None, set[str] | None]:
    """The keys without surrounding blanks and the distinct ones, or Nones if one is empty."""
    stripped = {key: key.strip() for key in set(keys)}
    if not all(stripped.values()):
        return None, None
    if all(key == clean for key, clean in stripped.items()):
        return keys, set(stripped)
    return list(map(stripped.__getitem__, keys)), set(stripped.values())


def _narrow_rows(rows: Iterator[tuple[int, list[str]]], layout: CsvLayout,
                 parse_time: TimestampParser, columns: _NarrowColumns) -> Iterator[Item]:
    """Row by row, with a reject for each row a check refuses."""
    fixed, width = columns.fixed, columns.width
    i_time, i_device, i_metric = columns.i_time, columns.i_device, columns.i_metric
    i_value, i_quality = columns.i_value, columns.i_quality
    # Cached timestamps, Reading built without NamedTuple's Python-level __new__, the slow
    # checks only when the fast ones fail.
    make = tuple.__new__
    stamps = parse_time.cache
    for line, row in rows:
        if len(row) != width:
            yield Reject(line, None, ",".join(row), f"expected {width} fields, got {len(row)}")
            continue
        raw_time = row[i_time]
        stamp = stamps.get(raw_time)
        if stamp is None:
            try:
                stamp = parse_time(raw_time)
            except ValueError as exc:
                yield Reject(line, layout.time_column, ",".join(row), str(exc))
                continue
        device = fixed if fixed is not None else row[i_device].strip()
        if not device:
            yield Reject(line, layout.device_column, ",".join(row), "empty device")
            continue
        metric = row[i_metric].strip()
        if not metric:
            yield Reject(line, layout.metric_column, ",".join(row), "empty metric name")
            continue
        raw_value = row[i_value]
        try:
            value = float(raw_value)
            fast = value - value == 0.0 and "_" not in raw_value
        except ValueError:
            fast = False
        if not fast:
            try:
                value = parse_value(raw_value)
            except ValueError as exc:
                yield Reject(line, layout.value_column, ",".join(row), str(exc))
                continue
        quality = (row[i_quality].strip().lower() or None) if i_quality >= 0 else None
        yield make(Reading, (line, stamp, device, metric, value, quality, None))


def _wide(csv_file, layout: CsvLayout, parse_time: TimestampParser,
          source: Source) -> Iterator[Item]:
    header = csv_file.header
    fixed = layout.device
    csv_file.require(layout.time_column)
    if fixed is None:
        if not layout.device_column or layout.device_column not in header:
            raise FormatError(csv_file.name, 1, layout.device_column or "device",
                              "wide layout needs a device column or a fixed device",
                              "pass --device-column NAME or --device KEY")
        i_device = header.index(layout.device_column)
    else:
        i_device = -1
        source.devices[fixed] = Device(fixed)
    i_time = header.index(layout.time_column)
    i_quality = (header.index(layout.quality_column)
                 if layout.quality_column and layout.quality_column in header else -1)
    metrics = [(i, name) for i, name in enumerate(header)
               if i not in (i_time, i_device, i_quality)]
    if not metrics:
        raise FormatError(csv_file.name, 1, None, "wide layout without metric columns",
                          "add one column per metric")
    width = len(header)
    for line, row in csv_file.rows():
        if len(row) != width:
            yield Reject(line, None, ",".join(row), f"expected {width} fields, got {len(row)}")
            continue
        try:
            stamp = parse_time(row[i_time])
        except ValueError as exc:
            yield Reject(line, layout.time_column, ",".join(row), str(exc))
            continue
        device = fixed if fixed is not None else row[i_device].strip()
        if not device:
            yield Reject(line, layout.device_column, ",".join(row), "empty device")
            continue
        quality = (row[i_quality].strip().lower() or None) if i_quality >= 0 else None
        for i, name in metrics:
            cell = row[i]
            if not cell.strip():
                continue
            try:
                value = parse_value(cell)
            except ValueError as exc:
                yield Reject(line, name, ",".join(row), str(exc))
                continue
            yield Reading(line, stamp, device, name, value, quality)
