"""`tsfleet bundle load`: a bundle seeds another database; capture -> load -> capture is exact."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from tests.capture_support import (
    ASSET_ARGS,
    ASSET_SQL,
    SAMPLE_ARGS,
    capture,
    cli,
    data_files,
    load_sample,
    read_manifest,
    second_db_url,  # noqa: F401  (fixture)
    validate_manifest,
)


def _captured(conn: psycopg.Connection, db_url: str, out: Path, *args: str) -> dict:
    result = capture(db_url, out, *args)
    assert result.exit_code == 0, result.output
    return read_manifest(out)


def test_capture_load_capture_reproduces_the_files_byte_for_byte(
    conn: psycopg.Connection, db_url: str, second_db_url: str, tmp_path: Path  # noqa: F811
) -> None:
    load_sample(conn)
    for fill in ("nan", "hold", "zero", "none"):
        first = _captured(conn, db_url, tmp_path / f"a-{fill}", *SAMPLE_ARGS, "--fill", fill)
        loaded = cli("bundle", "load", "--database-url", second_db_url, str(tmp_path / f"a-{fill}"))
        assert loaded.exit_code == 0, loaded.output
        second = capture(second_db_url, tmp_path / f"b-{fill}", *SAMPLE_ARGS, "--fill", fill)
        assert second.exit_code == 0, second.output
        assert data_files(tmp_path / f"a-{fill}") == data_files(tmp_path / f"b-{fill}")
        again = read_manifest(tmp_path / f"b-{fill}")
        validate_manifest(again)
        assert again["files"] == first["files"]
        assert again["provenance"]["bundle_sha256"] == first["provenance"]["bundle_sha256"]


def test_load_writes_one_committed_batch_of_the_real_bins(
    conn: psycopg.Connection, db_url: str, second_db_url: str, tmp_path: Path  # noqa: F811
) -> None:
    load_sample(conn)
    manifest = _captured(conn, db_url, tmp_path / "a", *SAMPLE_ARGS)
    result = cli("bundle", "load", "--database-url", second_db_url, str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    with psycopg.connect(second_db_url) as other:
        batches = other.execute(
            "select batch_id, source_kind, checksum, status, rows_read, rows_inserted,"
            " min_recorded_at, max_recorded_at from ingest.batches"
        ).fetchall()
        assert len(batches) == 1
        batch_id, kind, checksum, status, rows_read, inserted, first_at, last_at = batches[0]
        assert (kind, status) == ("bundle", "committed")
        assert checksum == manifest["provenance"]["bundle_sha256"]
        # 48 rows minus 17 gap bins (filled with NaN): only real bins become readings.
        assert rows_read == inserted == 48 - 17
        readings = other.execute(
            "select count(*), count(distinct batch_id), min(recorded_at), max(recorded_at)"
            " from telemetry.readings"
        ).fetchone()
        assert readings[0] == inserted and readings[1] == 1
        assert (readings[2], readings[3]) == (first_at, last_at)
        value = other.execute(
            "select value from telemetry.readings_named where device_key = 'pump-01'"
            " and metric_name = 'temperature_c' and recorded_at = '2026-03-01 00:00:00+00'"
        ).fetchone()
        assert value == (40.455,)
        units = dict(other.execute("select metric_name, unit from telemetry.metrics"
                                   " where metric_name in ('power_w', 'temperature_c')"))
        assert units == {"power_w": "W", "temperature_c": "C"}


def test_loading_a_bundle_twice_is_a_no_op(
    conn: psycopg.Connection, db_url: str, second_db_url: str, tmp_path: Path  # noqa: F811
) -> None:
    load_sample(conn)
    _captured(conn, db_url, tmp_path / "a", *SAMPLE_ARGS)
    first = cli("bundle", "load", "--database-url", second_db_url, str(tmp_path / "a"))
    assert first.exit_code == 0, first.output
    with psycopg.connect(second_db_url) as other:
        before = other.execute("select count(*) from telemetry.readings").fetchone()
    second = cli("bundle", "load", "--database-url", second_db_url, str(tmp_path / "a"))
    assert second.exit_code == 0
    assert "already loaded as batch" in second.output
    with psycopg.connect(second_db_url) as other:
        assert other.execute("select count(*) from telemetry.readings").fetchone() == before
        statuses = other.execute(
            "select status, count(*) from ingest.batches group by status order by status"
        ).fetchall()
        assert statuses[0] == ("committed", 1)
        assert all(status == "skipped" for status, _ in statuses[1:])


def test_loading_over_existing_readings_counts_duplicates_and_keeps_stored_values(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    _captured(conn, db_url, tmp_path / "a", *SAMPLE_ARGS, "--aggregate", "min")
    # Into the source itself: bin starts that hold a raw reading with the same value (min of
    # a bin whose first reading is its minimum) are duplicates; others are new or conflicts.
    result = cli("bundle", "load", "--database-url", db_url, str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    row = conn.execute(
        "select rows_read, rows_inserted, rows_duplicate, rows_conflict from ingest.batches"
        " where source_kind = 'bundle'"
    ).fetchone()
    assert row is not None
    rows_read, inserted, duplicate, conflict = row
    assert rows_read == inserted + duplicate + conflict
    assert duplicate > 0
    assert conn.execute(
        "select value from telemetry.readings_named where device_key = 'pump-01'"
        " and metric_name = 'temperature_c' and recorded_at = '2026-03-01 00:50:00+00'"
    ).fetchone() == (95.0,)


def test_an_asset_bundle_round_trips_through_asset_readings(
    conn: psycopg.Connection, db_url: str, second_db_url: str, tmp_path: Path  # noqa: F811
) -> None:
    conn.execute(ASSET_SQL)
    first = _captured(conn, db_url, tmp_path / "a", *ASSET_ARGS)
    loaded = cli("bundle", "load", "--database-url", second_db_url, str(tmp_path / "a"))
    assert loaded.exit_code == 0, loaded.output
    assert capture(second_db_url, tmp_path / "b", *ASSET_ARGS).exit_code == 0
    assert data_files(tmp_path / "a") == data_files(tmp_path / "b")
    assert read_manifest(tmp_path / "b")["files"] == first["files"]
    with psycopg.connect(second_db_url) as other:
        sources = other.execute(
            "select distinct source_device_key from telemetry.asset_readings_named"
        ).fetchall()
    checksum = first["provenance"]["bundle_sha256"]
    assert sources == [(f"bundle:{checksum[:12]}:default",)]
    again = cli("bundle", "load", "--database-url", second_db_url, str(tmp_path / "a"))
    assert again.exit_code == 0 and "already loaded as batch" in again.output


def test_load_refuses_a_bundle_that_does_not_verify(
    conn: psycopg.Connection, db_url: str, second_db_url: str, tmp_path: Path  # noqa: F811
) -> None:
    load_sample(conn)
    _captured(conn, db_url, tmp_path / "a", *SAMPLE_ARGS)
    target = tmp_path / "a/devices/pump-01/power_w.csv"
    target.write_bytes(target.read_bytes().replace(b"1007", b"1008"))
    result = cli("bundle", "load", "--database-url", second_db_url, str(tmp_path / "a"))
    assert result.exit_code == 1
    assert "does not verify; nothing loaded" in result.output
    assert "power_w.csv: sha256 does not match" in result.output
    with psycopg.connect(second_db_url) as other:
        assert other.execute("select count(*) from ingest.batches").fetchone() == (0,)


def _member_of_ingest_url(conn: psycopg.Connection, url: str) -> tuple[str, str]:
    """A login role that is only a member of tsfleet_ingest, and url as that role."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    role = f"loader_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("create role {} login in role tsfleet_ingest").format(
        sql.Identifier(role)))
    parts = urlsplit(url)
    return role, urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


def test_a_member_of_tsfleet_ingest_loads_device_and_asset_bundles(
    conn: psycopg.Connection, db_url: str, second_db_url: str, tmp_path: Path  # noqa: F811
) -> None:
    load_sample(conn)
    conn.execute(ASSET_SQL)
    _captured(conn, db_url, tmp_path / "d", *SAMPLE_ARGS)
    _captured(conn, db_url, tmp_path / "a", *ASSET_ARGS)
    with psycopg.connect(second_db_url, autocommit=True) as other:
        role, url = _member_of_ingest_url(other, second_db_url)
        try:
            for folder in ("d", "a", "a"):
                result = cli("bundle", "load", "--database-url", url, str(tmp_path / folder))
                assert result.exit_code == 0, result.output
            assert "already loaded as batch" in result.output
            assert other.execute(
                "select source_kind, status, rows_read, rows_inserted, asset_rows_inserted"
                " from ingest.batches order by batch_id").fetchall() == [
                ("bundle", "committed", 31, 31, 0), ("bundle", "committed", 5, 0, 5)]
        finally:
            other.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
            other.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def test_register_bundle_keys_adds_missing_keys_and_keeps_existing_ones(
        conn: psycopg.Connection) -> None:
    conn.execute("insert into telemetry.tenants (tenant_key) values ('t-old')")
    conn.execute("insert into telemetry.metrics (metric_name, unit) values ('flow', 'l/min')")
    conn.execute("insert into telemetry.devices (tenant_id, device_key)"
                 " select tenant_id, 'dev-old' from telemetry.tenants where tenant_key = 't-old'")
    registered = conn.execute(
        "select ingest.register_bundle_keys(%s, %s, %s, %s, %s)",
        [["t-old", "t-new"], ["flow", "power_w"], ["m3/h", "W"], ["dev-new", "dev-old"],
         ["t-new", "t-new"]]).fetchone()
    assert registered == (3,)  # t-new, power_w, dev-new
    assert conn.execute("select metric_name, unit from telemetry.metrics"
                        " where metric_name in ('flow', 'power_w') order by 1").fetchall() == [
        ("flow", "l/min"), ("power_w", "W")]
    assert conn.execute(
        "select d.device_key, t.tenant_key from telemetry.devices as d"
        " inner join telemetry.tenants as t using (tenant_id)"
        " where d.device_key like 'dev-%' order by 1").fetchall() == [
        ("dev-new", "t-new"), ("dev-old", "t-old")]
    assert conn.execute("select ingest.register_bundle_keys(%s, %s, %s, %s, %s)",
                        [["t-new"], ["flow"], [None], ["dev-new"], ["t-new"]]
                        ).fetchone() == (0,)


def _load_assets(conn: psycopg.Connection, checksum: str, readings: list[tuple]) -> tuple:
    at, keys, metrics, values = ([r[i] for r in readings] for i in range(4))
    row = conn.execute(
        "select * from ingest.load_asset_bundle('/b', %s, 'test', %s, %s, %s, %s, %s,"
        " %s::timestamptz[], %s, %s, %s::double precision[])",
        [checksum, ["acme"], ["rig-z"], ["rig"], ["flow"], ["l/min"], at, keys, metrics,
         values]).fetchone()
    assert row is not None
    return tuple(row)


def test_load_asset_bundle_counts_duplicates_and_conflicts_and_keeps_stored_values(
        conn: psycopg.Connection) -> None:
    first = _load_assets(conn, "c" * 64, [
        ("2026-03-01T00:00:00Z", "rig-z", "flow", 1.0),
        ("2026-03-01T00:05:00Z", "rig-z", "flow", 2.0)])
    batch_id = first[0]
    assert first[1:] == (False, 2, 2, 0, 0)
    # Another bundle with the same source device (bundle:<first 12 hex>:<tenant>): the same
    # reading keys.
    second = _load_assets(conn, "c" * 12 + "d" * 52, [
        ("2026-03-01T00:00:00Z", "rig-z", "flow", 1.0),   # duplicate
        ("2026-03-01T00:05:00Z", "rig-z", "flow", 9.0),   # conflict: 2.0 is kept
        ("2026-03-01T00:10:00Z", "rig-z", "flow", 3.0)])  # new
    assert second[1:] == (False, 3, 1, 1, 1)
    assert conn.execute(
        "select ar.value, d.device_key from telemetry.asset_readings as ar"
        " inner join telemetry.devices as d on ar.source_device_id = d.device_id"
        " order by ar.recorded_at").fetchall() == [
        (1.0, "bundle:cccccccccccc:acme"), (2.0, "bundle:cccccccccccc:acme"),
        (3.0, "bundle:cccccccccccc:acme")]
    assert conn.execute(
        "select source_kind, status, rows_read, rows_inserted, asset_rows_inserted,"
        " rows_duplicate, rows_conflict, min_recorded_at, max_recorded_at,"
        " finished_at is not null from ingest.batches where batch_id = %s", [second[0]]
    ).fetchone() == ("bundle", "committed", 3, 0, 1, 1, 1,
                     datetime(2026, 3, 1, tzinfo=timezone.utc),
                     datetime(2026, 3, 1, 0, 10, tzinfo=timezone.utc), True)
    assert conn.execute("select a.asset_key, aty.asset_type_key, t.tenant_key"
                        " from telemetry.assets as a"
                        " inner join telemetry.asset_types as aty using (asset_type_id)"
                        " inner join telemetry.tenants as t using (tenant_id)").fetchall() == [
        ("rig-z", "rig", "acme")]
    # The same bundle again: the first batch, nothing written, no batch row.
    again = _load_assets(conn, "c" * 64, [("2026-03-01T00:20:00Z", "rig-z", "flow", 5.0)])
    assert again == (batch_id, True, 0, 0, 0, 0)
    assert conn.execute("select count(*) from ingest.batches").fetchone() == (2,)
    assert conn.execute("select count(*) from telemetry.asset_readings").fetchone() == (3,)
    assert conn.execute("select ingest.committed_batch_id('bundle', %s)", ["c" * 64]
                        ).fetchone() == (batch_id,)
    assert conn.execute("select ingest.committed_batch_id('bundle', 'nope')").fetchone() == (
        None,)
