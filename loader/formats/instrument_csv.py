"""Greenhouse instrument folders: ROOT/instrument_<ID>/instrument_<ID>_YYYYMMDD.csv.

Header `timestamp,temperature_c,humidity_pct,quality_flag` (hourly rows). The device is the
instrument id of the folder (device_type 'instrument'); a new folder is a new device. Every
column other than timestamp and quality_flag is a metric named after the column (the unit
comes from its suffix); quality_flag becomes the quality of the row's readings. One file is
one batch. Naive timestamps are in the --timezone given (default UTC).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

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

SOURCE_KIND = "instrument_csv"
DEVICE_TYPE = "instrument"
TIME_COLUMN = "timestamp"
QUALITY_COLUMN = "quality_flag"
FOLDER = re.compile(r"^instrument_(?P<id>[A-Za-z0-9][A-Za-z0-9._-]*)$")
FILE = re.compile(r"^instrument_(?P<id>[A-Za-z0-9][A-Za-z0-9._-]*)_(?P<day>\d{8})\.csv$")


def discover(root: Path, instrument: str | None = None, day: str | None = None) -> list[Path]:
    """The instrument files under ROOT (sorted), optionally one instrument and/or one day.

    ROOT may also be one instrument folder or one file.
    """
    day = day.replace("-", "") if day else None
    if root.is_file():
        candidates = [root]
    elif FOLDER.match(root.name):
        candidates = sorted(root.glob("*.csv"))
    else:
        candidates = sorted(root.glob("instrument_*/*.csv"))
    found = []
    for path in candidates:
        match = FILE.match(path.name)
        if match is None or path.parent.name != f"instrument_{match['id']}":
            continue
        if instrument is not None and match["id"] != instrument:
            continue
        if day is not None and match["day"] != day:
            continue
        found.append(path)
    return found


def instrument_id(path: Path) -> str:
    match = FILE.match(path.name)
    if match is None:
        raise FormatError(str(path), None, None,
                          "not an instrument file name (instrument_<ID>_YYYYMMDD.csv)")
    return match["id"]


def open_instrument_file(path: Path, checksum: str | None, tenant_key: str = "default",
                         timezone: str = "UTC") -> Source:
    device_key = instrument_id(path)
    parse_time = TimestampParser("iso", timezone)
    source = Source(kind=SOURCE_KIND, name=str(path), checksum=checksum, items=lambda: iter(()),
                    tenant_key=tenant_key, size=path.stat().st_size)
    source.devices[device_key] = Device(device_key, device_type=DEVICE_TYPE)

    def items() -> Iterator[Item]:
        with open_csv(path) as csv_file:
            source.position = csv_file.position
            csv_file.require(TIME_COLUMN)
            header = csv_file.header
            i_time = header.index(TIME_COLUMN)
            i_quality = header.index(QUALITY_COLUMN) if QUALITY_COLUMN in header else -1
            metrics = [(i, name) for i, name in enumerate(header) if i not in (i_time, i_quality)]
            if not metrics:
                raise FormatError(str(path), 1, None, "no metric columns in the header",
                                  "expected e.g. timestamp,temperature_c,humidity_pct,quality_flag")
            width = len(header)
            for line, row in csv_file.rows():
                if len(row) != width:
                    yield Reject(line, None, ",".join(row),
                                 f"expected {width} fields, got {len(row)}")
                    continue
                try:
                    stamp = parse_time(row[i_time])
                except ValueError as exc:
                    yield Reject(line, TIME_COLUMN, ",".join(row), str(exc))
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
                    yield Reading(line, stamp, device_key, name, value, quality)

    source.items = items
    return source
