"""Counters of a consumer process, its --stats-json file, and its event log."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from loader.logs import EventLog

# The consumer's structured log lines (loader/logs.py): log_event("dead_lettered", sequence=42)
log_event = EventLog("consumer")


@dataclass
class ConsumerStats:
    """What the consumer did since it started; `snapshot()` is the stats line and JSON file."""

    started: float = field(default_factory=time.monotonic)
    messages_received: int = 0
    processed: int = 0
    duplicates: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    batches: int = 0
    readings_inserted: int = 0
    redelivered: int = 0
    retried_batches: int = 0
    database_reconnects: int = 0
    nats_disconnects: int = 0
    events_enqueued: int = 0
    events_published: int = 0
    rollup_refreshes: int = 0
    rollup_refresh_failures: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def record_batch(self, seconds: float) -> None:
        self.batches += 1
        self.latencies_ms.append(seconds * 1000.0)
        if len(self.latencies_ms) > 10_000:  # keep memory bounded on long runs
            del self.latencies_ms[:5_000]

    def _percentile(self, fraction: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)

    def snapshot(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        # Every int field, in the order declared above.
        counters = {f.name: getattr(self, f.name) for f in fields(self) if f.type == "int"}
        return {
            "uptime_s": round(elapsed, 3),
            **counters,
            "batch_latency_ms": {
                "p50": self._percentile(0.50),
                "p95": self._percentile(0.95),
                "max": round(max(self.latencies_ms), 2) if self.latencies_ms else None,
                "last": round(self.latencies_ms[-1], 2) if self.latencies_ms else None,
            },
            "messages_per_s": round(self.messages_received / elapsed, 1) if elapsed else 0.0,
        }

    def write_json(self, path: Path | None) -> None:
        """Replace the stats file atomically, so a reader never sees half a file."""
        if path is None:
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.snapshot(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
