"""One CSV per series: `bin_start,value`, UTC ISO-8601 times, fixed float formatting.

Values: 15 significant digits ("%.15g": the precision a double keeps through any decimal
round trip, which is what makes capture -> load -> capture byte-identical), no trailing zeros,
exponent only for very large or small magnitudes; -0 is written 0; gaps filled with NaN are
`nan`, infinities `inf`/`-inf`. Lines end with LF; UTF-8.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from loader.capture.request import format_time

HEADER = "bin_start,value\n"
VALUE_FORMAT = ".15g"


def format_value(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if value == 0:
        return "0"
    return format(value, VALUE_FORMAT)


def render(rows: Iterable[tuple[datetime, float]]) -> bytes:
    lines = [HEADER]
    lines += [f"{format_time(start)},{format_value(value)}\n" for start, value in rows]
    return "".join(lines).encode("utf-8")


def parse(data: bytes, where: str) -> list[tuple[str, float]]:
    """The rows of a bundle CSV, checked; errors name file:line:field."""
    text = data.decode("utf-8")
    lines = text.split("\n")
    if not lines or lines[0] + "\n" != HEADER:
        raise ValueError(f"{where}:1: header must be {HEADER.strip()!r}")
    rows: list[tuple[str, float]] = []
    for number, line in enumerate(lines[1:], start=2):
        if line == "":
            continue
        parts = line.split(",")
        if len(parts) != 2:
            raise ValueError(f"{where}:{number}: expected 2 fields bin_start,value")
        try:
            rows.append((parts[0], float(parts[1])))
        except ValueError:
            raise ValueError(f"{where}:{number}:value: {parts[1]!r} is not a number") from None
    return rows
