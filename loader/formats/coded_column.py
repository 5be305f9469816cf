"""A column of repeating text as integer codes into its distinct values (a categorical).

Telemetry keys repeat: a 2 MB chunk of narrow CSV holds 40,000 rows but about a thousand
devices, two metrics and twenty timestamps. Held as codes, a column is checked, mapped to ids
and encoded a distinct value at a time, then spread to the rows by one numpy take: no Python
code runs per row. It still reads as a sequence of its values for the paths that want rows
(staging, rejects, tests). Couples with: records.ReadingBlock, loader/ingest/direct.py.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np


class CodedColumn(Sequence):
    """Row i holds categories[codes[i]]. Categories may repeat a value or go unused (a slice);
    `distinct()` is the set of values the rows hold."""

    __slots__ = ("codes", "categories", "_used")

    def __init__(self, codes: np.ndarray, categories: Sequence[Any]) -> None:
        self.codes = codes
        self.categories = list(categories)
        self._used: np.ndarray | None = None

    @classmethod
    def of(cls, values: Iterable[Hashable]) -> CodedColumn:
        """Codes in order of first appearance (a dict per value: for row-built blocks)."""
        index: dict[Hashable, int] = {}
        codes = [index.setdefault(value, len(index)) for value in values]
        return cls(np.array(codes, dtype=np.int32), list(index))

    @classmethod
    def repeated(cls, value: Any, count: int) -> CodedColumn:
        return cls(np.zeros(count, dtype=np.int8), [value])

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> CodedColumn: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return CodedColumn(self.codes[index], self.categories)
        return self.categories[self.codes[index]]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CodedColumn | list | tuple):
            return len(self) == len(other) and self.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CodedColumn({self.tolist()!r})"

    def used(self) -> np.ndarray:
        """Indexes of the categories some row holds (ascending)."""
        if self._used is None:
            counts = np.bincount(self.codes, minlength=len(self.categories))
            self._used = np.flatnonzero(counts)
        return self._used

    def distinct(self) -> set[Any]:
        categories = self.categories
        return {categories[i] for i in self.used().tolist()}

    def table(self, mapping: Mapping[Any, Any], dtype: Any) -> np.ndarray:
        """mapping[category] per category, as an array (unused categories: 0 / None);
        KeyError if a used category is not in the mapping."""
        table = np.zeros(len(self.categories), dtype=dtype)
        categories = self.categories
        for i in self.used().tolist():
            table[i] = mapping[categories[i]]
        return table

    def mapped(self, mapping: Mapping[Any, Any], dtype: Any) -> np.ndarray:
        """mapping[value] per row, as an array (one numpy take)."""
        return self.table(mapping, dtype)[self.codes]

    def tolist(self) -> list[Any]:
        return np.array(self.categories + [None], dtype=object)[self.codes].tolist()

