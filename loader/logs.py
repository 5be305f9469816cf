"""Structured log lines through the standard `logging` module: one JSON object per line.

Every long-running tsfleet process (the stream consumer, the alert runner) logs events, not
sentences: `log("dead_lettered", sequence=42, reason="...")` becomes

    {"ts": "2026-01-28T14:30:02.125+00:00", "level": "info", "component": "consumer",
     "event": "dead_lettered", "sequence": 42, "reason": "..."}

`EventLog` is the callable the processes hold; it hands each event to a stdlib logger under
"tsfleet." with its fields, and `JsonFormatter` is the one formatter that writes them.
Library code never installs a handler: the `tsfleet` console script calls `configure()`, and
an application that embeds tsfleet routes the "tsfleet" loggers where it likes.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

ROOT_LOGGER = "tsfleet"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: ts, level, component, event, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "component": getattr(record, "component", record.name),
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class EventLog:
    """`log(event, level="info", **fields)`: one event through the logger tsfleet.<name>."""

    def __init__(self, name: str, component: str | None = None) -> None:
        self.logger = logging.getLogger(f"{ROOT_LOGGER}.{name}")
        self.component = component or name

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        self.logger.log(LEVELS[level], event,
                        extra={"component": self.component, "fields": fields})


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (click's test runner swaps it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


def configure(level: int = logging.INFO) -> None:
    """Send the "tsfleet" loggers to stderr as JSON lines (once; called by the console
    script, never on import)."""
    logger = logging.getLogger(ROOT_LOGGER)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
