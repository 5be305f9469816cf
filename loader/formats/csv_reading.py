"""Streaming CSV reading shared by the CSV formats: strict UTF-8, line numbers, clear errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import BinaryIO, TextIO

from loader.formats.records import FormatError


@dataclass
class RawChunk:
    """Consecutive lines of a CSV file, starting at line `first_line`. `plain` is their text
    (CRLF read as LF) when splitting it on line feeds and commas gives exactly the CSV rows
    and fields (no quote, no lone CR, no blank line); otherwise None, and `lines` are for the
    csv module."""

    first_line: int
    lines: Iterable[str]
    plain: str | None


class CsvFile:
    """An open CSV file: header, rows with their line numbers, bytes consumed so far."""

    def __init__(self, path: Path, handle: TextIO) -> None:
        self.path = path
        self.name = str(path)
        self._handle = handle
        self._reader = csv.reader(handle)
        self.header = self._read_header()

    def _read_header(self) -> list[str]:
        try:
            header = next(self._reader, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise self._error(exc) from None
        if header is None:
            raise FormatError(self.name, None, None, "the file is empty",
                              "a CSV file needs a header line and data rows")
        header = [h.strip() for h in header]
        seen: set[str] = set()
        for position, column in enumerate(header, start=1):
            if not column:
                raise FormatError(self.name, 1, f"column {position}", "empty column name")
            if column in seen:
                raise FormatError(self.name, 1, column, "duplicate column name")
            seen.add(column)
        return header

    def require(self, *columns: str) -> None:
        missing = [c for c in columns if c not in self.header]
        if missing:
            raise FormatError(
                self.name, 1, missing[0],
                f"required column {missing[0]!r} is missing (header: {','.join(self.header)})",
                "check the header line or the column options",
            )

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) for every data row; FormatError if the file breaks."""
        reader = self._reader
        produced = False
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (UnicodeDecodeError, csv.Error) as exc:
                raise self._error(exc) from None
            if not row:
                continue
            produced = True
            yield reader.line_num, row
        if not produced:
            raise FormatError(self.name, 2, None, "the file has a header but no data rows")

    def chunks(self, size_hint: int, first: int | None = None) -> Iterator[RawChunk]:
        """The data lines in chunks of about `size_hint` characters (the first one `first`, if
        given: a small first chunk gets the database going sooner), for parsers that work a
        column at a time; rows_of() reads a chunk that is not plain. A chunk is read as one
        string and cut after its last line feed (no object per line); its size bounds memory."""
        size = first or size_hint
        handle = self._handle
        first_line = self._reader.line_num + 1
        carry = ""  # the start of a line whose end the next read brings
        while True:
            try:
                block = handle.read(size)
            except UnicodeDecodeError as exc:
                raise self._error(exc) from None
            size = size_hint
            text = carry + block
            if block:
                cut = text.rfind("\n") + 1
                if not cut:
                    carry = text
                    continue
                text, carry = text[:cut], text[cut:]
            else:
                carry = ""
            if not text:
                return
            if '"' in text:
                # A quoted field may hold line breaks, even across chunk ends: the csv module
                # reads the rest of the file (the cut-off line completed first).
                head = io.StringIO(text + carry + handle.readline(), newline="")
                yield RawChunk(first_line, chain(head, handle), None)
                return
            plain = text.replace("\r\n", "\n") if "\r" in text else text
            if "\r" in plain or "\n\n" in plain or plain.startswith("\n"):
                lines = list(io.StringIO(text, newline=""))  # lines as the file reads them
                yield RawChunk(first_line, lines, None)
                first_line += len(lines)
            else:
                yield RawChunk(first_line, (), plain)
                first_line += plain.count("\n") + (not plain.endswith("\n"))

    def rows_of(self, chunk: RawChunk) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) for every row of a chunk; FormatError if the file breaks."""
        reader = csv.reader(chunk.lines if chunk.plain is None
                            else io.StringIO(chunk.plain, newline=""))
        before = chunk.first_line - 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as exc:
                raise self._error(exc, before + reader.line_num + 1) from None
            if row:
                yield before + reader.line_num, row

    def position(self) -> int:
        """Bytes read so far (the whole file once it is closed), for progress bars."""
        buffer: BinaryIO = self._handle.buffer  # type: ignore[attr-defined]
        if buffer.closed:
            return self.path.stat().st_size
        return buffer.tell()

    def _error(self, exc: Exception, line: int | None = None) -> FormatError:
        if isinstance(exc, UnicodeDecodeError):
            line, offset = first_bad_utf8(self.path)
            return FormatError(self.name, line, None,
                               f"not UTF-8 text (invalid byte at offset {offset})",
                               "re-encode the file as UTF-8")
        line = self._reader.line_num + 1 if line is None else line
        return FormatError(self.name, line, None, f"unreadable CSV: {exc}")


def first_bad_utf8(path: Path) -> tuple[int, int]:
    """(line, byte offset) of the first byte that is not UTF-8 (the slow path of an error)."""
    offset = 0
    with open(path, "rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, offset + exc.start
            offset += len(line)
    return 0, offset


def first_nul(path: Path, block: int = 1 << 20) -> tuple[int, int] | None:
    """(line, byte offset) of the first NUL byte, or None. One fast pass (memchr per block);
    lines are counted only when there is a NUL to report."""
    offset = 0
    with open(path, "rb") as raw:
        while chunk := raw.read(block):
            at = chunk.find(b"\0")
            if at >= 0:
                raw.seek(0)
                before = raw.read(offset + at)
                return before.count(b"\n") + 1, offset + at
            offset += len(chunk)
    return None


@contextmanager
def open_csv(path: Path) -> Iterator[CsvFile]:
    """Open a CSV file for streaming; binary data (a NUL byte anywhere) is a file error."""
    try:
        handle = open(path, encoding="utf-8-sig", errors="strict", newline="")  # noqa: SIM115
        nul = first_nul(path)
    except OSError as exc:
        raise FormatError(str(path), None, None, f"cannot open: {exc.strerror}") from None
    with handle:
        if nul is not None:
            raise FormatError(str(path), nul[0], None,
                              f"contains a NUL byte at offset {nul[1]}: binary data, not CSV text",
                              "check that this is the right file")
        yield CsvFile(path, handle)
