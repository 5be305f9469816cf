"""Stream messages as they arrive: raw payloads for the one SQL write path.

`RawMessage` is what the consumer hands to `loader.stream.sink.write_messages`: the subject,
the message id header (Nats-Msg-Id, if any), the payload bytes and the stream sequence (the
line number of its rejects). The database parses and checks the payload
(ingest.parse_messages): Python does not decode the JSON.

`decode` is the consumer's present pre-check (poison is dead-lettered at once, and a message
id repeated within one fetch is written once): it reads the payload's JSON for that only. It
goes when the consumer takes the poison list from write_messages instead (issue 15, item 4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawMessage:
    """One stream message, as received."""

    subject: str | None
    message_id: str | None
    payload: bytes
    sequence: int


@dataclass(frozen=True)
class Poison:
    """Why a message can never be loaded, and which field is at fault (None: the whole)."""

    reason: str
    field: str | None = None


@dataclass(frozen=True)
class Decoded:
    """A message that passed the pre-check: its id and the raw message to write."""

    message_id: str
    raw: RawMessage


REQUIRED = ("messageId", "deviceId", "timestamp")


def decode(data: bytes, sequence: int = 0, subject: str | None = None) -> Decoded | Poison:
    """The message, or the Poison that says why it cannot be one."""
    try:
        message: Any = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Poison(f"payload is not UTF-8 text ({exc.reason} at byte {exc.start})")
    except json.JSONDecodeError as exc:
        return Poison(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(message, dict):
        return Poison(f"a message must be a JSON object, got {type(message).__name__}")
    for name in REQUIRED:
        value = message.get(name)
        if not isinstance(value, str) or not value.strip():
            what = "missing" if value is None else f"not a non-empty string: {value!r}"[:200]
            return Poison(f"required field {name} is {what}", name)
    if not isinstance(message.get("metrics"), dict):
        return Poison("required field metrics must be an object", "metrics")
    organization = message.get("organizationId")
    if organization is not None and (not isinstance(organization, str) or not organization):
        return Poison("organizationId must be a non-empty string when present", "organizationId")
    return Decoded(message["messageId"].strip(), RawMessage(subject, None, data, sequence))
