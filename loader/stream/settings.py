"""What one `tsfleet consume nats` process was asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_SUBJECT = "telemetry.normalized.v1"
DEFAULT_DLQ_SUBJECT = "telemetry.dlq"
DEFAULT_EVENTS_SUBJECT = "telemetry.asset.v1"


@dataclass(frozen=True)
class ConsumerSettings:
    servers: tuple[str, ...]
    stream: str
    subject: str
    durable: str
    database_url: str
    batch_size: int = 1000
    max_wait_s: float = 0.2
    max_deliver: int = 3
    ack_wait_s: float = 30.0
    dlq_subject: str = DEFAULT_DLQ_SUBJECT
    dlq_stream: str = "TELEMETRY_DLQ"
    events_subject: str | None = None
    events_stream: str = "TELEMETRY_ASSET"
    create_streams: bool = True
    stats_interval_s: float = 10.0
    stats_json: Path | None = None
    stop_when_drained: bool = False
    refresh_interval_s: float = 30.0  # rollups refreshed at most this often
    workers: int = 1  # micro-batches written at once, each on its own connection

    @property
    def source_name(self) -> str:
        """How batches and rejects name this source in ingest.batches / ingest.rejects."""
        return f"nats:{self.stream}:{self.subject}"
