"""`tsfleet consume nats`: stream ingestion from a NATS JetStream durable pull consumer."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import click

from loader.db import resolve_url
from loader.options import database_url_option
from loader.stream.settings import (
    DEFAULT_DLQ_SUBJECT,
    DEFAULT_EVENTS_SUBJECT,
    DEFAULT_SUBJECT,
    ConsumerSettings,
)

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Duration(click.ParamType):
    """200ms, 30s, 1.5s, 2m, 1h, or a plain number of seconds."""

    name = "duration"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        match = DURATION.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a duration like 200ms, 30s, 2m or 1h", param, ctx)
        number, unit = float(match.group(1)), match.group(2) or "s"
        seconds = number * UNIT_SECONDS[unit]
        if seconds <= 0:
            self.fail(f"{value!r} must be more than zero", param, ctx)
        return seconds


@click.group()
def consume() -> None:
    """Consume telemetry from a message stream and load it like `tsfleet load` does.

    Example:

    \b
        tsfleet consume nats --servers nats://localhost:4222 --stream TELEMETRY \\
            --durable asset-processor-group
    """


@consume.command("nats")
@database_url_option
@click.option("--servers", required=True, metavar="URL[,URL...]",
              help="NATS server URLs, comma-separated (nats://host:4222).")
@click.option("--stream", required=True, help="JetStream stream to read (created if missing).")
@click.option("--subject", default=DEFAULT_SUBJECT, show_default=True,
              help="Subject of the normalized telemetry messages.")
@click.option("--durable", required=True,
              help="Durable consumer name; processes with the same name share the work.")
@click.option("--batch", "batch_size", type=click.IntRange(1, 100_000), default=1000,
              show_default=True, help="Most messages per micro-batch (one transaction).")
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Micro-batches written at once by this process, each by a worker with its "
                   "own pull subscription and database connection (a batch spends most of "
                   "its time in the database: a second worker keeps the stream moving).")
@click.option("--max-wait", type=Duration(), default="200ms", show_default=True,
              help="Longest wait to fill a micro-batch.")
@click.option("--max-deliver", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Deliveries before a message the database refuses is dead-lettered.")
@click.option("--ack-wait", type=Duration(), default="30s", show_default=True,
              help="JetStream redelivers a message not acked within this time.")
@click.option("--dlq-subject", default=DEFAULT_DLQ_SUBJECT, show_default=True,
              help="Dead-letter subject for poison messages.")
@click.option("--dlq-stream", default="TELEMETRY_DLQ", show_default=True,
              help="Stream holding the dead-letter subject (created if missing).")
@click.option("--asset-events/--no-asset-events", default=False, show_default=True,
              help="Publish telemetry.asset.v1 events after commit (transactional outbox).")
@click.option("--events-subject", default=DEFAULT_EVENTS_SUBJECT, show_default=True,
              help="Subject of the asset events.")
@click.option("--events-stream", default="TELEMETRY_ASSET", show_default=True,
              help="Stream holding the asset events (created if missing).")
@click.option("--no-create-streams", is_flag=True,
              help="Never create streams; fail over to retries until they exist.")
@click.option("--stats-interval", type=Duration(), default="10s", show_default=True,
              help="How often the stats log line (and --stats-json file) is written.")
@click.option("--stats-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep the counters in this JSON file (rewritten every interval and at exit).")
@click.option("--stop-when-drained", is_flag=True,
              help="Exit once the stream has nothing left for this consumer (backfills).")
@click.option("--refresh-interval", type=Duration(), default="30s", show_default=True,
              help="Refresh the rollups for the time range of the batches committed since "
                   "the last refresh at most this often, and at shutdown (not after every "
                   "batch, which would cost 130-350 ms each). Trade-off: on the Apache "
                   "edition, and for late data on Community, rollups lag the raw readings by "
                   "up to this interval; Community's policies keep refreshing live data.")
def nats_command(database_url: str | None, servers: str, stream: str, subject: str,
                 durable: str, batch_size: int, workers: int, max_wait: float,
                 max_deliver: int,
                 ack_wait: float, dlq_subject: str, dlq_stream: str, asset_events: bool,
                 events_subject: str, events_stream: str, no_create_streams: bool,
                 stats_interval: float, stats_json: Path | None,
                 stop_when_drained: bool, refresh_interval: float) -> None:
    """Consume normalized telemetry from NATS JetStream (durable pull consumer).

    Micro-batches of up to --batch messages (or --max-wait) are written in one transaction
    through the loaders' COPY path and the processing function; the messages are acked only
    after the commit. A redelivered message is a counted duplicate and changes nothing.
    Poison messages go to ingest.rejects and --dlq-subject, then are terminated. Runs until
    SIGTERM/SIGINT (it finishes the batch in hand first). Logs are JSON lines on stderr.
    Rollups are refreshed for the accumulated range every --refresh-interval and at exit.

    Example:

    \b
        tsfleet consume nats --servers nats://localhost:4222 --stream TELEMETRY \\
            --subject telemetry.normalized.v1 --durable asset-processor-group \\
            --batch 1000 --max-wait 200ms --max-deliver 3 --ack-wait 30s --asset-events
    """
    from loader.stream.consumer import run_consumer

    url = resolve_url(database_url)
    server_list = tuple(s.strip() for s in servers.split(",") if s.strip())
    if not server_list:
        raise click.UsageError("--servers names no server (e.g. nats://localhost:4222)")
    settings = ConsumerSettings(
        servers=server_list, stream=stream, subject=subject, durable=durable,
        database_url=url, batch_size=batch_size, workers=workers, max_wait_s=max_wait,
        max_deliver=max_deliver, ack_wait_s=ack_wait, dlq_subject=dlq_subject,
        dlq_stream=dlq_stream, events_subject=events_subject if asset_events else None,
        events_stream=events_stream, create_streams=not no_create_streams,
        stats_interval_s=stats_interval, stats_json=stats_json,
        stop_when_drained=stop_when_drained, refresh_interval_s=refresh_interval,
    )
    stats = asyncio.run(run_consumer(settings))
    click.echo(json.dumps(stats.snapshot()))
