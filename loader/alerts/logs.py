"""Structured log lines: one JSON object per line on stderr (time, level, event, fields)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import TextIO


class JsonLog:
    def __init__(self, stream: TextIO | None = None, component: str = "alerts-runner") -> None:
        self.stream = stream
        self.component = component

    def __call__(self, event: str, level: str = "info", **fields: object) -> None:
        record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                  "level": level, "component": self.component, "event": event, **fields}
        stream = self.stream or sys.stderr
        stream.write(json.dumps(record, default=str) + "\n")
        stream.flush()
