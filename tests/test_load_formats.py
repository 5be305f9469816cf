"""Each input format round-trips with exact counts and values; reloading is a no-op."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.ingest_support import (
    SAMPLES,
    batches,
    message,
    readings,
    run_load,
    run_load_json,
    scalar,
    write_csv,
    write_jsonl,
)


def instrument_tree(root: Path) -> Path:
    header = ["timestamp", "temperature_c", "humidity_pct", "quality_flag"]
    write_csv(root / "instrument_A1" / "instrument_A1_20260126.csv", header, [
        ["2026-01-26T00:00:00Z", "20.5", "61.0", "good"],
        ["2026-01-26T01:00:00Z", "20.1", "62.5", "BAD"],
    ])
    write_csv(root / "instrument_A1" / "instrument_A1_20260127.csv", header, [
        ["2026-01-27T00:00:00", "19.0", "", "good"],
    ])
    write_csv(root / "instrument_B7" / "instrument_B7_20260126.csv", header, [
        ["2026-01-26T00:00:00+01:00", "22.0", "55.0", ""],
    ])
    (root / "instrument_B7" / "notes.txt").write_text("not an instrument file")
    return root


def test_instrument_tree_loads_every_file_with_columns_as_metrics(db_url: str,
                                                                 conn: psycopg.Connection,
                                                                 tmp_path: Path) -> None:
    root = instrument_tree(tmp_path / "tree")
    report = run_load_json(db_url, "instruments", str(root))
    assert report["totals"].pop("refresh_seconds") > 0
    # One range: the hours 25th 23:00 to 26th 02:00 and 27th 00:00 are less than a day apart.
    assert report["totals"] == {"rows_read": 7, "rows_inserted": 7, "rows_duplicate": 0,
                                "rows_conflict": 0, "rows_rejected": 0, "values_missing": 1,
                                "batches": 3, "failed": 0, "rollup_ranges_refreshed": 1}
    assert readings(conn) == [
        ("2026-01-25T23:00:00", "B7", "humidity_pct", 55.0, "good"),
        ("2026-01-25T23:00:00", "B7", "temperature_c", 22.0, "good"),
        ("2026-01-26T00:00:00", "A1", "humidity_pct", 61.0, "good"),
        ("2026-01-26T00:00:00", "A1", "temperature_c", 20.5, "good"),
        ("2026-01-26T01:00:00", "A1", "humidity_pct", 62.5, "bad"),
        ("2026-01-26T01:00:00", "A1", "temperature_c", 20.1, "bad"),
        ("2026-01-27T00:00:00", "A1", "temperature_c", 19.0, "good"),
    ]
    units = dict(conn.execute("select metric_name, unit from telemetry.metrics").fetchall())
    assert units == {"temperature_c": "degC", "humidity_pct": "%"}
    assert conn.execute("select device_key, device_type from telemetry.devices"
                        " order by 1").fetchall() == [("A1", "instrument"), ("B7", "instrument")]


def test_instrument_options_select_one_instrument_and_one_day(db_url: str,
                                                              conn: psycopg.Connection,
                                                              tmp_path: Path) -> None:
    root = instrument_tree(tmp_path / "tree")
    report = run_load_json(db_url, "instruments", str(root), "--instrument", "A1",
                           "--day", "2026-01-27")
    assert [b["source_name"] for b in report["batches"]] == [
        str(root / "instrument_A1" / "instrument_A1_20260127.csv")]
    assert scalar(conn, "select count(*) from telemetry.readings") == 1


def test_instrument_naive_timestamps_follow_the_declared_time_zone(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    root = instrument_tree(tmp_path / "tree")
    run_load(db_url, "instruments", str(root / "instrument_A1"), "--day", "20260127",
             "--timezone", "Europe/Amsterdam")
    assert readings(conn) == [("2026-01-26T23:00:00", "A1", "temperature_c", 19.0, "good")]


def test_reloading_the_same_files_is_a_skipped_no_op(db_url: str, conn: psycopg.Connection,
                                                     tmp_path: Path) -> None:
    root = instrument_tree(tmp_path / "tree")
    run_load(db_url, "instruments", str(root))
    before = readings(conn)
    again = run_load_json(db_url, "instruments", str(root))
    assert [b["status"] for b in again["batches"]] == ["skipped"] * 3
    assert readings(conn) == before
    forced = run_load_json(db_url, "instruments", str(root), "--force")
    assert forced["totals"]["rows_duplicate"] == 7 and forced["totals"]["rows_inserted"] == 0
    assert readings(conn) == before


def test_changed_file_is_a_new_batch_and_keeps_stored_values_on_conflict(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["time", "device", "metric", "value"], [
        ["2026-01-26T00:00:00Z", "d1", "power_w", "10"],
        ["2026-01-26T00:01:00Z", "d1", "power_w", "11"],
    ])
    run_load(db_url, "csv", str(path))
    write_csv(path, ["time", "device", "metric", "value"], [
        ["2026-01-26T00:00:00Z", "d1", "power_w", "10"],
        ["2026-01-26T00:01:00Z", "d1", "power_w", "99"],
        ["2026-01-26T00:02:00Z", "d1", "power_w", "12"],
    ])
    report = run_load_json(db_url, "csv", str(path))
    batch = report["batches"][0]
    assert (batch["status"], batch["rows_inserted"], batch["rows_duplicate"],
            batch["rows_conflict"]) == ("committed", 1, 1, 1)
    assert [r[3] for r in readings(conn)] == [10.0, 11.0, 12.0]


def test_last_write_wins_replaces_conflicting_values(db_url: str, conn: psycopg.Connection,
                                                     tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", ["time", "device", "metric", "value"], [
        ["2026-01-26T00:00:00Z", "d1", "power_w", "10"],
        ["2026-01-26T00:01:00Z", "d1", "power_w", "11"],
    ])
    second = write_csv(tmp_path / "b.csv", ["time", "device", "metric", "value"], [
        ["2026-01-26T00:00:00Z", "d1", "power_w", "10"],
        ["2026-01-26T00:01:00Z", "d1", "power_w", "99"],
        ["2026-01-26T00:02:00Z", "d1", "power_w", "12"],
    ])
    run_load(db_url, "csv", str(first))
    batch = run_load_json(db_url, "csv", str(second), "--last-write-wins")["batches"][0]
    assert (batch["rows_inserted"], batch["rows_duplicate"], batch["rows_conflict"]) == (1, 1, 1)
    assert [r[3] for r in readings(conn)] == [10.0, 99.0, 12.0]
    assert scalar(conn, "select batch_id from telemetry.readings where value = 99") == \
        batch["batch_id"]


def test_battery_directory_registers_assets_and_series(db_url: str, conn: psycopg.Connection
                                                       ) -> None:
    report = run_load_json(db_url, "battery", str(SAMPLES / "battery"))
    assert report["totals"]["rows_inserted"] == 3 * 3 * 192
    devices = conn.execute("select device_key, description, state, device_type,"
                           " last_reading_at is null from telemetry.devices order by 1").fetchall()
    assert len(devices) == 4
    assert devices[2][1:] == ("BAT-3 home battery, site 3", "Warning", "battery", False)
    assert devices[3][4] is True  # the asset without telemetry is a device with no readings
    units = dict(conn.execute("select metric_name, unit from telemetry.metrics").fetchall())
    assert units == {"StateOfChargePercentage": "%", "BatteryPowerW": "W",
                     "GridImportKwh-mainmeter": "kWh"}
    low = scalar(conn, "select min(value) from telemetry.readings_named"
                       " where metric_name = 'StateOfChargePercentage'"
                       " and device_key like '%%0003'", ())
    assert low == 12.0
    first = conn.execute(
        "select recorded_at = timestamptz '2026-01-26 00:00:00+00', value"
        " from telemetry.readings_named where device_key like '%%0001'"
        " and metric_name = 'StateOfChargePercentage' order by recorded_at limit 1", ()).fetchone()
    assert first is not None and first[0] is True


def test_messages_load_with_tenants_metadata_and_redeliveries_deduplicated(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [
        message("m-1"),
        message("m-2", device="device-xyz-9", organization="org-2", timestamp=
                "2026-01-28T14:31:00+01:00", temperature=30.0),
        message("m-1"),  # redelivered in the same file
    ])
    batch = run_load_json(db_url, "messages", str(path))["batches"][0]
    assert (batch["rows_read"], batch["rows_inserted"], batch["rows_duplicate"]) == (9, 5, 4)
    assert conn.execute("select d.device_key, t.tenant_key, d.device_type, d.serial_number,"
                        " d.firmware_version from telemetry.devices as d join telemetry.tenants"
                        " as t using (tenant_id) order by 1").fetchall() == [
        ("device-abc-123", "org-1", "pump-sensor", "SN-1", "1.0.0"),
        ("device-xyz-9", "org-2", "pump-sensor", "SN-1", "1.0.0"),
    ]
    assert ("2026-01-28T13:31:00", "device-xyz-9", "temperature", 30.0, "good") in readings(conn)
    # The same message in another file (a redelivery later on) changes nothing.
    again = write_jsonl(tmp_path / "again.jsonl", [
        {**message("m-1", voltage=1.0), "deviceMetadata": {"firmwareVersion": "1.0.0"}}])
    before = readings(conn)
    batch = run_load_json(db_url, "messages", str(again))["batches"][0]
    assert (batch["rows_inserted"], batch["rows_duplicate"], batch["messages_duplicate"]) == \
        (0, 1, 1)
    assert readings(conn) == before


def test_messages_from_stdin_and_metadata_updates_the_device(db_url: str,
                                                             conn: psycopg.Connection) -> None:
    first = message("m-1")
    later = message("m-2", timestamp="2026-01-28T14:35:00Z")
    later["deviceMetadata"]["firmwareVersion"] = "2.0.0"
    import json
    result = run_load(db_url, "messages", "-",
                      input=json.dumps(first) + "\n" + json.dumps(later) + "\n")
    assert result.exit_code == 0, result.output
    assert "<stdin>: committed" in result.stdout
    assert scalar(conn, "select firmware_version from telemetry.devices") == "2.0.0"
    assert str(scalar(conn, "select last_reading_at from telemetry.devices")).startswith(
        "2026-01-28 14:35:00")


@pytest.mark.parametrize(("args", "header", "rows"), [
    pytest.param(["--layout", "narrow"], ["time", "device", "metric", "value", "quality"],
                 [["2026-01-26T00:00:00Z", "m1", "power_w", "5.5", "Suspect"],
                  ["2026-01-26T00:00:00Z", "m1", "energy_kwh", "1.25", ""]], id="narrow"),
    pytest.param(["--layout", "wide"], ["time", "device", "power_w", "energy_kwh", "quality"],
                 [["2026-01-26T00:00:00Z", "m1", "5.5", "1.25", "suspect"]], id="wide"),
    pytest.param(["--layout", "wide", "--device", "m1", "--time-format", "epoch_s"],
                 ["time", "power_w", "energy_kwh", "quality"],
                 [["1769385600", "5.5", "1.25", "suspect"]], id="wide-fixed-device-epoch-s"),
    pytest.param(["--time-format", "epoch_ms", "--time-column", "ts", "--device-column", "id",
                  "--metric-column", "name", "--value-column", "v", "--quality-column", "q"],
                 ["ts", "id", "name", "v", "q"],
                 [["1769385600000", "m1", "power_w", "5.5", "suspect"],
                  ["1769385600000", "m1", "energy_kwh", "1.25", "good"]], id="renamed-epoch-ms"),
    pytest.param(["--timezone", "America/New_York"],
                 ["time", "device", "metric", "value"],
                 [["2026-01-25 19:00:00", "m1", "power_w", "5.5"],
                  ["2026-01-26T00:00:00+00:00", "m1", "energy_kwh", "1.25"]], id="timezone"),
])
def test_generic_csv_layouts_give_the_same_readings(db_url: str, conn: psycopg.Connection,
                                                    tmp_path: Path, args: list[str],
                                                    header: list[str],
                                                    rows: list[list[str]]) -> None:
    path = write_csv(tmp_path / "g.csv", header, rows)
    result = run_load(db_url, "csv", str(path), *args)
    assert result.exit_code == 0, result.output
    stored = readings(conn)
    assert [r[:4] for r in stored] == [("2026-01-26T00:00:00", "m1", "energy_kwh", 1.25),
                                       ("2026-01-26T00:00:00", "m1", "power_w", 5.5)]
    assert scalar(conn, "select last_reading_at = timestamptz '2026-01-26 00:00+00'"
                        " from telemetry.devices")


def test_generic_csv_tenant_option_owns_new_devices(db_url: str, conn: psycopg.Connection,
                                                    tmp_path: Path) -> None:
    path = write_csv(tmp_path / "g.csv", ["time", "device", "metric", "value"],
                     [["2026-01-26T00:00:00Z", "m9", "power_w", "1"]])
    run_load(db_url, "csv", str(path), "--tenant", "acme")
    assert scalar(conn, "select t.tenant_key from telemetry.devices as d"
                        " join telemetry.tenants as t using (tenant_id)") == "acme"


def test_summary_line_reports_counts_per_batch(db_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "g.csv", ["time", "device", "metric", "value"],
                     [["2026-01-26T00:00:00Z", "m9", "power_w", "1"],
                      ["not a time", "m9", "power_w", "2"]])
    result = run_load(db_url, "csv", str(path))
    assert result.exit_code == 0
    assert f"{path}: committed (batch 1), read 2, inserted 1, duplicates 0, conflicts 0," \
           " rejected 1," in result.stdout


def test_last_reading_at_never_moves_backwards(db_url: str, conn: psycopg.Connection,
                                               tmp_path: Path) -> None:
    new = write_csv(tmp_path / "new.csv", ["time", "device", "metric", "value"],
                    [["2026-01-28T00:00:00Z", "m1", "power_w", "1"]])
    old = write_csv(tmp_path / "old.csv", ["time", "device", "metric", "value"],
                    [["2026-01-20T00:00:00Z", "m1", "power_w", "1"]])
    run_load(db_url, "csv", str(new))
    run_load(db_url, "csv", str(old))
    assert scalar(conn, "select last_reading_at = timestamptz '2026-01-28 00:00+00'"
                        " from telemetry.devices")


@pytest.mark.parametrize("fmt", ["instruments", "battery", "messages", "csv"])
def test_every_format_documents_an_example(fmt: str) -> None:
    from click.testing import CliRunner

    from loader.cli import main
    result = CliRunner().invoke(main, ["load", fmt, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and f"tsfleet load {fmt}" in result.output


def test_batches_record_checksum_and_loader_version(db_url: str, conn: psycopg.Connection,
                                                    tmp_path: Path) -> None:
    path = write_csv(tmp_path / "g.csv", ["time", "device", "metric", "value"],
                     [["2026-01-26T00:00:00Z", "m9", "power_w", "1"]])
    run_load(db_url, "csv", str(path))
    (batch,) = batches(conn)
    assert batch["status"] == "committed" and len(batch["checksum"]) == 64
    assert batch["loader_version"] and batch["finished_at"] is not None
    assert batch["min_recorded_at"] == batch["max_recorded_at"]


@pytest.mark.community
def test_reloading_into_compressed_chunks_still_deduplicates(db_url: str,
                                                            conn: psycopg.Connection,
                                                            tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", ["time", "device", "metric", "value"], [
        ["2026-01-05T00:00:00Z", "d1", "power_w", "10"],
        ["2026-01-05T00:01:00Z", "d1", "power_w", "11"],
    ])
    run_load(db_url, "csv", str(first))
    conn.execute("select public.compress_chunk(c) from public.show_chunks('telemetry.readings')"
                 " as c")
    second = write_csv(tmp_path / "b.csv", ["time", "device", "metric", "value"], [
        ["2026-01-05T00:00:00Z", "d1", "power_w", "10"],
        ["2026-01-05T00:01:00Z", "d1", "power_w", "99"],
        ["2026-01-05T00:02:00Z", "d1", "power_w", "12"],
    ])
    batch = run_load_json(db_url, "csv", str(second))["batches"][0]
    assert (batch["rows_inserted"], batch["rows_duplicate"], batch["rows_conflict"]) == (1, 1, 1)
    assert [r[3] for r in readings(conn)] == [10.0, 11.0, 12.0]
    lww = write_csv(tmp_path / "c.csv", ["time", "device", "metric", "value"],
                    [["2026-01-05T00:01:00Z", "d1", "power_w", "99"]])
    run_load(db_url, "csv", str(lww), "--last-write-wins")
    assert [r[3] for r in readings(conn)] == [10.0, 99.0, 12.0]


def test_a_redelivered_old_message_does_not_revert_device_metadata(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    old = message("m-1")  # firmware 1.0.0
    new = message("m-2", timestamp="2026-01-28T15:00:00Z")
    new["deviceMetadata"]["firmwareVersion"] = "2.0.0"
    run_load(db_url, "messages", str(write_jsonl(tmp_path / "a.jsonl", [old, new])))
    assert scalar(conn, "select firmware_version from telemetry.devices") == "2.0.0"
    batch = run_load_json(db_url, "messages", str(write_jsonl(tmp_path / "b.jsonl", [old])))
    assert batch["batches"][0]["messages_duplicate"] == 1
    assert scalar(conn, "select firmware_version from telemetry.devices") == "2.0.0"
