"""Already-parsed normalized messages as one batch: the stream consumer's entry point.

The streaming consumer (loader/stream/) decodes messages itself and hands a micro-batch here:
they are written in one transaction through the same COPY path, SQL checks, message-id
deduplication and asset processing as `tsfleet load messages`, and the counts come back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg

from loader.formats.messages_jsonl import decode_message
from loader.formats.records import Item, Source, TimestampParser
from loader.ingest.batch import BatchResult, LoadOptions, load_source

STREAM_KIND = "stream"


def load_messages(
    conn: psycopg.Connection,
    messages: Sequence[Mapping[str, Any]],
    *,
    source_name: str,
    source_kind: str = STREAM_KIND,
    tenant_key: str = "default",
    line_numbers: Sequence[int] | None = None,
    options: LoadOptions | None = None,
) -> BatchResult:
    """Write `messages` (normalized message dicts) as one batch; return its counts.

    `line_numbers` (e.g. stream sequence numbers) locate rejected messages in ingest.rejects;
    by default the 1-based position in `messages`. A message whose messageId was loaded before
    is a duplicate and changes nothing. `conn` must be in autocommit mode. Raises BatchFailed
    (after recording a failed batch row) when the batch cannot be written; nothing of it is
    then in the database, so the caller may retry the same messages.

    Example:

        with psycopg.connect(url, autocommit=True) as conn:
            result = load_messages(conn, [message], source_name="nats:telemetry.normalized.v1")
            print(result.rows_inserted, result.messages_duplicate)
    """
    if line_numbers is not None and len(line_numbers) != len(messages):
        raise ValueError("line_numbers must have one number per message")
    source = Source(kind=source_kind, name=source_name, checksum=None, items=lambda: iter(()),
                    tenant_key=tenant_key)
    parse_time = TimestampParser("iso", "UTC")

    def items() -> Iterator[Item]:
        for position, message in enumerate(messages):
            line = line_numbers[position] if line_numbers is not None else position + 1
            raw = json.dumps(message, default=str, ensure_ascii=False)[:2000]
            device, decoded = decode_message(dict(message) if isinstance(message, Mapping)
                                             else message, line, raw, parse_time)
            if device is not None:
                source.devices[device.device_key] = device
            yield from decoded

    source.items = items
    return load_source(conn, source, options)
