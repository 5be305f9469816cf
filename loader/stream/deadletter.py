"""The dead-letter path: a message that can never be loaded is recorded in ingest.rejects,
published to the dead-letter subject (with its original subject, delivery count, last error
and payload), and only then terminated, so that it is never lost and never retried again."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg

from loader.stream.pipeline import DeadLetter


def record_rejects(conn: psycopg.Connection, source_name: str,
                   letters: Sequence[DeadLetter]) -> int | None:
    """Write the rejects in their own committed batch; returns its id (None: all known)."""
    items = [{"sequence": d.sequence, "field": d.field, "raw": d.raw_text,
              "reason": d.reason} for d in letters]
    with conn.transaction():
        row = conn.execute("select ingest.record_stream_rejects(%s, %s::jsonb)",
                           (source_name, json.dumps(items))).fetchone()
    return row[0] if row else None


def dead_letter_message(letter: DeadLetter, *, stream: str, consumer: str) -> tuple[bytes, dict]:
    """The dead-letter payload and headers for one message."""
    body: dict[str, Any] = {
        "originalSubject": letter.subject,
        "stream": stream,
        "streamSequence": letter.sequence,
        "consumer": consumer,
        "deliveryCount": letter.deliveries,
        "lastError": letter.reason,
        "errorField": letter.field,
        "deadLetteredAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    try:
        body["payload"] = letter.data.decode("utf-8")
    except UnicodeDecodeError:
        body["payloadBase64"] = base64.b64encode(letter.data).decode("ascii")
    headers = {
        # Same id on a re-publish after a crash: JetStream's duplicate window drops it.
        "Nats-Msg-Id": f"dlq/{stream}/{letter.sequence}",
        "Tsfleet-Original-Subject": letter.subject,
        "Tsfleet-Delivery-Count": str(letter.deliveries),
        "Tsfleet-Error": letter.reason[:1000],
    }
    return json.dumps(body).encode(), headers
