"""The column-at-a-time parse of a plain chunk of narrow CSV: no Python code per row.

A plain chunk (loader/formats/csv_reading.py: no quote, no lone CR, no blank line) is split
into fields exactly like the csv module would split it. pandas' C tokenizer reads it, the key
columns as categoricals (each distinct timestamp, device, metric and quality becomes one
Python string, hashed from the raw bytes), and each distinct key is checked once with the same
rules as the row parser. Values are converted by float() itself, so both paths give the same
bits. Any row a check would refuse makes the whole chunk go to the row parser
(generic_csv._narrow_rows), which rejects it with its line number: this parse only ever
accepts chunks whose every row is good. tests/test_ingest_properties.py holds both paths to
the csv module's reading of generated files, broken cells included.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loader.formats.coded_column import CodedColumn
from loader.formats.records import ReadingBlock, TimestampParser

_COMMA, _LINE_FEED = ord(","), ord("\n")


@dataclass(frozen=True)
class NarrowColumns:
    """Where the fields of a narrow row are (indexes into the header; -1: absent)."""

    i_time: int
    i_device: int
    i_metric: int
    i_value: int
    i_quality: int
    width: int
    fixed: str | None  # the one device of the file (--device), or None

    def block(self, first_line: int, text: str, parse_time: TimestampParser,
              ) -> ReadingBlock | None:
        """The rows of a plain chunk as a block, or None if any row needs the row parser."""
        if not text.endswith("\n"):
            text += "\n"
        count = text.count("\n")
        data = text.encode("utf-8")
        if not _fields_per_line_are(data, count, self.width):
            return None
        frame = self._read(data)
        if frame is None or len(frame) != count:
            return None
        stamps = _stamps(frame[self.i_time], parse_time)
        if self.fixed is not None:
            devices: CodedColumn | None = CodedColumn.repeated(self.fixed, count)
        else:
            devices = _keys(frame[self.i_device])
        metrics = _keys(frame[self.i_metric])
        if stamps is None or devices is None or metrics is None:
            return None
        raw_values = frame[self.i_value].to_numpy()
        if "_" in "".join(raw_values):  # float() takes 1_000; the row parser refuses it
            return None
        try:
            values = np.fromiter(map(float, raw_values), dtype=np.float64, count=count)
        except ValueError:
            return None
        if not np.isfinite(values).all():  # NaN or an infinity: the row parser rejects it
            return None
        qualities = None
        if self.i_quality >= 0:
            codes, raw_qualities = _factorized(frame[self.i_quality])
            cleaned = [q.strip().lower() or None for q in raw_qualities]
            if any(cleaned):
                qualities = CodedColumn(codes, cleaned)
        return ReadingBlock(range(first_line, first_line + count), stamps, devices, metrics,
                            values, qualities)

    def _read(self, data: bytes) -> pd.DataFrame | None:
        dtypes = dict.fromkeys(range(self.width), object)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return pd.read_csv(
                    io.BytesIO(data), header=None, names=list(range(self.width)),
                    index_col=False, dtype=dtypes, na_filter=False, engine="c",
                    quoting=csv.QUOTE_NONE, skip_blank_lines=False, encoding="utf-8")
        except (ValueError, pd.errors.ParserError):
            return None


def _fields_per_line_are(data: bytes, lines: int, width: int) -> bool:
    """Whether every line of `data` (each ending in a line feed) has width-1 commas: then the
    separators, in order, are width-1 commas and a line feed, line after line."""
    text = np.frombuffer(data, dtype=np.uint8)
    separators = np.flatnonzero((text == _COMMA) | (text == _LINE_FEED))
    if len(separators) != lines * width:
        return False
    return bool((text[separators[width - 1::width]] == _LINE_FEED).all())


def _factorized(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes per row and the distinct texts, compared as exact strings."""
    codes, uniques = pd.factorize(column.to_numpy())
    return codes, uniques.tolist()


def _stamps(column: pd.Series, parse_time: TimestampParser) -> CodedColumn | None:
    """Canonical stamps (two spellings of one moment may both be categories)."""
    codes, raw_stamps = _factorized(column)
    try:
        canonical = [parse_time(raw) for raw in raw_stamps]
    except ValueError:
        return None
    return CodedColumn(codes, canonical)


def _keys(column: pd.Series) -> CodedColumn | None:
    """Device or metric keys without surrounding blanks, or None if one is empty."""
    codes, raw_keys = _factorized(column)
    stripped: Sequence[str] = [key.strip() for key in raw_keys]
    if not all(stripped):
        return None
    return CodedColumn(codes, stripped)
