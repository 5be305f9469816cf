"""Decode one stream message (the normalized message format of the JSON Lines loader).

A message that is not a JSON object, or fails the format's whole-message checks (required
fields, timestamp), is poison: it can never be loaded, so it goes to the rejects table and
the dead-letter subject at once instead of blocking the stream. The checks are the JSON Lines
loader's own (`loader.formats.messages_jsonl.decode_message`), so a message means the same
in a file and on the stream. A bad single metric is not poison: the loader rejects that
reading alone and loads the rest.

A message is decoded once: the device record and the readings (and row-level rejects, located
by the stream sequence) that `decode_message` returns here are what the sink loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from loader.formats.messages_jsonl import decode_message
from loader.formats.records import Device, Item, TimestampParser

_PARSE_TIME = TimestampParser("iso", "UTC")
RAW_TEXT_LIMIT = 2000  # of a row-level reject's raw_text, as the JSON Lines loader keeps


@dataclass(frozen=True)
class Poison:
    """Why a message can never be loaded, and which field is at fault (None: the whole)."""

    reason: str
    field: str | None = None


@dataclass(frozen=True)
class Decoded:
    """A loadable message: the JSON object, its device record and its loader items."""

    message: dict[str, Any]
    device: Device
    items: list[Item]

    @property
    def message_id(self) -> str:
        return self.message["messageId"].strip()


def decode(data: bytes, sequence: int = 0) -> Decoded | Poison:
    """The decoded message, or the Poison that says why it cannot be one. `sequence` (the
    stream sequence) locates its row-level rejects in ingest.rejects."""
    try:
        message = _loads(data)
    except UnicodeDecodeError as exc:
        return Poison(f"payload is not UTF-8 text ({exc.reason} at byte {exc.start})")
    except json.JSONDecodeError as exc:
        return Poison(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(message, dict):
        return Poison(f"a message must be a JSON object, got {type(message).__name__}")
    raw = data[:RAW_TEXT_LIMIT].decode("utf-8", errors="replace")
    device, items = decode_message(message, sequence, raw, _PARSE_TIME)
    if device is None:
        reject = items[0]
        return Poison(reject.reason, reject.field)  # type: ignore[union-attr]
    return Decoded(message, device, items)


def _loads(data: bytes) -> Any:
    """json.loads(data), faster: as text first (json.loads of bytes guesses the encoding of
    every payload, a third of its time). What is not plain UTF-8 JSON goes the bytes way, so
    the answer (a BOM, UTF-16/32, lone surrogates) or the error is the same as before."""
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        return json.loads(data)
