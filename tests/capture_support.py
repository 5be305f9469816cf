"""Shared pieces for the capture and bundle tests: datasets, CLI runner, schema, a 2nd database.

The sample dataset is plain SQL with fixed values, so every run builds the same rows; the
golden bundle in tests/golden/sample was captured from it (regenerate: see test_capture_golden).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import psycopg
import pytest
from click.testing import CliRunner, Result

from loader.cli import main
from loader.db import with_database
from tests.conftest import Server, drop_database, unique_name

REPO = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO / "docs" / "schemas" / "telemetry-manifest.schema.json"
GOLDEN = Path(__file__).resolve().parent / "golden"

# One hour, 12 bins of 5 minutes. pump-01 reports every minute (nominal_interval 1 min) with a
# missing minute (partial bin), a 15-minute hole (3 gap bins), an out-of-range temperature and
# no power for the last 10 minutes; pump-02 has no nominal interval (median rule), temperature
# every 2 minutes with thirds (formatting), no power in the window (one reading before it).
SAMPLE_SQL = """
insert into telemetry.devices (tenant_id, device_key, nominal_interval)
values (1, 'pump-01', interval '1 minute'), (1, 'pump-02', null);
insert into telemetry.metrics (metric_name, unit, valid_min, valid_max)
values ('temperature_c', 'C', -20, 90), ('power_w', 'W', 0, 5000)
on conflict (metric_name) do nothing;
insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
select timestamptz '2026-03-01 00:00:00+00' + g * interval '1 minute', d.device_id, m.metric_id,
       case when g = 50 then 95 else 40 + (g % 7) * 0.25 + g * 0.01 end, 0
from generate_series(0, 59) as g, telemetry.devices as d, telemetry.metrics as m
where d.device_key = 'pump-01' and m.metric_name = 'temperature_c'
  and g <> 3 and g not between 20 and 34;
insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
select timestamptz '2026-03-01 00:00:00+00' + g * interval '1 minute', d.device_id, m.metric_id,
       1000 + g * 3.5, 0
from generate_series(0, 49) as g, telemetry.devices as d, telemetry.metrics as m
where d.device_key = 'pump-01' and m.metric_name = 'power_w';
insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
select timestamptz '2026-03-01 00:00:30+00' + g * interval '2 minutes', d.device_id,
       m.metric_id, 30 + g / 3.0, 0
from generate_series(0, 29) as g, telemetry.devices as d, telemetry.metrics as m
where d.device_key = 'pump-02' and m.metric_name = 'temperature_c';
insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
select timestamptz '2026-02-28 23:59:00+00', d.device_id, m.metric_id, 1234, 0
from telemetry.devices as d, telemetry.metrics as m
where d.device_key = 'pump-02' and m.metric_name = 'power_w';
"""

SAMPLE_ARGS = [
    "--devices", "pump-01,pump-02", "--metrics", "temperature_c,power_w",
    "--start", "2026-03-01T00:00:00Z", "--end", "2026-03-01T01:00:00Z", "--bin", "5m",
]

# Asset readings of one asset fed by two devices (both rows of a bin are aggregated).
ASSET_SQL = """
insert into telemetry.asset_types (asset_type_key) values ('capture_rig');
insert into telemetry.devices (tenant_id, device_key)
values (1, 'rig-sensor-1'), (1, 'rig-sensor-2');
insert into telemetry.metrics (metric_name, unit) values ('flow_lpm', 'l/min')
on conflict (metric_name) do nothing;
insert into telemetry.assets (tenant_id, asset_key, asset_type_id)
select 1, 'rig-a', asset_type_id from telemetry.asset_types where asset_type_key = 'capture_rig';
insert into telemetry.asset_readings
    (recorded_at, asset_id, metric_id, source_device_id, value, batch_id)
select timestamptz '2026-03-01 00:00:00+00' + g * interval '1 minute', a.asset_id, m.metric_id,
       d.device_id, 10 + g + d.device_id * 0.5, 0
from generate_series(0, 29) as g, telemetry.assets as a, telemetry.metrics as m,
     telemetry.devices as d
where a.asset_key = 'rig-a' and m.metric_name = 'flow_lpm'
  and d.device_key in ('rig-sensor-1', 'rig-sensor-2') and g not between 10 and 14;
"""

ASSET_ARGS = [
    "--assets", "rig-a", "--metrics", "flow_lpm",
    "--start", "2026-03-01T00:00:00Z", "--end", "2026-03-01T00:30:00Z", "--bin", "5m",
]


def load_sample(conn: psycopg.Connection, sql_text: str = SAMPLE_SQL) -> None:
    conn.execute(sql_text)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def capture(url: str, out: Path, *args: str) -> Result:
    return cli("capture", "--database-url", url, *args, "--out", str(out))


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def validate_manifest(manifest: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(manifest)


def bundle_files(folder: Path) -> dict[str, bytes]:
    """Every file of a bundle folder (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def data_files(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in bundle_files(folder).items() if k != "manifest.json"}


def normalized_manifest(manifest: dict) -> dict:
    """The manifest without what names a database or a release (for golden comparisons)."""
    copy = json.loads(json.dumps(manifest))
    copy.pop("manifest_sha256", None)
    copy["provenance"]["source"] = "<source database>"
    copy["provenance"]["tsfleet_version"] = "<tsfleet version>"
    return copy


def warning_codes(manifest: dict) -> set[str]:
    return {w["code"] for w in manifest["warnings"]}


def warnings_of(manifest: dict, code: str, path: str | None = None) -> list[dict]:
    return [w for w in manifest["warnings"]
            if w["code"] == code and (path is None or w["file"] == path)]


def csv_rows(folder: Path, path: str) -> list[tuple[str, str]]:
    lines = (folder / path).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "bin_start,value"
    return [tuple(line.split(",")) for line in lines[1:]]  # type: ignore[misc]


@pytest.fixture
def second_db_url(server: Server, template_db: str) -> Iterator[str]:
    """Another fresh migrated database (a clone of the template), for load round trips."""
    name = unique_name("tsfleet_test2")
    server.janitor(name, template=template_db).init()
    yield with_database(server.url, name)
    drop_database(server, name)
