"""What the consumer's hand-over (loader.stream.sink.write_payloads) makes of raw payloads: the
database parses them (ingest.parse_messages); a message it rejects whole comes back as poison
with its stream sequence, the field at fault and the reason, for the pipeline to dead-letter;
a bad metric value is one reject and the message's other readings are stored."""

from __future__ import annotations

import json

import psycopg
import pytest

from loader.stream.pipeline import Payload
from loader.stream.sink import write_payloads
from tests.consume_support import asset_worker_message

SUBJECT = "telemetry.normalized.v1"


def hand_over(conn: psycopg.Connection, *payloads: bytes, first: int = 41):
    return write_payloads(conn, [Payload(SUBJECT, None, data, first + n)
                                 for n, data in enumerate(payloads)],
                          source_name="nats:test", events=False)


def test_a_valid_message_is_written_whole(conn: psycopg.Connection) -> None:
    message = asset_worker_message()
    written = hand_over(conn, json.dumps(message).encode())
    assert written.poisoned == {}
    assert written.counts is not None
    assert (written.counts.messages_inserted, written.counts.readings_inserted) == (
        1, len(message["metrics"]))


def test_a_bad_metric_value_is_not_poison_the_database_rejects_that_reading_alone(
        conn: psycopg.Connection) -> None:
    message = asset_worker_message(metrics={"temperature": "hot", "voltage": 12.3})
    written = hand_over(conn, json.dumps(message).encode())
    assert written.poisoned == {}
    assert written.counts is not None
    assert (written.counts.readings_inserted, written.counts.rejected) == (1, 1)
    assert conn.execute("select line_number, field_name from ingest.rejects").fetchall() == [
        (41, "metrics.temperature")]


@pytest.mark.parametrize(("payload", "field", "reason"), [
    (b"{not json", None, "invalid JSON"),
    (b"\xff\xfe", None, "not UTF-8"),
    (b'{"messageId": "m\x00"}', None, "NUL byte"),
    (b"[1, 2]", None, "must be a JSON object"),
    (b'"text"', None, "must be a JSON object"),
    (json.dumps({k: v for k, v in asset_worker_message().items() if k != "messageId"}),
     "messageId", "messageId is missing"),
    (json.dumps(asset_worker_message(deviceId="")), "deviceId", "deviceId"),
    (json.dumps(asset_worker_message(metrics=[1, 2])), "metrics", "metrics must be an object"),
    (json.dumps(asset_worker_message(organizationId=7)), "organizationId", "organizationId"),
    (b'{"messageId": "m", "deviceId": "\xed\xa0\x80", "timestamp": "2026-01-28T14:30:00Z",'
     b' "metrics": {}}', None, "not UTF-8"),  # a lone surrogate: PostgreSQL cannot store it
])
def test_messages_rejected_whole_are_poison_with_their_sequence_and_field(
        conn: psycopg.Connection, payload: bytes | str, field: str | None, reason: str) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    good = json.dumps(asset_worker_message("msg-good")).encode()
    written = hand_over(conn, good, data, first=7)
    assert list(written.poisoned) == [8]
    assert written.poisoned[8].field == field
    assert reason in written.poisoned[8].reason
    assert written.counts is not None and written.counts.messages_inserted == 1


@pytest.mark.parametrize("data", [
    json.dumps(asset_worker_message(deviceId="d\u00e9vice"), ensure_ascii=False).encode(),
    json.dumps(asset_worker_message(deviceId="d\u00e9vice")).encode(),
])
def test_utf8_payloads_are_stored_as_sent(conn: psycopg.Connection, data: bytes) -> None:
    written = hand_over(conn, data)
    assert written.poisoned == {}
    assert conn.execute("select device_key from telemetry.devices").fetchall() == [
        ("d\u00e9vice",)]


def test_a_message_id_repeated_in_one_chunk_is_written_once(conn: psycopg.Connection) -> None:
    data = json.dumps(asset_worker_message("msg-1")).encode()
    written = hand_over(conn, data, data)
    assert written.counts is not None
    assert (written.counts.messages_inserted, written.counts.messages_duplicate) == (1, 1)
