"""COPY to the staging table (binary, a column at a time) and rejects to ingest.rejects (text).

Readings take this path when they may collide with stored ones (a reload), carry message ids
or load last-write-wins; ingest.insert_staged_readings then sorts them out set-based. Their
binary COPY is built from columns like the fast path's (binary_copy.py): keys, stamps and
qualities repeat, so their fields are cached. Rejects are few and stay COPY text. Couples with
ingest.create_staging() (the column order below).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat

from psycopg import Cursor

from loader.formats.records import Reading, ReadingBlock, Reject
from loader.ingest import binary_copy
from loader.ingest.binary_copy import FieldCache

STAGING_COPY = (
    "copy pg_temp.ingest_staging (source_no, line_number, recorded_at, device_key, metric_name,"
    " value, quality, message_id) from stdin (format binary)"
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


class StagingEncoder:
    """Readings as a binary COPY stream for STAGING_COPY; one per thread (its caches)."""

    def __init__(self) -> None:
        self._stamps = FieldCache(binary_copy.iso_timestamptz_field)
        self._texts = FieldCache(binary_copy.text_field)

    def encode(self, readings: Sequence[Reading] | ReadingBlock,
               segments: Sequence[tuple[int, int]]) -> bytes:
        """`segments`: (index of the first reading, source_no) per file, in order."""
        if isinstance(readings, ReadingBlock):
            block, message_ids = readings, None
        else:
            message_ids = [r[6] for r in readings]
            block = ReadingBlock.of(readings)
        count = len(block)
        ends = [start for start, _ in segments[1:]] + [count]
        source_nos = chain.from_iterable(
            repeat(binary_copy.int4_field(source_no), end - start)
            for (start, source_no), end in zip(segments, ends, strict=True))
        stamps = block.recorded_at.mapped(
            self._stamps.covering(block.recorded_at.distinct()), object).tolist()
        keys = block.device_keys, block.metric_names
        texts = self._texts.covering(set.union(*(column.distinct() for column in keys)))
        devices, metrics = (column.mapped(texts, object).tolist() for column in keys)
        qualities = (repeat(binary_copy.NULL, count) if block.qualities is None else
                     map(binary_copy.text_field, block.qualities))
        messages = (repeat(binary_copy.NULL, count) if message_ids is None else
                    map(binary_copy.text_field, message_ids))
        return binary_copy.stream([binary_copy.rows(8, [
            source_nos,
            binary_copy.int8_fields(block.lines),
            stamps,
            devices,
            metrics,
            binary_copy.float8_fields(block.values.tolist()),
            qualities,
            messages,
        ])])


def copy_staged(cur: Cursor, data: bytes) -> None:
    with cur.copy(STAGING_COPY) as copy:
        copy.write(data)


class RejectBuffer:
    """Rejected rows of the current chunk, as COPY text for ingest.rejects."""

    def __init__(self) -> None:
        self.rejects: list[str] = []

    def reject(self, batch_id: int, source_name: str, reject: Reject) -> None:
        line = NULL if reject.line is None else str(reject.line)
        field = NULL if reject.field is None else escape(reject.field)
        self.rejects.append(
            f"{batch_id}\t{escape(source_name)}\t{line}\t{field}\t"
            f"{escape(reject.raw_text)}\t{escape(reject.reason)}\n"
        )

    def flush(self, cur: Cursor) -> int:
        count = len(self.rejects)
        if count:
            with cur.copy(REJECTS_COPY) as copy:
                copy.write("".join(self.rejects))
            self.rejects.clear()
        return count
