"""What the consumer treats as poison (dead-lettered at once) and what it hands to the loader."""

from __future__ import annotations

import json

import pytest

from loader.formats.records import Reading, Reject
from loader.stream.messages import Decoded, Poison, decode
from tests.consume_support import asset_worker_message


def test_a_valid_message_decodes_once_to_its_device_and_readings_for_the_loader() -> None:
    message = asset_worker_message()
    decoded = decode(json.dumps(message).encode(), sequence=42)
    assert isinstance(decoded, Decoded)
    assert decoded.message == message and decoded.message_id == "msg-0001"
    assert (decoded.device.device_key, decoded.device.tenant_key) == ("device-abc-123", "org-1")
    assert decoded.device.firmware_version == "2.3.1"
    assert all(isinstance(item, Reading) for item in decoded.items)
    readings = {item.metric_name: item.value for item in decoded.items}  # type: ignore[union-attr]
    assert readings == message["metrics"]
    assert {item.line for item in decoded.items} == {42}


def test_a_bad_metric_value_is_not_poison_the_loader_rejects_that_reading_alone() -> None:
    message = asset_worker_message(metrics={"temperature": "hot", "voltage": 12.3})
    data = json.dumps(message).encode()
    decoded = decode(data, sequence=7)
    assert isinstance(decoded, Decoded)
    [reject] = [item for item in decoded.items if isinstance(item, Reject)]
    assert (reject.line, reject.field, reject.raw_text) == (7, "metrics.temperature",
                                                             data.decode())
    assert [item.value for item in decoded.items if isinstance(item, Reading)] == [12.3]


@pytest.mark.parametrize(("payload", "field", "reason"), [
    (b"{not json", None, "not valid JSON"),
    (b"\xff\xfe\x00", None, "not"),
    (b"[1, 2]", None, "must be a JSON object"),
    (b'"text"', None, "must be a JSON object"),
    (json.dumps({k: v for k, v in asset_worker_message().items() if k != "messageId"}),
     "messageId", "messageId is missing"),
    (json.dumps(asset_worker_message(deviceId="")), "deviceId", "deviceId"),
    (json.dumps(asset_worker_message(timestamp="yesterday")), "timestamp", "ISO-8601"),
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
    json.dumps(asset_worker_message()).encode("utf-8-sig"),  # a UTF-8 byte order mark
    json.dumps(asset_worker_message()).encode("utf-16"),
    json.dumps(asset_worker_message()).encode("utf-32-le"),
    json.dumps(asset_worker_message(deviceId="d\u00e9vice")).encode(),
    b'{"messageId": "m", "deviceId": "\xed\xa0\x80", "timestamp": "2026-01-28T14:30:00Z",'
    b' "metrics": {}}',  # a lone surrogate, as json.loads of bytes allows it
])
def test_payloads_decode_as_json_loads_of_the_bytes_does(data: bytes) -> None:
    decoded = decode(data)
    assert isinstance(decoded, Decoded)
    assert decoded.message == json.loads(data)
