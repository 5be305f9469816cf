"""Battery vendor API responses: a directory with assets/assets.json and telemetry/<id>.json.

assets.json = {"totalCount": N, "items": [{"deviceId", "description", "state"}, ...]}: each
item becomes a device (device_type 'battery') with its description and state.
telemetry/<deviceId>.json = {"series": [{"name": "StateOfChargePercentage",
"data": [[<epoch ms>, <number>], ...]}, ...]}: series names become metrics as given. An asset
without a telemetry file is fine. The whole directory is one batch. Each JSON file is read
whole (vendor responses are small); a file that is not valid JSON of this shape fails the
batch, a bad data point is rejected (line = its 1-based position in the series' data).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loader.formats.records import (
    Device,
    FileStart,
    FormatError,
    Item,
    Reading,
    Reject,
    Source,
    epoch_ms_to_iso,
    is_finite,
)

SOURCE_KIND = "battery_api"
DEVICE_TYPE = "battery"


def files_of(root: Path) -> list[Path]:
    """The files that make up the batch (for the checksum), in a stable order."""
    assets = root / "assets" / "assets.json"
    if not assets.is_file():
        raise FormatError(str(assets), None, None, "assets/assets.json is missing",
                          "point at the directory holding assets/ and telemetry/")
    return [assets, *sorted((root / "telemetry").glob("*.json"))]


def read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FormatError(str(path), None, None, f"cannot read: {exc.strerror}") from None
    if not raw.strip():
        raise FormatError(str(path), None, None, "the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise FormatError(str(path), line, None, f"not UTF-8 text (byte offset {exc.start})",
                          "re-encode the file as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(str(path), exc.lineno, f"column {exc.colno}",
                          f"broken JSON: {exc.msg}") from None


def read_assets(path: Path) -> list[Device]:
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise FormatError(str(path), 1, "items", 'expected {"totalCount": N, "items": [...]}')
    devices = []
    for position, item in enumerate(document["items"], start=1):
        key = item.get("deviceId") if isinstance(item, dict) else None
        if not isinstance(key, str) or not key.strip():
            raise FormatError(str(path), None, f"items[{position}].deviceId",
                              "every asset needs a deviceId string")
        devices.append(Device(key.strip(), device_type=DEVICE_TYPE,
                              description=_text(item.get("description")),
                              state=_text(item.get("state"))))
    return devices


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def open_battery_dir(root: Path, checksum: str | None, tenant_key: str = "default") -> Source:
    files = files_of(root)
    devices = read_assets(files[0])
    source = Source(kind=SOURCE_KIND, name=str(root), checksum=checksum, items=lambda: iter(()),
                    tenant_key=tenant_key, size=sum(p.stat().st_size for p in files))
    for device in devices:
        source.devices[device.device_key] = device
    done = {"bytes": files[0].stat().st_size}
    source.position = lambda: done["bytes"]

    def items() -> Iterator[Item]:
        for path in files[1:]:
            yield FileStart(str(path))
            yield from _telemetry(path, source)
            done["bytes"] += path.stat().st_size

    source.items = items
    return source


def _telemetry(path: Path, source: Source) -> Iterator[Item]:
    device_key = path.stem
    if device_key not in source.devices:
        source.devices[device_key] = Device(device_key, device_type=DEVICE_TYPE)
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("series"), list):
        raise FormatError(str(path), 1, "series", 'expected {"series": [{"name", "data"}, ...]}')
    for number, series in enumerate(document["series"], start=1):
        if (not isinstance(series, dict) or not isinstance(series.get("name"), str)
                or not series["name"].strip() or not isinstance(series.get("data"), list)):
            raise FormatError(str(path), None, f"series[{number}]",
                              'each series needs a "name" string and a "data" array')
        name = series["name"].strip()
        for position, point in enumerate(series["data"], start=1):
            raw = json.dumps(point)[:500]
            if not isinstance(point, list) or len(point) != 2:
                yield Reject(position, name, raw, "a data point must be [epoch ms, number]")
                continue
            try:
                stamp = epoch_ms_to_iso(point[0])
            except ValueError as exc:
                yield Reject(position, name, raw, str(exc))
                continue
            value = point[1]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                yield Reject(position, name, raw, f"value is not a number: {value!r}"[:300])
                continue
            if not is_finite(float(value)):
                yield Reject(position, name, raw, f"value {value} is not a finite number")
                continue
            yield Reading(position, stamp, device_key, name, float(value))
