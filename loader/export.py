"""Rollup export: one deterministic JSON document per greenhouse instrument and day.

Reads rollups.instrument_daily (refresh it first: `tsfleet refresh`), adds the ingest batches
the day's readings came from as provenance, and writes `instrument_<ID>_<YYYYMMDD>.json` with
sorted keys and no timestamps of its own, so the same database contents give the same bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from loader import __version__

SCHEMA = "tsfleet.instrument-daily-rollup/1"
SOURCE = "rollups.instrument_daily"
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
METRICS = (("temperature_c", "temperature", "C"), ("humidity_pct", "humidity", "%"))
DIGITS = 6

ROLLUP_SQL = """
select
    d.device_key,
    i.temperature_min_c, i.temperature_max_c, i.temperature_avg_c,
    i.temperature_count, i.temperature_nongood_count,
    i.humidity_min_pct, i.humidity_max_pct, i.humidity_avg_pct,
    i.humidity_count, i.humidity_nongood_count,
    i.reading_count, i.nongood_count
from rollups.instrument_daily as i
inner join telemetry.devices as d on i.device_id = d.device_id
where i.bucket_start = %(day)s::date::timestamp at time zone 'UTC'
    and (%(keys)s::text[] is null or d.device_key = any(%(keys)s::text[]))
order by d.device_key
"""

BATCHES_SQL = """
select b.batch_id, b.source_kind, b.source_name, b.checksum
from ingest.batches as b
where b.batch_id in (
    select distinct r.batch_id
    from telemetry.readings as r
    inner join telemetry.devices as d on r.device_id = d.device_id
    inner join telemetry.metrics as m on r.metric_id = m.metric_id
    where d.device_key = %(key)s
        and m.metric_name in ('temperature_c', 'humidity_pct')
        and r.recorded_at >= %(day)s::date::timestamp at time zone 'UTC'
        and r.recorded_at < (%(day)s::date + 1)::timestamp at time zone 'UTC'
)
order by b.batch_id
"""


class ExportError(Exception):
    """What went wrong and what to do, for the command to show."""


@dataclass(frozen=True)
class Written:
    instrument_id: str
    path: Path
    reading_count: int


def _number(value: Any) -> float | None:
    return None if value is None else round(float(value), DIGITS)


def instrument_document(row: dict[str, Any], day: date,
                        batches: list[dict[str, Any]]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for metric_name, prefix, unit in METRICS:
        suffix = "c" if unit == "C" else "pct"
        count = int(row[f"{prefix}_count"])
        nongood = int(row[f"{prefix}_nongood_count"])
        metrics[metric_name] = {
            "unit": unit,
            "min": _number(row[f"{prefix}_min_{suffix}"]),
            "max": _number(row[f"{prefix}_max_{suffix}"]),
            "mean": _number(row[f"{prefix}_avg_{suffix}"]),
            "count": count,
            "quality": {"good": count - nongood, "non_good": nongood},
        }
    total, nongood = int(row["reading_count"]), int(row["nongood_count"])
    return {
        "schema": SCHEMA,
        "instrument_id": row["device_key"],
        "day": day.isoformat(),
        "metrics": metrics,
        "quality": {"good": total - nongood, "non_good": nongood, "total": total},
        "provenance": {
            "generator": f"tsfleet {__version__}",
            "source": SOURCE,
            "day_window_utc": [f"{day.isoformat()}T00:00:00Z",
                               f"{date.fromordinal(day.toordinal() + 1).isoformat()}T00:00:00Z"],
            "batches": batches,
        },
    }


def render_document(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def export_instrument_rollups(conn: psycopg.Connection, day: date, out_dir: Path,
                              instruments: list[str] | None = None) -> list[Written]:
    """Write one JSON document per instrument with a rollup row for `day`."""
    for key in instruments or []:
        if not SAFE_ID.match(key):
            raise ExportError(f"instrument id {key!r} cannot name a file; ids are letters, "
                              f"digits, '.', '_' and '-'")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(ROLLUP_SQL, {"day": day, "keys": instruments or None}).fetchall()
        found = {r["device_key"] for r in rows}
        missing = sorted(set(instruments or []) - found)
        if missing:
            raise ExportError(
                f"no rollup for instrument(s) {', '.join(missing)} on {day.isoformat()}: "
                f"load that day, then run `tsfleet refresh --start {day.isoformat()}`")
        if not rows:
            raise ExportError(
                f"no instrument rollups on {day.isoformat()}: load the instrument files of "
                f"that day, then run `tsfleet refresh --start {day.isoformat()}`")
        documents = []
        for row in rows:
            if not SAFE_ID.match(row["device_key"]):
                raise ExportError(f"instrument id {row['device_key']!r} cannot name a file; "
                                  f"export the others with --instrument")
            batches = cur.execute(BATCHES_SQL, {"key": row["device_key"], "day": day}).fetchall()
            documents.append((row, [dict(b) for b in batches]))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for row, batches in documents:
        path = out_dir / f"instrument_{row['device_key']}_{day.strftime('%Y%m%d')}.json"
        path.write_text(render_document(instrument_document(row, day, batches)),
                        encoding="utf-8")
        written.append(Written(row["device_key"], path, int(row["reading_count"])))
    return written
