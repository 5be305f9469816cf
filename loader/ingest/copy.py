"""The bytes of a source into the session's staging table, pg_temp.ingest_lines, by COPY.

A text file goes in as it is, one physical line per row: COPY's CSV format with a delimiter
and a quote character that text never holds (0x01, 0x02) leaves every line whole, and the
table's identity numbers the lines. The server checks the UTF-8. Python only looks for the
bytes that would break that reading (NUL, 0x01, 0x02, a line of just backslash-period, which
COPY takes for the end of the data) and reports them as file errors with their line.
Documents (whole JSON files, stream payloads) go in as rows with their own numbers.
Couples with: ingest.create_staging() (the table), sql/functions/22_ingest_parse.sql.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import BinaryIO

from psycopg import Cursor

from loader.formats.records import FormatError

LINES_COPY = ("copy pg_temp.ingest_lines (body) from stdin"
              " (format csv, delimiter E'\\x01', quote E'\\x02')")
ROWS_COPY = ("copy pg_temp.ingest_lines (source_no, line_number, message_id, subject, body)"
             " from stdin")
BLOCK = 1 << 20
_END_MARK = re.compile(rb"(?:^|\n)\\\.\r?(?:\n|$)")


def copy_lines(cur: Cursor, handle: BinaryIO, name: str,
               progress: Callable[[int], None] | None = None) -> None:
    """Every line of `handle` into pg_temp.ingest_lines, line 1 first; FormatError for bytes
    COPY cannot carry (the server reports bad UTF-8 itself)."""
    line, carry, done = 1, b"", 0
    with cur.copy(LINES_COPY) as copy:
        while block := handle.read(BLOCK):
            done += len(block)
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if not cut:
                carry = data
                continue
            whole, carry = data[:cut], data[cut:]
            _check(whole, line, name)
            copy.write(whole)
            line += whole.count(b"\n")
            if progress is not None:
                progress(done)
        if carry:
            _check(carry, line, name)
            copy.write(carry)


def _check(data: bytes, line: int, name: str) -> None:
    """FormatError for the first byte of `data` that COPY cannot carry (memchr-speed finds:
    a regular expression over every block cost more than the COPY itself)."""
    found = [(at, what) for at, what in (
        (data.find(b"\0"), "nul"), (data.find(b"\x01"), "control"),
        (data.find(b"\x02"), "control"), (_end_mark(data), "end")) if at >= 0]
    if not found:
        return
    at, what = min(found)
    where = line + data.count(b"\n", 0, at)
    if what == "nul":
        raise FormatError(name, where, None, "contains a NUL byte: binary data, not text",
                          "check that this is the right file")
    if what == "control":
        raise FormatError(name, where, None, f"contains the control character U+000{data[at]}",
                          "remove it: tsfleet reads text files")
    raise FormatError(name, where, None, "a line holding only \\. (COPY's end-of-data mark)",
                      "remove the line")


def _end_mark(data: bytes) -> int:
    """Where a line holding only backslash-period starts in `data` (whole lines), or -1; the
    expression runs only on the rare block that holds a backslash-period at all."""
    found = _END_MARK.search(data) if b"\\." in data else None
    return -1 if found is None else found.start() + found.group().startswith(b"\n")


def copy_rows(cur: Cursor,
              rows: Iterable[tuple[int, int, str | None, str | None, str | None]]) -> None:
    """(source_no, line_number, message_id, subject, body) rows into pg_temp.ingest_lines."""
    with cur.copy(ROWS_COPY) as copy:
        for row in rows:
            copy.write_row(row)
