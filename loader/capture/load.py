"""`tsfleet bundle load`: a bundle's binned values back into the database as readings.

The bundle is verified first. Each CSV row becomes one reading at its bin start, with the
ingest batch as its provenance, except rows that are not data: bins the manifest lists as
data_gap (filled values) or gap_injected_* (injected), and NaN values. One batch per bundle:
source_kind 'bundle', checksum = provenance.bundle_sha256, so loading a bundle again is a
no-op (the ingest path records a 'skipped' batch row).

The SQL is in sql/functions/61_capture_load.sql (security definer functions, so a member of
tsfleet_ingest can load); this module reads the bundle and passes its columns as arrays.

Device bundles go through the shared ingest path (loader.ingest.batch.load_source: one
transaction with the checksum registry, registration, dedup, rejects, asset processing and
commit; then the rollup refresh of the loaded range): their rows go to the database as narrow
CSV lines numbered as in the bundle's files. Just before it, in its own short transaction,
ingest.register_bundle_keys registers the manifest's tenants, devices (with their tenant) and
metrics (with their units) if missing: ingest would otherwise infer units from names, and a
metric without any reading in the bundle would not exist.

Asset bundles write telemetry.asset_readings, which the ingest path does not, in one call of
ingest.load_asset_bundle (one transaction: ingest.begin_batch, registration, the readings,
ingest.commit_batch). Their source device is one device per tenant named
bundle:<first 12 hex of the bundle checksum>:<tenant>, since a binned value has no single
source. An existing asset reading with the same key is kept (duplicate if equal, conflict if
not).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from loader import __version__
from loader.capture import csvfile, manifest
from loader.capture.bundle import GAP_CODES
from loader.capture.verify import verify
from loader.db import connect
from loader.formats.records import Source
from loader.ingest.batch import BatchFailed, load_source
from loader.ingest.copy import copy_rows

NARROW = {"layout": "narrow", "header": ["time", "device", "metric", "value"]}

REGISTER_KEYS_SQL = "select ingest.register_bundle_keys(%s, %s, %s, %s, %s)"

COMMITTED_BATCH_SQL = "select ingest.committed_batch_id('bundle', %s)"

LOAD_ASSETS_SQL = """
select batch_id, is_already_loaded, rows_read, rows_inserted, rows_duplicate, rows_conflict
from ingest.load_asset_bundle(
    %s, %s, %s, %s, %s, %s, %s, %s, %s::timestamptz[], %s, %s, %s::double precision[]
)
"""


class BundleLoadError(RuntimeError):
    """The bundle cannot be loaded; the message says why and where."""


@dataclass
class LoadResult:
    batch_id: int
    already_loaded: bool
    series_kind: str
    rows_read: int = 0
    rows_inserted: int = 0
    rows_duplicate: int = 0
    rows_conflict: int = 0
    rows_rejected: int = 0
    rows_skipped: int = 0
    asset_rows_inserted: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class BundleContent:
    manifest: dict[str, object]
    kind: str
    checksum: str
    series: list[tuple]  # (tenant, key, asset_type, metric, unit)
    readings: list[tuple]  # (path, csv line, bin start text, key, metric, value)
    skipped: int  # CSV rows that are not data (gap-filled, injected, NaN)


def read_bundle(folder: Path) -> BundleContent:
    """The verified manifest, its series and the readings to load."""
    checked = verify(folder)
    if not checked.ok or checked.manifest is None:
        raise BundleLoadError(
            f"{folder}: the bundle does not verify; nothing loaded:\n  "
            + "\n  ".join(checked.problems)
        )
    body = checked.manifest
    kind = body.get("series_kind")
    if kind not in ("device", "asset"):
        raise BundleLoadError(f"{folder}/manifest.json:series_kind: must be device or asset")
    series: list[tuple] = []
    readings: list[tuple] = []
    skipped = 0
    for entry in body["files"]:  # type: ignore[union-attr]
        path = entry["path"]
        try:
            key, tenant, metric = entry[kind], entry["tenant"], entry["metric"]
        except KeyError as exc:
            raise BundleLoadError(
                f"{folder}/manifest.json:files[{path}]:{exc.args[0]}: missing"
            ) from None
        series.append((tenant, key, entry.get("asset_type"), metric, entry.get("unit")))
        not_data = manifest.bins_in_warnings(body, path, GAP_CODES)
        try:
            rows = csvfile.parse((folder / path).read_bytes(), f"{folder}/{path}")
        except ValueError as exc:
            raise BundleLoadError(str(exc)) from None
        for line, (at, value) in enumerate(rows, start=2):
            if at in not_data or math.isnan(value):
                skipped += 1
                continue
            readings.append((path, line, at, key, metric, value))
    checksum = str(body["provenance"]["bundle_sha256"])  # type: ignore[index]
    return BundleContent(manifest=body, kind=str(kind), checksum=checksum, series=series,
                         readings=readings, skipped=skipped)


def load(url: str, folder: Path) -> LoadResult:
    content = read_bundle(folder)
    if content.kind == "device":
        return _load_devices(url, folder, content)
    return _load_assets(url, folder, content)


def _preregister(conn: psycopg.Connection, content: BundleContent) -> None:
    units: dict[str, str | None] = {}
    for _tenant, _key, _type, metric, unit in content.series:
        units.setdefault(metric, unit)
    tenants: dict[str, str] = {}
    if content.kind == "device":
        for tenant, key, _type, _metric, _unit in content.series:
            tenants.setdefault(key, tenant)
    devices = sorted(tenants)
    metrics = sorted(units)
    with conn.transaction():
        conn.execute(REGISTER_KEYS_SQL, [
            sorted({item[0] for item in content.series}), metrics, [units[m] for m in metrics],
            devices, [tenants[k] for k in devices]])


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _rows(content: BundleContent) -> Iterator[tuple[int, int, None, None, str]]:
    """(file number, line, -, -, narrow CSV line) per reading, for ingest.parse_csv."""
    numbers: dict[str, int] = {}
    for path, line, at, key, metric, value in content.readings:
        number = numbers.setdefault(path, len(numbers) + 1)
        yield number, line, None, None, f"{at},{_quoted(key)},{_quoted(metric)},{value!r}"


def _load_devices(url: str, folder: Path, content: BundleContent) -> LoadResult:
    files = list(dict.fromkeys(f"{folder}/{path}" for path, *_ in content.readings))
    source = Source(kind="bundle", name=str(folder.resolve()), checksum=content.checksum,
                    format="csv", options=NARROW, names=files or [str(folder)],
                    feed=lambda cur, _progress: copy_rows(cur, _rows(content)))
    with connect(url, autocommit=True) as conn:
        _preregister(conn, content)
        try:
            result = load_source(conn, source)
        except BatchFailed as exc:
            raise BundleLoadError(
                f"{folder}: loading failed, nothing was written (batch {exc.result.batch_id}): "
                f"{exc.result.error}"
            ) from None
        if result.status == "skipped":
            row = conn.execute(COMMITTED_BATCH_SQL, [content.checksum]).fetchone()
            return LoadResult(batch_id=row[0] if row and row[0] else result.batch_id or 0,
                              already_loaded=True, series_kind="device")
    assert result.batch_id is not None
    return LoadResult(batch_id=result.batch_id, already_loaded=False, series_kind="device",
                      rows_read=result.rows_read, rows_inserted=result.rows_inserted,
                      rows_duplicate=result.rows_duplicate, rows_conflict=result.rows_conflict,
                      rows_rejected=result.rows_rejected, rows_skipped=content.skipped,
                      asset_rows_inserted=result.asset_rows_inserted,
                      warnings=list(result.warnings))


def _load_assets(url: str, folder: Path, content: BundleContent) -> LoadResult:
    # Column arrays: series (tenant, key, asset type, metric, unit), readings (bin start, key,
    # metric, value), as ingest.load_asset_bundle takes them.
    series = [[item[i] for item in content.series] for i in range(5)]
    readings = [[item[i] for item in content.readings] for i in range(2, 6)]
    with connect(url) as conn, conn.transaction():
        row = conn.execute(LOAD_ASSETS_SQL, [
            str(folder.resolve()), content.checksum, __version__, *series, *readings,
        ]).fetchone()
    assert row is not None
    batch_id, already_loaded, rows_read, inserted, duplicate, conflict = row
    if already_loaded:
        return LoadResult(batch_id=batch_id, already_loaded=True, series_kind="asset")
    return LoadResult(batch_id=batch_id, already_loaded=False, series_kind="asset",
                      rows_read=rows_read, rows_inserted=inserted,
                      rows_duplicate=duplicate, rows_conflict=conflict,
                      rows_skipped=content.skipped)
