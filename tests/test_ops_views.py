"""Maintenance views: sizes, chunks, compression state and ratio, jobs; and `tsfleet status`."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from loader.cli import main
from tests.rollups_support import add_device, add_metric, day, insert_series, one, refresh


def load_two_days(conn: psycopg.Connection) -> None:
    """Two days either side of a chunk boundary (7-day chunks from Thursday 2026-01-08)."""
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    insert_series(conn, device, metric, day("2026-01-07"), day("2026-01-09"), "1 min",
                  value_sql="20 + mod(n, 50) / 10.0")
    refresh(conn)


def test_hypertable_sizes_list_raw_tables_and_every_rollup(conn: psycopg.Connection) -> None:
    load_two_days(conn)
    rows = {r[0]: r[1:] for r in conn.execute(
        "select object_name, chunk_count, total_bytes, compressed_chunk_count"
        " from ops.hypertable_sizes").fetchall()}
    assert {"telemetry.readings", "telemetry.asset_readings", "rollups.device_metrics_hourly",
            "rollups.device_metrics_daily", "rollups.battery_soc_daily",
            "rollups.instrument_daily", "rollups.asset_metrics_hourly",
            "rollups.asset_health_hourly"} <= set(rows)
    chunks, total_bytes, compressed = rows["telemetry.readings"]
    assert chunks == 2 and total_bytes > 0 and compressed == 0


def test_chunk_sizes_give_each_chunk_its_range(conn: psycopg.Connection) -> None:
    load_two_days(conn)
    rows = conn.execute(
        "select range_start, range_end, is_compressed, total_bytes > 0 from ops.chunk_sizes"
        " where object_name = 'telemetry.readings' order by range_start").fetchall()
    assert rows == [(day("2026-01-01"), day("2026-01-08"), False, True),
                    (day("2026-01-08"), day("2026-01-15"), False, True)]


@pytest.mark.community
def test_compression_state_and_ratio_after_compressing_a_chunk(
    conn: psycopg.Connection,
) -> None:
    load_two_days(conn)
    conn.execute("select public.compress_chunk(c) from public.show_chunks("
                 "'telemetry.readings', older_than => '2026-01-08'::timestamptz) as c")
    row = conn.execute(
        "select compressed_chunk_count, before_compression_total_bytes,"
        " after_compression_total_bytes, compression_saved_pct"
        " from ops.hypertable_sizes where object_name = 'telemetry.readings'").fetchone()
    assert row[0] == 1 and row[1] > row[2] > 0
    assert float(row[3]) == pytest.approx(100 - 100 * row[2] / row[1], abs=0.1)
    assert row[3] > 50
    assert one(conn, "select count(*) filter (where is_compressed) from ops.chunk_sizes"
                     " where object_name = 'telemetry.readings'") == 1


@pytest.mark.community
def test_jobs_show_every_policy_with_its_target(conn: psycopg.Connection) -> None:
    rows = conn.execute("select job_kind, target_name, scheduled from ops.jobs").fetchall()
    kinds = {(k, t) for k, t, _ in rows}
    assert ("policy_compression", "telemetry.readings") in kinds
    assert ("policy_refresh_continuous_aggregate", "rollups.device_metrics_daily") in kinds
    assert one(conn, "select count(*) from ops.jobs where last_error is not null") == 0


def test_jobs_view_is_empty_but_valid_on_apache(conn: psycopg.Connection, server) -> None:
    if server.is_community:
        pytest.skip("Apache-edition behaviour; Community is covered above")
    assert conn.execute("select * from ops.jobs").fetchall() == []


def test_status_prints_storage_and_jobs(db_url: str, conn: psycopg.Connection,
                                        server) -> None:
    load_two_days(conn)
    result = CliRunner().invoke(main, ["status", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert "== storage" in result.output and "telemetry.readings" in result.output
    assert "rollups.device_metrics_daily" in result.output
    if server.is_community:
        assert "policy_refresh_continuous_aggregate" in result.output
    else:
        assert "the Apache edition has no background jobs" in result.output
    as_json = CliRunner().invoke(main, ["status", "--json", "--database-url", db_url])
    report = json.loads(as_json.output)
    assert {s["object_name"] for s in report["storage"]} >= {"telemetry.readings"}
    assert isinstance(report["jobs"], list)
