"""Normalized telemetry messages, one JSON object per line (a file or stdin).

{"messageId", "deviceId", "organizationId", "timestamp", "receivedAt",
 "metrics": {"temperature": 25.5, ...},
 "deviceMetadata": {"deviceType", "serialNumber", "firmwareVersion"}}

messageId, deviceId, timestamp and metrics are required; organizationId names the tenant
(default: --tenant); deviceMetadata updates the device record. The message id makes delivery
idempotent: a message whose id was loaded before is a duplicate and changes nothing. A line
that is not a valid message is rejected whole (reason and raw text); a metric whose value is not
a finite number is rejected alone and the message's other metrics load. `decode_message` is
the part the stream consumer (loader.ingest.messages) shares.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from loader.formats.records import (
    Device,
    FormatError,
    Item,
    Reading,
    Reject,
    Source,
    TimestampParser,
    is_finite,
)

SOURCE_KIND = "messages_jsonl"
REQUIRED = ("messageId", "deviceId", "timestamp")


def decode_message(message: Any, line: int, raw: str, parse_time: TimestampParser,
                   ) -> tuple[Device | None, list[Item]]:
    """The device record and the readings (or rejects) of one normalized message."""
    if not isinstance(message, dict):
        return None, [Reject(line, None, raw, "a message must be a JSON object")]
    for name in REQUIRED:
        value = message.get(name)
        if not isinstance(value, str) or not value.strip():
            what = "missing" if value is None else f"not a non-empty string: {value!r}"[:200]
            return None, [Reject(line, name, raw, f"required field {name} is {what}")]
    metrics = message.get("metrics")
    if not isinstance(metrics, dict):
        return None, [Reject(line, "metrics", raw, "required field metrics must be an object")]
    organization = message.get("organizationId")
    if organization is not None and (not isinstance(organization, str) or not organization):
        return None, [Reject(line, "organizationId", raw,
                             "organizationId must be a non-empty string when present")]
    try:
        stamp = parse_time(message["timestamp"])
    except ValueError as exc:
        return None, [Reject(line, "timestamp", raw, str(exc))]
    device_key = message["deviceId"].strip()
    message_id = message["messageId"].strip()
    metadata = message.get("deviceMetadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    device = Device(
        device_key, tenant_key=organization,
        device_type=_text(metadata.get("deviceType")),
        serial_number=_text(metadata.get("serialNumber")),
        firmware_version=_text(metadata.get("firmwareVersion")),
        message_id=message_id,
    )
    items: list[Item] = []
    for name, value in metrics.items():
        if not isinstance(name, str) or not name.strip():
            items.append(Reject(line, "metrics", raw, "empty metric name"))
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            items.append(Reject(line, f"metrics.{name}", raw,
                                f"value is not a number: {value!r}"[:300]))
        elif not is_finite(float(value)):
            items.append(Reject(line, f"metrics.{name}", raw,
                                f"value {value} is not a finite number"))
        else:
            items.append(Reading(line, stamp, device_key, name.strip(), float(value), None,
                                 message_id))
    return device, items


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def file_lines(handle: BinaryIO, name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line; FormatError on bytes that are not UTF-8."""
    for number, data in enumerate(handle, start=1):
        try:
            text = data.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(name, number, None, f"not UTF-8 text (byte {exc.start} of the line)",
                              "re-encode the file as UTF-8") from None
        if text.strip():
            yield number, text.rstrip("\r\n")


def open_jsonl(path: str, checksum: str | None, tenant_key: str = "default") -> Source:
    """A JSON Lines file, or '-' for stdin (no checksum: the message ids make it idempotent)."""
    name = "<stdin>" if path == "-" else path
    size = 0 if path == "-" else Path(path).stat().st_size
    source = Source(kind=SOURCE_KIND, name=name, checksum=checksum, items=lambda: iter(()),
                    tenant_key=tenant_key, size=size)
    parse_time = TimestampParser("iso", "UTC")

    def items() -> Iterator[Item]:
        if path == "-":
            handle: BinaryIO = sys.stdin.buffer
            yield from _messages(handle, name, source, parse_time)
        else:
            try:
                opened = open(path, "rb")  # noqa: SIM115 - closed by the with below
            except OSError as exc:
                raise FormatError(name, None, None, f"cannot open: {exc.strerror}") from None
            with opened:
                source.position = lambda: size if opened.closed else opened.tell()
                yield from _messages(opened, name, source, parse_time)

    source.items = items
    return source


def _messages(handle: BinaryIO, name: str, source: Source, parse_time: TimestampParser,
              ) -> Iterator[Item]:
    seen = False
    for number, text in file_lines(handle, name):
        seen = True
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Reject(number, None, text[:2000],
                         f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        device, items = decode_message(message, number, text[:2000], parse_time)
        if device is not None:
            known = source.devices.get(device.device_key)
            if known is None or known != device:
                source.devices[device.device_key] = device
        yield from items
    if not seen:
        raise FormatError(name, None, None, "no messages: the input is empty",
                          "expected one JSON object per line")
