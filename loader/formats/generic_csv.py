"""Generic CSV: narrow (time,device,metric,value[,quality]) or wide (one column per metric).

Narrow: every row is one reading. Wide: a time column, a device column (or one fixed device
for the whole file) and one column per metric; an empty cell means "no reading" and is skipped.
Timestamps: ISO-8601 with an offset or Z, naive times in --timezone (default UTC), or epoch
seconds / milliseconds (--time-format epoch_s / epoch_ms).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loader.formats.csv_reading import open_csv
from loader.formats.records import (
    Device,
    FormatError,
    Item,
    Reading,
    Reject,
    Source,
    TimestampParser,
    parse_value,
)

if TYPE_CHECKING:
    from loader.formats.narrow_columns import NarrowColumns

SOURCE_KIND = "generic_csv"
# Characters per column-parsed chunk: one COPY each (about 40,000 narrow rows). The first one
# is small: the database waits for it.
BLOCK_CHARS = 2 << 20
FIRST_BLOCK_CHARS = 128 << 10


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
    # Imported here: pandas takes a fifth of a second to import, which only narrow files need
    # (`tsfleet load csv` starts importing it while it connects and checksums the file).
    from loader.formats.narrow_columns import NarrowColumns

    columns = NarrowColumns(i_time, i_device, i_metric, i_value, i_quality, width, fixed)
    any_rows = False
    for chunk in csv_file.chunks(BLOCK_CHARS, first=min(FIRST_BLOCK_CHARS, BLOCK_CHARS)):
        block = columns.block(chunk.first_line, chunk.plain, parse_time) if chunk.plain else None
        if block is not None:
            any_rows = True
            del chunk
            yield block
            # Freed before the next block is built: its memory is reused in the same order.
            del block
            continue
        for item in _narrow_rows(csv_file.rows_of(chunk), layout, parse_time, columns):
            any_rows = True
            yield item
    if not any_rows:
        raise FormatError(csv_file.name, 2, None, "the file has a header but no data rows")


def _narrow_rows(rows: Iterator[tuple[int, list[str]]], layout: CsvLayout,
                 parse_time: TimestampParser, columns: NarrowColumns) -> Iterator[Item]:
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
