"""Real CSV dialects and the exactly-once record (issue 14): each option with the loaded values
checked; in-file duplicates and conflicts recorded with line and key; --strict fails on a
conflict; DST with --ambiguous; the checksum covers what changes what is stored."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.ingest_support import batches, readings, run_load, run_load_json, scalar, write_jsonl
from tests.ingest_support import message as normalized


def test_a_european_air_quality_export_loads_with_its_dialect(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "AirQuality.csv"
    path.write_text("Date;Time;CO(GT);T;RH;NMHC(GT)\n"
                    "10/03/2004;18.00.00;2,6;13,6;48,9;150\n"
                    "10/03/2004;19.00.00;-200;13,3;47,7;112\n"
                    "10/03/2004;20.00.00;2,2;11,9;-200;88\n")
    result = run_load_json(db_url, "csv", str(path), "--layout", "wide", "--device", "air-1",
                           "--delimiter", ";", "--decimal", ",", "--time-column", "Date",
                           "--time-column", "Time", "--time-format", "%d/%m/%Y %H.%M.%S",
                           "--timezone", "Europe/Rome", "--na-value", "-200",
                           "--exclude", "NMHC(GT)")
    assert result["totals"]["rows_inserted"] == 7 and result["totals"]["values_missing"] == 2
    assert result["totals"]["rows_rejected"] == 0
    assert readings(conn) == [
        ("2004-03-10T17:00:00", "air-1", "CO(GT)", 2.6, "good"),
        ("2004-03-10T17:00:00", "air-1", "RH", 48.9, "good"),
        ("2004-03-10T17:00:00", "air-1", "T", 13.6, "good"),
        ("2004-03-10T18:00:00", "air-1", "RH", 47.7, "good"),
        ("2004-03-10T18:00:00", "air-1", "T", 13.3, "good"),
        ("2004-03-10T19:00:00", "air-1", "CO(GT)", 2.2, "good"),
        ("2004-03-10T19:00:00", "air-1", "T", 11.9, "good"),
    ]


def test_columns_chooses_the_metric_columns_of_a_wide_file(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text('time,device,T,RH,label\n2026-02-01T00:00:00Z,d1,1.5,40,"a, b"\n')
    result = run_load(db_url, "csv", str(path), "--layout", "wide", "--columns", "T,RH")
    assert result.exit_code == 0, result.output
    assert [r[2:4] for r in readings(conn)] == [("RH", 40.0), ("T", 1.5)]


def test_ambiguous_local_times_take_the_instant_asked_for(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    for mode, utc in (("earliest", "2004-10-31T00:30:00"), ("latest", "2004-10-31T01:30:00")):
        path = tmp_path / f"{mode}.csv"
        path.write_text(f"time,device,metric,value\n2004-10-31T02:30:00,{mode},power_w,1\n")
        result = run_load(db_url, "csv", str(path), "--timezone", "Europe/Rome",
                          "--ambiguous", mode)
        assert result.exit_code == 0, result.output
        assert (utc, mode) in [r[:2] for r in readings(conn)]


def test_in_file_duplicates_and_conflicts_are_recorded_with_line_and_key(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "repeat.csv"
    path.write_text("time,device,metric,value\n"
                    "2026-02-01T00:00:00Z,d1,power_w,1\n"
                    "2026-02-01T01:00:00Z,d1,power_w,2\n"
                    "2026-02-01T00:00:00Z,d1,power_w,1\n"
                    "2026-02-01T01:00:00Z,d1,power_w,9\n")
    result = run_load_json(db_url, "csv", str(path))
    (batch,) = result["batches"]
    assert (batch["rows_inserted"], batch["rows_duplicate"], batch["rows_conflict"]) == (2, 1, 1)
    recorded = conn.execute("select line_number, kind, device_key, metric_name, value,"
                            " other_value, other_line_number from ingest.collisions"
                            " order by line_number").fetchall()
    assert recorded == [(4, "duplicate", "d1", "power_w", 1.0, 1.0, 2),
                        (5, "conflict", "d1", "power_w", 9.0, 2.0, 3)]
    assert [r[3] for r in readings(conn)] == [1.0, 2.0]


def test_strict_fails_on_a_conflict_with_its_line_and_key(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "conflict.csv"
    path.write_text("time,device,metric,value\n2026-02-01T00:00:00Z,d1,power_w,1\n"
                    "2026-02-01T00:00:00Z,d1,power_w,2\n")
    result = run_load(db_url, "csv", str(path), "--strict")
    assert result.exit_code == 1
    assert "conflict.csv:3: conflict: key (2026-02-01 00:00:00+00, d1, power_w) holds 1, line 2" \
        in result.output
    assert readings(conn) == [] and batches(conn)[-1]["status"] == "failed"


def test_a_conflict_with_a_stored_reading_names_the_batch_that_stored_it(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    first = tmp_path / "first.csv"
    first.write_text("time,device,metric,value\n2026-02-01T00:00:00Z,d1,power_w,1\n")
    second = tmp_path / "second.csv"
    second.write_text("time,device,metric,value\n2026-02-01T00:00:00Z,d1,power_w,5\n")
    assert run_load(db_url, "csv", str(first)).exit_code == 0
    assert run_load(db_url, "csv", str(second)).exit_code == 0
    assert conn.execute("select source_name, line_number, kind, stored_batch_id"
                        " from ingest.collisions").fetchall() == [(str(second), 2, "conflict", 1)]


def test_a_message_id_repeated_in_one_file_is_loaded_once(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [
        normalized("m-1", temperature=1.0), normalized("m-1", temperature=1.0),
        normalized("m-1", temperature=2.0), normalized("m-1", temperature=3.0)])
    (batch,) = run_load_json(db_url, "messages", str(path))["batches"]
    assert (batch["rows_inserted"], batch["messages_duplicate"]) == (1, 3)
    assert [r[3] for r in readings(conn)] == [1.0]


def test_a_batch_with_every_row_rejected_fails_and_registers_no_checksum(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "epoch.csv"
    path.write_text("time,device,metric,value\n1769904000,d1,power_w,1\n")
    assert run_load(db_url, "csv", str(path)).exit_code == 1
    right = run_load(db_url, "csv", str(path), "--time-format", "epoch_s")
    assert right.exit_code == 0 and "committed" in right.output
    assert scalar(conn, "select count(*) from telemetry.readings") == 1


def test_options_that_change_what_is_stored_are_part_of_the_checksum(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "lww.csv"
    path.write_text("time,device,metric,value\n2026-02-01T00:00:00,d1,power_w,1\n")
    assert "committed" in run_load(db_url, "csv", str(path)).output
    assert "skipped" in run_load(db_url, "csv", str(path)).output
    for extra in (["--last-write-wins"], ["--timezone", "Europe/Rome"], ["--tenant", "t2"]):
        assert "committed" in run_load(db_url, "csv", str(path), *extra).output, extra
