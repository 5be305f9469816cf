"""--gaps FILE: injected gaps, for testing the tools downstream of a bundle.

The file is YAML or JSON (JSON is YAML): a list of injections, or {"injections": [...]}.
Each injection:

    action: remove | nan | zero     # drop the bin's row, or set its value to NaN or 0
    device: dev-a                   # optional (asset: for --assets); default: every series
    metric: temperature_c           # optional; default: every metric
    bins: [2026-01-01T00:10:00Z]    # bin starts on the grid, and/or
    start: 2026-01-01T01:00:00Z     # a range of bins [start, end)
    end: 2026-01-01T01:30:00Z

Injections apply in file order after gap filling; each changed bin is reported as a warning
gap_injected_remove, gap_injected_nan or gap_injected_zero.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from loader.capture.manifest import canonical_json
from loader.capture.request import (
    CaptureArgumentError,
    CaptureRequest,
    format_time,
    parse_time,
)

ACTIONS = ("remove", "nan", "zero")
WARNING_CODES = {action: f"gap_injected_{action}" for action in ACTIONS}


@dataclass(frozen=True)
class Injection:
    action: str
    key: str | None
    metric: str | None
    bins: tuple[datetime, ...]

    def canonical(self) -> dict[str, object]:
        return {"action": self.action, "key": self.key, "metric": self.metric,
                "bins": [format_time(b) for b in self.bins]}


def _time(value: object, where: str) -> datetime:
    if isinstance(value, datetime):  # YAML reads unquoted timestamps itself
        value = value.isoformat()
    if not isinstance(value, str):
        raise CaptureArgumentError(f"{where}: expected an ISO-8601 time, got {value!r}")
    try:
        return parse_time(value, where)
    except CaptureArgumentError as exc:
        raise CaptureArgumentError(str(exc)) from None


def read_injections(path: Path, request: CaptureRequest) -> list[Injection]:
    """Parse and check a gaps file against the capture's grid. Errors say file:entry:field."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CaptureArgumentError(f"{path}: cannot read the gaps file: {exc}") from None
    entries = document.get("injections") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise CaptureArgumentError(
            f"{path}: expected a list of injections (or a mapping with key 'injections')"
        )
    key_field = request.series_kind
    grid = set(request.bin_starts())
    injections: list[Injection] = []
    for index, entry in enumerate(entries):
        where = f"{path}:injections[{index}]"
        if not isinstance(entry, dict):
            raise CaptureArgumentError(f"{where}: expected a mapping with action and bins")
        unknown = set(entry) - {"action", key_field, "metric", "bins", "start", "end"}
        if unknown:
            raise CaptureArgumentError(
                f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; allowed: "
                f"action, {key_field}, metric, bins, start, end"
            )
        action = entry.get("action")
        if action not in ACTIONS:
            raise CaptureArgumentError(f"{where}:action: must be one of {', '.join(ACTIONS)}")
        key, metric = entry.get(key_field), entry.get("metric")
        if key is not None and str(key) not in request.keys:
            raise CaptureArgumentError(f"{where}:{key_field}: {key!r} is not in this capture")
        if metric is not None and str(metric) not in request.metrics:
            raise CaptureArgumentError(f"{where}:metric: {metric!r} is not in this capture")
        bins: set[datetime] = set()
        for position, value in enumerate(entry.get("bins") or []):
            at = _time(value, f"{where}:bins[{position}]")
            if at not in grid:
                raise CaptureArgumentError(
                    f"{where}:bins[{position}]: {format_time(at)} is not a bin start of the grid "
                    f"({format_time(request.start)} every {request.bin_seconds} s until "
                    f"{format_time(request.end)})"
                )
            bins.add(at)
        if ("start" in entry) != ("end" in entry):
            raise CaptureArgumentError(f"{where}: give start and end together")
        if "start" in entry:
            first = _time(entry["start"], f"{where}:start")
            last = _time(entry["end"], f"{where}:end")
            if last <= first:
                raise CaptureArgumentError(f"{where}:end: must be after start")
            bins.update(b for b in grid if first <= b < last)
        if not bins:
            raise CaptureArgumentError(f"{where}: no bins selected; give bins or start and end")
        injections.append(Injection(action=action, key=None if key is None else str(key),
                                    metric=None if metric is None else str(metric),
                                    bins=tuple(sorted(bins))))
    return injections


def injections_sha256(injections: list[Injection]) -> str:
    return hashlib.sha256(canonical_json([i.canonical() for i in injections])).hexdigest()


def apply(
    rows: dict[datetime, float | None], key: str, metric: str, injections: list[Injection]
) -> dict[str, set[datetime]]:
    """Apply to one series' rows (bin start -> value, None = no row). Returns code -> bins."""
    changed: dict[str, set[datetime]] = {}
    for injection in injections:
        if injection.key not in (None, key) or injection.metric not in (None, metric):
            continue
        for at in injection.bins:
            if injection.action == "remove":
                if rows.get(at) is None:
                    continue
                rows[at] = None
            else:
                rows[at] = math.nan if injection.action == "nan" else 0.0
            changed.setdefault(WARNING_CODES[injection.action], set()).add(at)
    return changed
