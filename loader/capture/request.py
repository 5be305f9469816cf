"""What to capture: arguments parsed, checked and put in canonical form.

The canonical form (sorted unique keys and metrics, UTC times, bin in seconds) is what the
manifest records and hashes, so two captures asked for in a different order are identical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

AGGREGATES = ("mean", "last", "min", "max", "sum")
FILLS = ("nan", "zero", "hold", "none")
SERIES_KINDS = ("device", "asset")

_BIN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_BIN_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


class CaptureArgumentError(ValueError):
    """A capture argument is wrong; the message says which and how to fix it."""


def parse_bin(text: str) -> int:
    """'5m' -> 300. Units s, m, h, d; the bin must be positive."""
    match = _BIN_RE.match(text or "")
    if not match:
        raise CaptureArgumentError(
            f"--bin {text!r}: write a whole number and a unit s, m, h or d, e.g. 30s, 5m, 1h"
        )
    seconds = int(match.group(1)) * _BIN_UNITS[match.group(2)]
    if seconds <= 0:
        raise CaptureArgumentError(f"--bin {text!r}: the bin must be longer than zero")
    return seconds


def bin_label(seconds: int) -> str:
    """300 -> '5m': the largest unit that divides the bin."""
    for unit, size in sorted(_BIN_UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: 1 s divides every whole number of seconds")


def parse_time(text: str, option: str) -> datetime:
    """ISO-8601 with Z or an offset; a time without an offset is UTC. Returns an aware UTC time."""
    raw = (text or "").strip()
    candidate = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        value = datetime.fromisoformat(candidate)
    except ValueError:
        raise CaptureArgumentError(
            f"{option} {text!r}: not an ISO-8601 time; write e.g. 2026-01-01T00:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def format_time(value: datetime) -> str:
    """UTC ISO-8601 with Z; microseconds only when there are some."""
    value = value.astimezone(timezone.utc)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def split_names(values: tuple[str, ...] | list[str]) -> list[str]:
    """Repeatable, comma-separated option values -> sorted unique names (bytewise order)."""
    names = {part.strip() for value in values for part in value.split(",")}
    return sorted(name for name in names if name)


@dataclass(frozen=True)
class CaptureRequest:
    series_kind: str
    keys: tuple[str, ...]
    metrics: tuple[str, ...]
    start: datetime
    end: datetime
    bin_seconds: int
    aggregate: str = "mean"
    fill: str = "nan"

    @classmethod
    def build(
        cls,
        *,
        devices: list[str] | tuple[str, ...] = (),
        assets: list[str] | tuple[str, ...] = (),
        metrics: list[str] | tuple[str, ...] = (),
        start: str,
        end: str,
        bin_text: str,
        aggregate: str = "mean",
        fill: str = "nan",
    ) -> CaptureRequest:
        device_keys, asset_keys = split_names(devices), split_names(assets)
        if bool(device_keys) == bool(asset_keys):
            raise CaptureArgumentError("give either --devices or --assets (one of them, not both)")
        metric_names = split_names(metrics)
        if not metric_names:
            raise CaptureArgumentError("--metrics: name at least one metric")
        if aggregate not in AGGREGATES:
            raise CaptureArgumentError(f"--aggregate must be one of {', '.join(AGGREGATES)}")
        if fill not in FILLS:
            raise CaptureArgumentError(f"--fill must be one of {', '.join(FILLS)}")
        window_start, window_end = parse_time(start, "--start"), parse_time(end, "--end")
        if window_end <= window_start:
            raise CaptureArgumentError(
                f"--end {format_time(window_end)} is not after --start {format_time(window_start)}"
            )
        bin_seconds = parse_bin(bin_text)
        span = window_end - window_start
        if span % timedelta(seconds=bin_seconds):
            raise CaptureArgumentError(
                f"the window {format_time(window_start)} to {format_time(window_end)} is not a "
                f"whole number of {bin_label(bin_seconds)} bins; move --end to a bin boundary"
            )
        return cls(
            series_kind="device" if device_keys else "asset",
            keys=tuple(device_keys or asset_keys),
            metrics=tuple(metric_names),
            start=window_start,
            end=window_end,
            bin_seconds=bin_seconds,
            aggregate=aggregate,
            fill=fill,
        )

    @property
    def bin_width(self) -> timedelta:
        return timedelta(seconds=self.bin_seconds)

    @property
    def bin_count(self) -> int:
        return (self.end - self.start) // self.bin_width

    def bin_starts(self) -> list[datetime]:
        return [self.start + i * self.bin_width for i in range(self.bin_count)]

    def parameters(self) -> dict[str, object]:
        """The canonical query parameters recorded (and hashed) in the manifest."""
        return {
            "series_kind": self.series_kind,
            "keys": list(self.keys),
            "metrics": list(self.metrics),
            "start": format_time(self.start),
            "end": format_time(self.end),
            "bin_seconds": self.bin_seconds,
            "aggregate": self.aggregate,
            "fill": self.fill,
        }
