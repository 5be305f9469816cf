"""`tsfleet bundle load`: a bundle's binned values back into the database as readings.

The bundle is verified first. Each CSV row becomes one reading at its bin start, with the
ingest batch as its provenance, except rows that are not data: bins the manifest lists as
data_gap (filled values) or gap_injected_* (injected), and NaN values. One batch per bundle:
source_kind 'bundle', checksum = provenance.bundle_sha256, so loading a bundle again is a
no-op (the ingest path records a 'skipped' batch row).

Device bundles go through the shared ingest path (loader.ingest.batch.load_source: one
transaction with the checksum registry, registration, dedup, rejects, asset processing and
commit; then the rollup refresh of the loaded range): their rows go to the database as narrow
CSV lines numbered as in the bundle's files. Just before it, in its own short transaction,
the manifest's tenants, devices (with their tenant) and metrics (with their units) are
registered if missing (insert ... on conflict do nothing): ingest would otherwise infer units
from names, and a metric without any reading in the bundle would not exist.

Asset bundles write telemetry.asset_readings, which the ingest path does not, with the SQL
below, in one transaction (ingest.begin_batch/commit_batch are not
used because they count device readings; a concurrent load of the same bundle waits on the
checksum registry's unique index). Their source device is one device per tenant named
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

PREREGISTER_SQL = [
    """
    insert into telemetry.tenants (tenant_key)
    select distinct s.tenant_key from unnest(%(tenants)s::text[]) as s (tenant_key)
    where not exists (select from telemetry.tenants as t where t.tenant_key = s.tenant_key)
    on conflict (tenant_key) do nothing
    """,
    """
    insert into telemetry.metrics (metric_name, unit)
    select s.metric_name, s.unit
    from unnest(%(metrics)s::text[], %(units)s::text[]) as s (metric_name, unit)
    where not exists (select from telemetry.metrics as m where m.metric_name = s.metric_name)
    order by s.metric_name
    on conflict (metric_name) do nothing
    """,
    """
    insert into telemetry.devices (tenant_id, device_key)
    select t.tenant_id, s.device_key
    from unnest(%(devices)s::text[], %(device_tenants)s::text[]) as s (device_key, tenant_key)
    inner join telemetry.tenants as t on s.tenant_key = t.tenant_key
    where not exists (select from telemetry.devices as d where d.device_key = s.device_key)
    order by s.device_key
    on conflict (device_key) do nothing
    """,
]

FIND_BATCH_SQL = """
select batch_id from ingest.batches
where source_kind = 'bundle' and checksum = %(checksum)s and status = 'committed'
"""

NEW_BATCH_SQL = """
insert into ingest.batches (source_kind, source_name, checksum, loader_version, rows_read)
values ('bundle', %(name)s, %(checksum)s, %(version)s, %(rows)s)
returning batch_id
"""

TEMP_TABLES_SQL = [
    """
    create temporary table bundle_series (
        tenant_key text not null,
        series_key text not null,
        asset_type_key text,
        metric_name text not null,
        unit text
    ) on commit drop
    """,
    """
    create temporary table bundle_rows (
        recorded_at timestamptz not null,
        series_key text not null,
        metric_name text not null,
        value double precision not null
    ) on commit drop
    """,
]

REGISTER_SQL = [
    """
    insert into telemetry.tenants (tenant_key)
    select distinct bs.tenant_key from bundle_series as bs
    on conflict (tenant_key) do nothing
    """,
    """
    insert into telemetry.metrics (metric_name, unit)
    select distinct on (bs.metric_name) bs.metric_name, bs.unit
    from bundle_series as bs
    order by bs.metric_name, bs.unit
    on conflict (metric_name) do nothing
    """,
]

REGISTER_ASSETS_SQL = [
    """
    insert into telemetry.asset_types (asset_type_key)
    select distinct bs.asset_type_key from bundle_series as bs
    on conflict (asset_type_key) do nothing
    """,
    """
    insert into telemetry.assets (tenant_id, asset_key, asset_type_id)
    select distinct on (bs.series_key) t.tenant_id, bs.series_key, aty.asset_type_id
    from bundle_series as bs
    inner join telemetry.tenants as t on bs.tenant_key = t.tenant_key
    inner join telemetry.asset_types as aty on bs.asset_type_key = aty.asset_type_key
    order by bs.series_key, t.tenant_id
    on conflict (asset_key) do nothing
    """,
    """
    insert into telemetry.devices (tenant_id, device_key, description)
    select distinct t.tenant_id, %(prefix)s || t.tenant_key, 'source of bundle asset readings'
    from bundle_series as bs
    inner join telemetry.tenants as t on bs.tenant_key = t.tenant_key
    on conflict (device_key) do nothing
    """,
]

INSERT_ASSET_READINGS_SQL = """
insert into telemetry.asset_readings (
    recorded_at, asset_id, metric_id, source_device_id, value, quality, batch_id
)
select br.recorded_at, a.asset_id, m.metric_id, d.device_id, br.value, 'good', %(batch_id)s
from bundle_rows as br
inner join telemetry.assets as a on br.series_key = a.asset_key
inner join telemetry.tenants as t on a.tenant_id = t.tenant_id
inner join telemetry.devices as d on d.device_key = %(prefix)s || t.tenant_key
inner join telemetry.metrics as m on br.metric_name = m.metric_name
on conflict (recorded_at, asset_id, metric_id, source_device_id) do nothing
"""

ASSET_CONFLICTS_SQL = """
select count(*)
from bundle_rows as br
inner join telemetry.assets as a on br.series_key = a.asset_key
inner join telemetry.tenants as t on a.tenant_id = t.tenant_id
inner join telemetry.devices as d on d.device_key = %(prefix)s || t.tenant_key
inner join telemetry.metrics as m on br.metric_name = m.metric_name
inner join telemetry.asset_readings as ar
    on
        ar.recorded_at = br.recorded_at and ar.asset_id = a.asset_id
        and ar.metric_id = m.metric_id and ar.source_device_id = d.device_id
where ar.batch_id <> %(batch_id)s and ar.value is distinct from br.value
"""

COMMIT_BATCH_SQL = """
update ingest.batches
set
    status = 'committed',
    rows_inserted = %(inserted)s,
    asset_rows_inserted = %(asset_inserted)s,
    rows_duplicate = %(duplicate)s,
    rows_conflict = %(conflict)s,
    min_recorded_at = (select min(br.recorded_at) from bundle_rows as br),
    max_recorded_at = (select max(br.recorded_at) from bundle_rows as br),
    finished_at = clock_timestamp()
where batch_id = %(batch_id)s
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
    prefix = f"bundle:{content.checksum[:12]}:"
    return _load_assets(url, folder, content, prefix)


def _preregister(conn: psycopg.Connection, content: BundleContent) -> None:
    units: dict[str, str | None] = {}
    for _tenant, _key, _type, metric, unit in content.series:
        units.setdefault(metric, unit)
    tenants: dict[str, str] = {}
    if content.kind == "device":
        for tenant, key, _type, _metric, _unit in content.series:
            tenants.setdefault(key, tenant)
    params = {
        "devices": sorted(tenants),
        "device_tenants": [tenants[k] for k in sorted(tenants)],
        "tenants": sorted({item[0] for item in content.series}),
        "metrics": sorted(units),
        "units": [units[m] for m in sorted(units)],
    }
    with conn.transaction():
        for statement in PREREGISTER_SQL:
            conn.execute(statement, params)


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
            row = conn.execute(FIND_BATCH_SQL, {"checksum": content.checksum}).fetchone()
            return LoadResult(batch_id=row[0] if row else result.batch_id or 0,
                              already_loaded=True, series_kind="device")
    assert result.batch_id is not None
    return LoadResult(batch_id=result.batch_id, already_loaded=False, series_kind="device",
                      rows_read=result.rows_read, rows_inserted=result.rows_inserted,
                      rows_duplicate=result.rows_duplicate, rows_conflict=result.rows_conflict,
                      rows_rejected=result.rows_rejected, rows_skipped=content.skipped,
                      asset_rows_inserted=result.asset_rows_inserted,
                      warnings=list(result.warnings))


def _load_assets(url: str, folder: Path, content: BundleContent, prefix: str) -> LoadResult:
    readings = [(at, key, metric, value) for _p, _l, at, key, metric, value in content.readings]
    with connect(url) as conn, conn.transaction(), conn.cursor() as cur:
        row = cur.execute(FIND_BATCH_SQL, {"checksum": content.checksum}).fetchone()
        if row is not None:
            return LoadResult(batch_id=row[0], already_loaded=True, series_kind="asset")
        cur.execute(NEW_BATCH_SQL, {"name": str(folder.resolve()), "checksum": content.checksum,
                                    "version": __version__, "rows": len(readings)})
        batch_id = cur.fetchone()[0]  # type: ignore[index]
        for statement in TEMP_TABLES_SQL:
            cur.execute(statement)
        with cur.copy("copy bundle_series from stdin") as copy:
            for item in content.series:
                copy.write_row(item)
        with cur.copy("copy bundle_rows from stdin") as copy:
            for item in readings:
                copy.write_row(item)
        for statement in REGISTER_SQL:
            cur.execute(statement)
        params = {"batch_id": batch_id, "prefix": prefix}
        for statement in REGISTER_ASSETS_SQL:
            cur.execute(statement, params if "%(prefix)s" in statement else None)
        cur.execute(INSERT_ASSET_READINGS_SQL, params)
        inserted = cur.rowcount
        conflict = cur.execute(ASSET_CONFLICTS_SQL, params).fetchone()[0]  # type: ignore[index]
        duplicate = len(readings) - inserted - conflict
        cur.execute(COMMIT_BATCH_SQL, {
            "batch_id": batch_id, "inserted": 0, "asset_inserted": inserted,
            "duplicate": duplicate, "conflict": conflict,
        })
    return LoadResult(batch_id=batch_id, already_loaded=False, series_kind="asset",
                      rows_read=len(readings), rows_inserted=inserted,
                      rows_duplicate=duplicate, rows_conflict=conflict,
                      rows_skipped=content.skipped)
