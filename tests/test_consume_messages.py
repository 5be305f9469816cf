"""What the consumer's pre-check treats as poison (dead-lettered at once) and what it hands on
as raw payloads to the SQL path (the database checks the rest: timestamps, metric values)."""

from __future__ import annotations

import json

import pytest

from loader.stream.messages import Decoded, Poison, RawMessage, decode
from tests.consume_support import asset_worker_message


def test_a_valid_message_passes_the_pre_check_as_its_raw_payload() -> None:
    message = asset_worker_message()
    data = json.dumps(message).encode()
    decoded = decode(data, sequence=42, subject="telemetry.normalized.v1")
    assert isinstance(decoded, Decoded)
    assert decoded.message_id == "msg-0001"
    assert decoded.raw == RawMessage("telemetry.normalized.v1", None, data, 42)


def test_a_bad_metric_value_is_not_poison_the_database_rejects_that_reading_alone() -> None:
    message = asset_worker_message(metrics={"temperature": "hot", "voltage": 12.3})
    assert isinstance(decode(json.dumps(message).encode(), sequence=7), Decoded)


@pytest.mark.parametrize(("payload", "field", "reason"), [
    (b"{not json", None, "not valid JSON"),
    (b"\xff\xfe\x00", None, "not"),
    (b"[1, 2]", None, "must be a JSON object"),
    (b'"text"', None, "must be a JSON object"),
    (json.dumps({k: v for k, v in asset_worker_message().items() if k != "messageId"}),
     "messageId", "messageId is missing"),
    (json.dumps(asset_worker_message(deviceId="")), "deviceId", "deviceId"),
    (json.dumps(asset_worker_message(metrics=[1, 2])), "metrics", "metrics must be an object"),
    (json.dumps(asset_worker_message(organizationId=7)), "organizationId", "organizationId"),
])
def test_undecodable_or_incomplete_messages_are_poison_with_the_field_at_fault(
    payload: bytes | str, field: str | None, reason: str
) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    poison = decode(data)
    assert isinstance(poison, Poison)
    assert poison.field == field
    assert reason in poison.reason


@pytest.mark.parametrize("data", [
    json.dumps(asset_worker_message(deviceId="d\u00e9vice"), ensure_ascii=False).encode(),
    json.dumps(asset_worker_message(deviceId="d\u00e9vice")).encode(),
])
def test_utf8_payloads_pass_whole(data: bytes) -> None:
    decoded = decode(data)
    assert isinstance(decoded, Decoded) and decoded.raw.payload == data


@pytest.mark.parametrize("data", [
    json.dumps(asset_worker_message()).encode("utf-16"),
    b'{"messageId": "m", "deviceId": "\xed\xa0\x80", "timestamp": "2026-01-28T14:30:00Z",'
    b' "metrics": {}}',  # a lone surrogate: not UTF-8, PostgreSQL cannot store it
])
def test_payloads_that_are_not_utf8_are_poison(data: bytes) -> None:
    poison = decode(data)
    assert isinstance(poison, Poison) and "not UTF-8" in poison.reason
