"""Generic CSV: narrow (time,device,metric,value[,quality]) or wide (one column per metric).

The file goes to the database as it is; ingest.parse_csv reads it under these options
(sql/functions/22_ingest_parse.sql). Narrow: every row is one reading. Wide: time column(s),
a device column (or one fixed device) and one column per metric; an empty cell means "no
reading". Timestamps: ISO-8601 with an offset or Z, local times in --timezone, epoch seconds
or milliseconds, or a strptime format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import Cursor

from loader.formats.records import FormatError, Source
from loader.ingest.copy import copy_lines

SOURCE_KIND = "generic_csv"


@dataclass(frozen=True)
class CsvLayout:
    """How to read a generic CSV file (all of it goes into the checksum)."""

    layout: str = "narrow"
    time_columns: tuple[str, ...] = ("time",)
    device_column: str | None = "device"
    metric_column: str = "metric"
    value_column: str = "value"
    quality_column: str | None = "quality"
    device: str | None = None
    time_format: str = "iso"
    timezone: str = "UTC"
    ambiguous: str = "raise"
    delimiter: str = ","
    decimal: str = "."
    na_values: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    device_type: str | None = None

    def options(self) -> dict[str, Any]:
        """The options of ingest.parse_csv."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in self.__dict__.items() if value is not None}

    def describe(self) -> str:
        return repr(sorted(self.options().items()))


def file_feed(path: Path):
    """A Source.feed that COPYs the file's lines."""
    def feed(cur: Cursor, progress) -> None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise FormatError(str(path), None, None, f"cannot open: {exc.strerror}") from None
        with handle:
            copy_lines(cur, handle, str(path), progress)
    return feed


def open_generic_csv(path: Path, layout: CsvLayout, checksum: str | None,
                     tenant_key: str = "default", kind: str = SOURCE_KIND) -> Source:
    return Source(kind=kind, name=str(path), checksum=checksum, format="csv",
                  feed=file_feed(path), options=layout.options(), tenant_key=tenant_key,
                  size=path.stat().st_size if path.exists() else 0)
