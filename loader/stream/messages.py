"""Stream messages as they arrive: raw payloads for the one SQL write path.

`RawMessage` is what the consumer hands to `loader.stream.sink.write_messages`: the subject,
the message id header (Nats-Msg-Id, if any), the payload bytes and the stream sequence (the
line number of its rejects). The database parses and checks the payload
(ingest.parse_messages): Python does not decode the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawMessage:
    """One stream message, as received."""

    subject: str | None
    message_id: str | None
    payload: bytes
    sequence: int
