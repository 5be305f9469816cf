"""The grid: binned, gap-filled values per series, from SQL (telemetry.bin_readings).

The SQL does the work (time_bucket, generate_series, fill); this module only groups rows
into series and reads the source summary (telemetry.summarize_capture_sources).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import psycopg

from loader.capture.request import CaptureRequest

BIN_SQL = """
select
    series_key, tenant_key, asset_type_key, metric_name, unit, valid_min, valid_max,
    bin_start, value, reading_count, out_of_range_count, expected_count, expected_from
from telemetry.bin_readings(
    %(kind)s, %(keys)s, %(metrics)s, %(start)s, %(end)s,
    make_interval(secs => %(bin_seconds)s), %(aggregate)s, %(fill)s
)
"""

SOURCES_SQL = """
select row_count, rows_sha256
from telemetry.summarize_capture_sources(%(kind)s, %(keys)s, %(metrics)s, %(start)s, %(end)s)
"""

IDENTITY_SQL = """
select
    (select system_identifier::text from pg_catalog.pg_control_system()),
    current_database(),
    current_setting('server_version'),
    (select extversion from pg_catalog.pg_extension where extname = 'timescaledb'),
    coalesce(current_setting('timescaledb.license', true), 'apache')
"""


class UnknownSeriesError(ValueError):
    """The database does not know a requested device, asset or metric (or rejects the window)."""


@dataclass
class Bin:
    start: datetime
    value: float | None
    reading_count: int
    out_of_range_count: int


@dataclass
class Series:
    kind: str
    key: str
    tenant: str
    asset_type: str | None
    metric: str
    unit: str | None
    valid_min: float | None
    valid_max: float | None
    expected_count: int | None
    expected_from: str | None
    bins: list[Bin] = field(default_factory=list)


def _params(request: CaptureRequest) -> dict[str, object]:
    return {
        "kind": request.series_kind,
        "keys": list(request.keys),
        "metrics": list(request.metrics),
        "start": request.start,
        "end": request.end,
        "bin_seconds": request.bin_seconds,
        "aggregate": request.aggregate,
        "fill": request.fill,
    }


def read_grid(conn: psycopg.Connection, request: CaptureRequest) -> list[Series]:
    """Every requested series (keys x metrics) with one Bin per grid bin, in bytewise order."""
    series: dict[tuple[str, str], Series] = {}
    try:
        with conn.cursor(binary=True) as cur:
            cur.execute(BIN_SQL, _params(request))
            rows = cur.fetchall()
    except psycopg.errors.InvalidParameterValue as exc:
        raise UnknownSeriesError(_message(exc)) from exc
    for (key, tenant, asset_type, metric, unit, vmin, vmax, start, value, count, oor,
         expected, expected_from) in rows:
        one = series.get((key, metric))
        if one is None:
            one = series[(key, metric)] = Series(
                kind=request.series_kind, key=key, tenant=tenant, asset_type=asset_type,
                metric=metric, unit=unit, valid_min=vmin, valid_max=vmax,
                expected_count=expected, expected_from=expected_from,
            )
        one.bins.append(Bin(start=start, value=value, reading_count=count,
                            out_of_range_count=oor))
    return [series[k] for k in sorted(series)]


def read_source_summary(conn: psycopg.Connection, request: CaptureRequest) -> dict[str, object]:
    params = _params(request)
    try:
        row = conn.execute(SOURCES_SQL, params).fetchone()
    except psycopg.errors.InvalidParameterValue as exc:
        raise UnknownSeriesError(_message(exc)) from exc
    assert row is not None
    return {"count": int(row[0]), "sha256": row[1]}


def read_source_identity(conn: psycopg.Connection, url: str) -> dict[str, object]:
    """Where the data came from, without credentials: host, port, database, cluster id."""
    row = conn.execute(IDENTITY_SQL).fetchone()
    assert row is not None
    parts = urlsplit(url)
    info = conn.info
    return {
        "host": parts.hostname or info.host,
        "port": parts.port or info.port,
        "dbname": row[1],
        "system_identifier": row[0],
        "server_version": row[2],
        "timescaledb_version": row[3],
        "timescaledb_license": row[4],
    }


def _message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = (diag.message_primary or str(exc)).removeprefix("tsfleet: ")
    return f"{text} ({diag.message_hint})" if diag.message_hint else text
