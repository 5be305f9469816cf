"""Durations as operators write them: 500ms, 10s, 5m, 2h, 1d (or plain seconds)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str) -> timedelta:
    """'10s' -> 10 seconds. Raises ValueError naming the accepted forms."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use e.g. 500ms, 10s, 5m, 2h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])
