"""PostgreSQL's binary COPY format, built a column at a time with no Python code per row.

A binary COPY stream is a signature, then per row its field count and per field a 4-byte
length and the value's bytes (int4/int8 big-endian, float8 IEEE 754, timestamptz as
microseconds since 2000-01-01 UTC, text as UTF-8), then a trailer. The server only copies
those bytes into the tuple: no text parsing, about a quarter less server time per row than
COPY text on telemetry.readings (measured by `python -m bench --only ingest`).

The staging path builds its rows here from fields: keys repeat (devices, metrics, timestamps,
qualities), so their encoded fields are cached; values are packed by map(); a row's fields are
joined in one pass over zip(). The fast path (loader/ingest/direct.py) lays its fixed-size
rows out as numpy records instead, with this module's signature and trailer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import chain, repeat
from typing import Any

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # no flags, no extension
TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_INT4 = struct.Struct(">ii").pack
_INT8 = struct.Struct(">iq").pack
_FLOAT8 = struct.Struct(">id").pack
_ROW = struct.Struct(">h").pack


def int4_field(value: int) -> bytes:
    return _INT4(4, value)


def text_field(value: str | None) -> bytes:
    """A text field; NUL, which PostgreSQL text cannot hold, is stored as the characters \\0
    (as loader/ingest/staging.py's COPY text escape does)."""
    if value is None:
        return NULL
    data = value.replace("\0", "\\0").encode("utf-8")
    return struct.pack(">i", len(data)) + data


def timestamptz_micros(moment: datetime) -> int:
    """An aware datetime as timestamptz's microseconds since 2000-01-01 UTC."""
    return (moment - PG_EPOCH) // _MICROSECOND


def timestamptz_field(moment: datetime) -> bytes:
    """An aware datetime as a timestamptz field."""
    return _INT8(8, timestamptz_micros(moment))


def iso_timestamptz_field(stamp: str) -> bytes:
    """A canonical ISO-8601 stamp with offset (Reading.recorded_at) as a timestamptz field."""
    return timestamptz_field(datetime.fromisoformat(stamp))


def float8_fields(values: Iterable[float]) -> Iterator[bytes]:
    """float8 fields of the values (C-level: map over a packed struct)."""
    return map(_FLOAT8, repeat(8), values)


def int8_fields(values: Iterable[int]) -> Iterator[bytes]:
    return map(_INT8, repeat(8), values)


def rows(field_count: int, columns: list[Iterable[bytes]]) -> bytes:
    """The body of a COPY (no signature, no trailer): one row per position of the columns,
    each column an iterable of encoded fields (a column may hold several fields per row)."""
    return b"".join(chain.from_iterable(zip(repeat(_ROW(field_count)), *columns)))


def stream(bodies: Iterable[bytes]) -> bytes:
    """A whole COPY stream around bodies (psycopg sends written blocks unchanged)."""
    return b"".join((SIGNATURE, *bodies, TRAILER))


class FieldCache:
    """Encoded fields of repeating values (keys, stamps); bounded: cleared when full."""

    def __init__(self, encode: Callable[[Any], bytes], limit: int = 20_000) -> None:
        self._encode = encode
        self._limit = limit
        self.fields: dict[Any, bytes] = {}

    def covering(self, distinct: Collection[Any]) -> dict[Any, bytes]:
        """The cache, holding the field of every value in `distinct`."""
        fields = self.fields
        missing = [value for value in distinct if value not in fields]
        if missing:
            if len(fields) + len(missing) > self._limit:
                fields.clear()
                missing = list(distinct)
            encode = self._encode
            for value in missing:
                fields[value] = encode(value)
        return fields
