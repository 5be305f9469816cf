"""Normalized telemetry messages, one JSON object per line (a file or stdin).

{"messageId", "deviceId", "organizationId", "timestamp", "receivedAt",
 "metrics": {"temperature": 25.5, ...},
 "deviceMetadata": {"deviceType", "serialNumber", "firmwareVersion"}}

The lines go to the database as they are; ingest.parse_messages parses and checks them
(sql/functions/22_ingest_parse.sql), as it does the stream consumer's payloads.
"""

from __future__ import annotations

import sys
from pathlib import Path

from psycopg import Cursor

from loader.formats.generic_csv import file_feed
from loader.formats.records import Source
from loader.ingest.copy import copy_lines

SOURCE_KIND = "messages_jsonl"


def open_jsonl(path: str, checksum: str | None, tenant_key: str = "default") -> Source:
    """A JSON Lines file, or '-' for stdin (no checksum: the message ids make it idempotent)."""
    if path == "-":
        def feed(cur: Cursor, progress) -> None:
            copy_lines(cur, sys.stdin.buffer, "<stdin>", progress)
        return Source(kind=SOURCE_KIND, name="<stdin>", checksum=checksum, format="messages",
                      feed=feed, tenant_key=tenant_key)
    return Source(kind=SOURCE_KIND, name=path, checksum=checksum, format="messages",
                  feed=file_feed(Path(path)), tenant_key=tenant_key,
                  size=Path(path).stat().st_size)
