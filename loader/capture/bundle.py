"""Capture a bundle (in memory, deterministic) and write it to a folder.

Layout of a bundle folder:
    manifest.json
    devices/<device_key>/<metric_name>.csv     (or assets/<asset_key>/<metric_name>.csv)
Keys and metric names that are not plain file names ([A-Za-z0-9._-], not starting with a dot)
are made safe and get a short hash of the original, so two names never share a path.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from loader import __version__
from loader.capture import csvfile, gaps, manifest
from loader.capture.grid import Series, read_grid, read_source_identity, read_source_summary
from loader.capture.request import CaptureRequest, bin_label, format_time
from loader.db import connect

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")
GAP_CODES = ("data_gap", *gaps.WARNING_CODES.values())


class BundleWriteError(RuntimeError):
    """The bundle folder cannot be written (exists, not empty, not a bundle...)."""


def safe_name(name: str) -> str:
    if _SAFE_NAME.match(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:80] or "_"
    return f"{cleaned}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def series_path(kind: str, key: str, metric: str) -> str:
    return f"{kind}s/{safe_name(key)}/{safe_name(metric)}.csv"


@dataclass
class Bundle:
    files: dict[str, bytes]
    manifest: dict[str, object]

    @property
    def manifest_bytes(self) -> bytes:
        return manifest.render_manifest(self.manifest)

    def plan(self) -> list[dict[str, object]]:
        """Per file: path, rows, gap bins, bytes (for --dry-run)."""
        gap_counts: dict[str, int] = {}
        for entry in self.manifest["warnings"]:  # type: ignore[union-attr]
            if entry["code"] == "data_gap":
                gap_counts[entry["file"]] = int(entry["count"])
        return [
            {"path": f["path"], "rows": f["rows"], "gap_bins": gap_counts.get(f["path"], 0),
             "bytes": f["bytes"]}
            for f in self.manifest["files"]  # type: ignore[union-attr]
        ]


def _series_output(
    one: Series, request: CaptureRequest, injections: list[gaps.Injection], path: str
) -> tuple[bytes, int, list[dict[str, object]]]:
    width = request.bin_width
    rows: dict[datetime, float | None] = {}
    gap_bins: list[datetime] = []
    filled: dict[str, list[datetime]] = {"nan_fill": [], "zero_fill": [], "hold_fill": []}
    partial: list[datetime] = []
    out_of_range: list[datetime] = []
    out_of_range_readings = 0
    for b in one.bins:
        rows[b.start] = b.value
        if b.reading_count == 0:
            gap_bins.append(b.start)
            if request.fill == "zero":
                filled["zero_fill"].append(b.start)
            elif request.fill == "nan" or (request.fill == "hold" and math.isnan(b.value)):
                filled["nan_fill"].append(b.start)
            elif request.fill == "hold":
                filled["hold_fill"].append(b.start)
        elif one.expected_count and b.reading_count < one.expected_count:
            partial.append(b.start)
        if b.out_of_range_count:
            out_of_range.append(b.start)
            out_of_range_readings += b.out_of_range_count
    warnings = []
    if gap_bins:
        warnings.append(manifest.warning("data_gap", path, gap_bins, width))
    for code, bins in filled.items():
        if bins:
            warnings.append(manifest.warning(code, path, bins, width))
    if partial:
        warnings.append(manifest.warning(
            "partial_bin", path, partial, width,
            {"expected_per_bin": one.expected_count, "expected_from": one.expected_from},
        ))
    if out_of_range:
        warnings.append(manifest.warning(
            "out_of_range", path, out_of_range, width,
            {"readings": out_of_range_readings, "valid_min": one.valid_min,
             "valid_max": one.valid_max},
        ))
    for code, bins in gaps.apply(rows, one.key, one.metric, injections).items():
        warnings.append(manifest.warning(code, path, bins, width))
    kept = [(at, value) for at, value in sorted(rows.items()) if value is not None]
    return csvfile.render(kept), len(kept), warnings


def build(
    request: CaptureRequest,
    grid: list[Series],
    source_rows: dict[str, object],
    source: dict[str, object],
    injections: list[gaps.Injection],
) -> Bundle:
    files: dict[str, bytes] = {}
    entries: list[dict[str, object]] = []
    warnings: list[dict[str, object]] = []
    for one in grid:
        path = series_path(one.kind, one.key, one.metric)
        data, row_count, series_warnings = _series_output(one, request, injections, path)
        files[path] = data
        entry: dict[str, object] = {
            "path": path, one.kind: one.key, "tenant": one.tenant, "metric": one.metric,
            "unit": one.unit, "rows": row_count, "bytes": len(data),
            "sha256": manifest.sha256_hex(data),
        }
        if one.kind == "asset":
            entry["asset_type"] = one.asset_type
        entries.append(entry)
        warnings.extend(series_warnings)
    entries.sort(key=lambda e: str(e["path"]))
    warnings.sort(key=lambda w: (str(w["file"]), str(w["code"])))
    parameters = {**request.parameters(),
                  "gaps": [i.canonical() for i in injections]}
    body: dict[str, object] = {
        "schema_version": manifest.SCHEMA_VERSION,
        "kind": manifest.BUNDLE_KIND,
        "series_kind": request.series_kind,
        "window": {"start": format_time(request.start), "end": format_time(request.end)},
        "grid": {
            "bin": bin_label(request.bin_seconds),
            "bin_seconds": request.bin_seconds,
            "bin_count": request.bin_count,
            "aggregate": request.aggregate,
            "fill": request.fill,
            "time_format": "UTC ISO-8601, bin start, e.g. 2026-01-01T00:05:00Z",
            "value_format": "%" + csvfile.VALUE_FORMAT + " (nan for NaN)",
        },
        "files": entries,
        "warnings": warnings,
        "provenance": {
            "tsfleet_version": __version__,
            "source": source,
            "query": {
                "function": "telemetry.bin_readings",
                "parameters": parameters,
                "sha256": manifest.sha256_hex(manifest.canonical_json(parameters)),
            },
            "source_rows": source_rows,
            "bundle_sha256": manifest.bundle_checksum(
                (str(e["path"]), str(e["sha256"])) for e in entries
            ),
        },
    }
    return Bundle(files=files, manifest=manifest.seal(body))


def _snapshot_connection(url: str) -> psycopg.Connection:
    conn = connect(url)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def _summary_in_snapshot(url: str, snapshot: str, request: CaptureRequest) -> dict[str, object]:
    """The source summary on a second connection that sees exactly the first one's snapshot."""
    with _snapshot_connection(url) as conn, conn.transaction():
        conn.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot)))
        return read_source_summary(conn, request)


def capture(
    url: str, request: CaptureRequest, injections: list[gaps.Injection] | None = None
) -> Bundle:
    """Read the grid and the source summary from one snapshot, and build the bundle in memory.

    The two queries run at the same time on two connections sharing an exported snapshot
    (pg_export_snapshot), so they see the same rows while the server works on both.
    """
    with _snapshot_connection(url) as conn, conn.transaction():
        row = conn.execute("select pg_catalog.pg_export_snapshot()").fetchone()
        assert row is not None
        with ThreadPoolExecutor(max_workers=1) as pool:
            summary = pool.submit(_summary_in_snapshot, url, row[0], request)
            try:
                grid = read_grid(conn, request)
            except BaseException:
                summary.exception()  # wait for it; the grid's error is the one to report
                raise
            source_rows = summary.result()
        source = read_source_identity(conn, url)
    return build(request, grid, source_rows, source, injections or [])


def write(bundle: Bundle, out: Path, replace: bool = False) -> None:
    """Write the bundle to `out` atomically (a temporary sibling folder, then a rename).

    `out` must not exist or be empty; with replace=True an existing bundle (a folder with a
    manifest.json) is replaced.
    """
    old: Path | None = None
    if out.exists():
        if not out.is_dir():
            raise BundleWriteError(f"{out}: exists and is not a folder; choose another --out")
        if any(out.iterdir()):
            if not replace:
                raise BundleWriteError(
                    f"{out}: folder is not empty; choose a new --out or pass --force to "
                    "replace a previous bundle"
                )
            if not (out / manifest.MANIFEST_NAME).is_file():
                raise BundleWriteError(
                    f"{out}: not a bundle (no {manifest.MANIFEST_NAME}); --force replaces "
                    "only a previous bundle; choose another --out"
                )
        old = out
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if temp.exists():
        shutil.rmtree(temp)
    try:
        for path, data in bundle.files.items():
            target = temp / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (temp / manifest.MANIFEST_NAME).write_bytes(bundle.manifest_bytes)
        if old is not None:
            trash = out.parent / f".{out.name}.old-{os.getpid()}"
            old.rename(trash)
            temp.rename(out)
            shutil.rmtree(trash)
        else:
            temp.rename(out)
    finally:
        if temp.exists():
            shutil.rmtree(temp)
