"""What every input format gives the ingest package: a Source (what to COPY, how the SQL reads
it) or a FormatError (the source cannot be read at all)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import Cursor


class FormatError(Exception):
    """The source cannot be read as its format: the whole batch fails, nothing is written."""

    def __init__(self, source: str, line: int | None, field: str | None, message: str,
                 hint: str = "") -> None:
        self.source, self.line, self.field, self.message, self.hint = (
            source, line, field, message, hint)
        where = source + (f":{line}" if line is not None else "") + (
            f":{field}" if field else "")
        super().__init__(f"{where}: {message}" + (f" ({hint})" if hint else ""))


@dataclass
class Source:
    """One batch: its identity, how ingest.write_batch reads it (format and options), the
    names of its files by source number, and `feed`, which COPYs its bytes into
    pg_temp.ingest_lines (loader/ingest/copy.py)."""

    kind: str
    name: str
    checksum: str | None
    format: str  # csv | messages | battery (ingest.write_batch)
    feed: Callable[[Cursor, Callable[[int], None] | None], None]
    options: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # by source number; default [name]
    tenant_key: str = "default"
    size: int = 0
