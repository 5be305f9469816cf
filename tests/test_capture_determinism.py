"""Same database contents + same arguments => byte-identical bundles, whenever and wherever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.capture_support import (
    SAMPLE_ARGS,
    bundle_files,
    capture,
    load_sample,
    read_manifest,
    validate_manifest,
)


def test_two_captures_of_the_same_data_are_byte_identical(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    first = capture(db_url, tmp_path / "a", *SAMPLE_ARGS)
    # Same request, names listed in another order and repeated: the canonical form is one.
    second = capture(
        db_url, tmp_path / "b",
        "--devices", "pump-02", "--devices", "pump-01,pump-02", "--metrics", "power_w",
        "--metrics", "temperature_c", "--start", "2026-03-01T01:00:00+01:00",
        "--end", "2026-03-01T01:00:00Z", "--bin", "300s",
    )
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert bundle_files(tmp_path / "a") == bundle_files(tmp_path / "b")


def test_a_later_capture_in_other_time_zones_is_byte_identical(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    assert capture(db_url, tmp_path / "a", *SAMPLE_ARGS).exit_code == 0
    # Time moves on and unrelated data arrives: another device, another batch.
    conn.execute("insert into telemetry.devices (tenant_id, device_key) values (1, 'other')")
    conn.execute(
        "insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)"
        " select now(), d.device_id, m.metric_id, 1, 0 from telemetry.devices as d,"
        " telemetry.metrics as m where d.device_key = 'other' and m.metric_name = 'power_w'"
    )
    env = {**os.environ, "TZ": "Pacific/Chatham", "PGTZ": "America/St_Johns",
           "PGDATESTYLE": "SQL, DMY", "LC_ALL": "C"}
    run = subprocess.run(
        [sys.executable, "-c", "from loader.cli import main; main()", "capture",
         "--database-url", db_url, *SAMPLE_ARGS, "--out", str(tmp_path / "b")],
        env=env, capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert bundle_files(tmp_path / "a") == bundle_files(tmp_path / "b")


def test_the_manifest_names_the_source_without_credentials(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    parts = urlsplit(db_url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    # The test servers trust local connections, so any password is accepted (and must vanish).
    secret_url = urlunsplit(parts._replace(netloc=f"postgres:s3cr3t-pw@{host}{port}"))
    assert capture(secret_url, tmp_path / "a", *SAMPLE_ARGS).exit_code == 0
    text = (tmp_path / "a" / "manifest.json").read_text()
    assert "s3cr3t-pw" not in text
    manifest = read_manifest(tmp_path / "a")
    validate_manifest(manifest)
    source = manifest["provenance"]["source"]
    assert source["dbname"] == parts.path.lstrip("/")
    assert source["system_identifier"].isdigit()
    assert set(source) == {"host", "port", "dbname", "system_identifier", "server_version",
                           "timescaledb_version", "timescaledb_license"}
