"""COPY to the staging table (and rejects to ingest.rejects), in chunks, as COPY text.

Rows are formatted here rather than by psycopg's row adapter: the keys repeat (a few thousand
devices and metrics), so their escaped form is cached, and canonical timestamps come cached
from the parsers. Couples with ingest.create_staging() (the column order below).
"""

from __future__ import annotations

from psycopg import Cursor

from loader.formats.records import Reading, Reject

STAGING_COPY = (
    "copy pg_temp.ingest_staging (source_no, line_number, recorded_at, device_key, metric_name,"
    " value, quality, message_id) from stdin"
)
REJECTS_COPY = (
    "copy ingest.rejects (batch_id, source_name, line_number, field_name, raw_text, reason)"
    " from stdin"
)
NULL = "\\N"
_ESCAPES = str.maketrans({
    "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
    "\0": "\\\\0",  # PostgreSQL text cannot hold NUL: stored as the two characters \\0
})


def escape(text: str) -> str:
    return text.translate(_ESCAPES)


class StagingBuffer:
    """Readings and rejects of the current chunk, formatted for COPY."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.rejects: list[str] = []
        self._keys: dict[str, str] = {}

    def _key(self, text: str) -> str:
        hit = self._keys.get(text)
        if hit is None:
            if len(self._keys) > 20_000:
                self._keys.clear()
            hit = self._keys[text] = escape(text)
        return hit

    def add(self, source_no: int, reading: Reading) -> None:
        keys = self._keys
        line, stamp, device, metric, value, quality, message_id = reading
        self.lines.append(
            f"{source_no}\t{line}\t{stamp}\t{keys.get(device) or self._key(device)}\t"
            f"{keys.get(metric) or self._key(metric)}\t{value!r}\t"
            f"{NULL if quality is None else keys.get(quality) or self._key(quality)}\t"
            f"{NULL if message_id is None else escape(message_id)}\n"
        )

    def reject(self, batch_id: int, source_name: str, reject: Reject) -> None:
        line = NULL if reject.line is None else str(reject.line)
        field = NULL if reject.field is None else escape(reject.field)
        self.rejects.append(
            f"{batch_id}\t{escape(source_name)}\t{line}\t{field}\t"
            f"{escape(reject.raw_text)}\t{escape(reject.reason)}\n"
        )

    def __len__(self) -> int:
        return len(self.lines)

    def flush_readings(self, cur: Cursor) -> int:
        count = len(self.lines)
        if count:
            with cur.copy(STAGING_COPY) as copy:
                copy.write("".join(self.lines))
            self.lines.clear()
        return count

    def flush_rejects(self, cur: Cursor) -> int:
        count = len(self.rejects)
        if count:
            with cur.copy(REJECTS_COPY) as copy:
                copy.write("".join(self.rejects))
            self.rejects.clear()
        return count
