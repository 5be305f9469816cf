"""Plain-text tables for the terminal (no dependency needed for this much)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return str(value)


def render(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    text_rows = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in text_rows]
    return "\n".join(lines)


def render_record(record: dict[str, object]) -> str:
    width = max(len(k) for k in record)
    return "\n".join(f"{k.ljust(width)}  {cell(v)}" for k, v in record.items())
