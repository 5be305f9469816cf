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
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in text_rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def render_record(record: dict[str, object]) -> str:
    """key  value lines; a list of long texts gets one indented line per item."""
    width = max(len(k) for k in record)
    lines = []
    for key, value in record.items():
        if isinstance(value, (list, tuple)) and sum(len(cell(v)) for v in value) > 60:
            lines.append(key)
            lines += [f"  - {cell(v)}" for v in value]
        else:
            lines.append(f"{key.ljust(width)}  {cell(value)}")
    return "\n".join(lines)
