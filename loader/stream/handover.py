"""Where the consumer hands its payloads to the sink: the one place they are decoded.

The consumer passes on what it received (loader.stream.pipeline.Payload: subject, Nats-Msg-Id
header, payload bytes, stream sequence). Today's sink (loader/stream/sink.py) takes decoded
messages, so this module decodes them (loader/stream/messages.py), keeps the first of each
message id within the chunk, and reports the poison by stream sequence. When the sink takes
raw payloads and the database decodes them (issue 15, item 1), `write_payloads` becomes a
direct call of the sink and this module goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from loader.stream.messages import Decoded, Poison, decode
from loader.stream.pipeline import Payload, Poisoned
from loader.stream.sink import BatchCounts, KnownDevices, write_batch


@dataclass(frozen=True)
class Written:
    """What a committed write did: the sink's counts (None: nothing was loadable), the
    payloads that can never load (by stream sequence), and repeats of a message id within
    the chunk (written once, counted as duplicates)."""

    counts: BatchCounts | None
    poisoned: dict[int, Poisoned] = field(default_factory=dict)
    repeats: int = 0


def write_payloads(conn: psycopg.Connection, payloads: Sequence[Payload], *,
                   source_name: str, events: bool, known: KnownDevices) -> Written:
    """Write the payloads as one committed batch (raises what the sink raises: nothing of
    the chunk was written then)."""
    poisoned: dict[int, Poisoned] = {}
    loadable: list[Decoded] = []
    seen: set[str] = set()
    for payload in payloads:
        decoded = decode(payload.data, payload.sequence)
        if isinstance(decoded, Poison):
            poisoned[payload.sequence] = Poisoned(decoded.reason, decoded.field)
        elif decoded.message_id not in seen:
            seen.add(decoded.message_id)
            loadable.append(decoded)
    repeats = len(payloads) - len(poisoned) - len(loadable)
    if not loadable:
        return Written(None, poisoned, repeats)
    counts = write_batch(conn, loadable, source_name=source_name, events=events, known=known)
    return Written(counts, poisoned, repeats)
