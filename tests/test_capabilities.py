"""The server's edition is reported, and edition-aware migrations say what they did."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.rows import dict_row

from loader.cli import main
from tests.conftest import Server


def capabilities(conn: psycopg.Connection) -> dict:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from ops.capabilities").fetchone()
    assert row is not None
    return row


def test_capabilities_report_versions_and_edition(conn: psycopg.Connection, server: Server) -> None:
    caps = capabilities(conn)
    assert caps["timescaledb_version"] == server.timescaledb_version
    assert caps["postgres_version"].startswith(str(server.postgres_version_num // 10000))
    assert caps["timescaledb_license"] == server.license
    assert caps["timescaledb_edition"] == ("community" if server.is_community else "apache")
    assert caps["has_hypertables"] is True
    assert caps["has_compression"] is server.is_community


def test_apache_edition_skips_compression_and_says_why(
    conn: psycopg.Connection, server: Server,
) -> None:
    if server.is_community:
        pytest.skip("checks the Apache-edition path; the test server runs the Community edition")
    caps = capabilities(conn)
    assert caps["compression_enabled_on"] == []
    assert any("compression skipped on telemetry.readings" in n and "Apache" in n
               for n in caps["setup_notes"])
    assert "skipped" in conn.execute(
        "select ops.set_compression_policy('telemetry.readings', interval '3 days')").fetchone()[0]


@pytest.mark.community
def test_community_edition_compresses_readings_by_device_and_metric(
    conn: psycopg.Connection,
) -> None:
    caps = capabilities(conn)
    assert {"telemetry.asset_readings", "telemetry.readings"} <= set(caps["compression_enabled_on"])
    settings = conn.execute(
        "select segmentby, orderby from timescaledb_information.hypertable_compression_settings"
        " where hypertable = 'telemetry.readings'::regclass").fetchone()
    assert settings == ("device_id,metric_id", "recorded_at DESC")
    interval = conn.execute(
        "select config->>'compress_after' from timescaledb_information.jobs"
        " where proc_name = 'policy_compression' and hypertable_name = 'readings'").fetchone()[0]
    assert interval == "7 days"


@pytest.mark.community
def test_compression_policy_age_is_configurable(conn: psycopg.Connection) -> None:
    conn.execute("select ops.set_compression_policy('telemetry.readings', interval '14 days')")
    interval = conn.execute(
        "select config->>'compress_after' from timescaledb_information.jobs"
        " where proc_name = 'policy_compression' and hypertable_name = 'readings'").fetchone()[0]
    assert interval == "14 days"


@pytest.mark.community
def test_compressed_readings_stay_readable_and_idempotent(conn: psycopg.Connection) -> None:
    conn.execute("""
        insert into telemetry.devices (tenant_id, device_key) values (1, 'd');
        insert into telemetry.metrics (metric_name) values ('m');
        insert into ingest.batches (source_kind, source_name) values ('test', 't');
        insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
        select t, 1, 1, extract(hour from t), 1
        from generate_series('2026-01-01'::timestamptz, '2026-01-02', interval '1 hour') as t;
    """)
    conn.execute(
        "select public.compress_chunk(c) from public.show_chunks('telemetry.readings') as c")
    inserted = conn.execute(
        "insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)"
        " values ('2026-01-01 05:00+00', 1, 1, 99, 1) on conflict do nothing").rowcount
    assert inserted == 0
    # hours 0..23 of the first day, then hour 0 again: the conflicting 99 was not written
    assert conn.execute("select sum(value) from telemetry.readings").fetchone()[0] == 276


def test_status_command_prints_edition_and_counts(db_url: str, server: Server) -> None:
    result = CliRunner().invoke(main, ["status", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert f"timescaledb_license         {server.license}" in result.output
    assert "device_count" in result.output


def test_migrate_command_says_what_the_edition_aware_migrations_did(
    empty_db_url: str, server: Server,
) -> None:
    result = CliRunner().invoke(main, ["migrate", "--database-url", empty_db_url])
    assert result.exit_code == 0, result.output
    verb = "enabled" if server.is_community else "skipped"
    assert f"tsfleet: compression {verb} on telemetry.readings" in result.output
    assert "applied" in result.output and "0001.create_schemas" in result.output


def test_overview_counts_readings_right_after_a_load(conn: psycopg.Connection) -> None:
    """Planner statistics lag behind a fresh load; the overview must not report 0 readings."""
    conn.execute("""
        insert into telemetry.devices (tenant_id, device_key) values (1, 'd');
        insert into telemetry.metrics (metric_name) values ('m');
        insert into ingest.batches (source_kind, source_name, status, rows_inserted,
                                    asset_rows_inserted)
        values ('test', 't', 'committed', 25, 0);
        insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
        select t, 1, 1, 1.0, 1
        from generate_series('2026-01-01'::timestamptz, '2026-01-02', interval '1 hour') as t;
    """)
    row = conn.execute("select readings_loaded, asset_readings_loaded from ops.overview").fetchone()
    assert row == (25, 0)
