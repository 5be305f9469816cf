"""Greenhouse instrument folders: ROOT/instrument_<ID>/instrument_<ID>_YYYYMMDD.csv.

Header `timestamp,temperature_c,humidity_pct,quality_flag` (hourly rows): a wide CSV whose
device is the instrument id of the folder (device_type 'instrument'). Every column other than
timestamp and quality_flag is a metric named after the column (the unit comes from its
suffix); quality_flag becomes the quality of the row's readings. One file is one batch.
"""

from __future__ import annotations

import re
from pathlib import Path

from loader.formats.generic_csv import CsvLayout, open_generic_csv
from loader.formats.records import FormatError, Source

SOURCE_KIND = "instrument_csv"
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
        if (instrument is None or match["id"] == instrument) and (
                day is None or match["day"] == day):
            found.append(path)
    return found


def instrument_id(path: Path) -> str:
    match = FILE.match(path.name)
    if match is None:
        raise FormatError(str(path), None, None,
                          "not an instrument file name (instrument_<ID>_YYYYMMDD.csv)")
    return match["id"]


def layout(path: Path, timezone: str = "UTC", ambiguous: str = "raise") -> CsvLayout:
    return CsvLayout(layout="wide", time_columns=("timestamp",), device_column=None,
                     quality_column="quality_flag", device=instrument_id(path),
                     device_type="instrument", timezone=timezone, ambiguous=ambiguous)


def open_instrument_file(path: Path, checksum: str | None, tenant_key: str = "default",
                         timezone: str = "UTC", ambiguous: str = "raise") -> Source:
    return open_generic_csv(path, layout(path, timezone, ambiguous), checksum, tenant_key,
                            kind=SOURCE_KIND)
