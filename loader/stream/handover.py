"""Where the consumer hands its payloads to the sink: raw, as received.

The consumer passes on what it received (loader.stream.pipeline.Payload: subject, Nats-Msg-Id
header, payload bytes, stream sequence). The sink (loader/stream/sink.py) COPYs them as they
are and the database parses and checks them (ingest.parse_messages): Python decodes no JSON.
A message id repeated within the chunk is written once and counted as a duplicate there.
The messages rejected whole come back as the poison, by stream sequence, for the pipeline to
dead-letter and terminate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from loader.stream.messages import RawMessage
from loader.stream.pipeline import Payload, Poisoned
from loader.stream.sink import BatchCounts, write_messages


@dataclass(frozen=True)
class Written:
    """What a committed write did: the sink's counts and the payloads that can never load
    (by stream sequence)."""

    counts: BatchCounts | None
    poisoned: dict[int, Poisoned] = field(default_factory=dict)
    repeats: int = 0  # counted by the database now (BatchCounts.messages_duplicate)


def write_payloads(conn: psycopg.Connection, payloads: Sequence[Payload], *,
                   source_name: str, events: bool) -> Written:
    """Write the payloads as one committed batch (raises what the sink raises: nothing of
    the chunk was written then)."""
    counts = write_messages(
        conn, [RawMessage(p.subject, p.message_id, p.data, p.sequence) for p in payloads],
        source_name=source_name, events=events)
    poisoned = {m.sequence: Poisoned(m.reason, m.field) for m in counts.poison}
    return Written(counts, poisoned)
