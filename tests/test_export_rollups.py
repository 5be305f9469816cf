"""`tsfleet export rollups` and `tsfleet refresh` through the CLI, against a real database."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from click.testing import CliRunner

from loader.cli import main
from tests.rollups_support import add_device, add_metric, day, insert_series, one


def load_instruments(conn: psycopg.Connection) -> None:
    temperature = add_metric(conn, "temperature_c")
    humidity = add_metric(conn, "humidity_pct")
    for key, offset in (("7", 0), ("12", 5)):
        device = add_device(conn, key)
        insert_series(conn, device, temperature, day("2026-03-01"), day("2026-03-02"), "1 hour",
                      value_sql=f"{10 + offset} + n / 2.0",
                      quality_sql="case when n in (3, 4) then 'suspect' else 'good' end")
        insert_series(conn, device, humidity, day("2026-03-01"), day("2026-03-02"), "1 hour",
                      value_sql=f"{50 + offset} + mod(n, 4)")


def run(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


def test_refresh_command_fills_the_rollups(db_url: str, conn: psycopg.Connection) -> None:
    load_instruments(conn)
    result = run("refresh", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    assert "refreshed every rollup" in result.output
    assert one(conn, "select count(*) from rollups.instrument_daily") == 2


def test_refresh_command_refreshes_only_the_given_range(db_url: str,
                                                        conn: psycopg.Connection) -> None:
    load_instruments(conn)
    result = run("refresh", "--database-url", db_url, "--start", "2026-03-01T05:00:00Z",
                 "--end", "2026-03-01T06:00:00")
    assert result.exit_code == 0, result.output
    assert one(conn, "select count(distinct bucket_start)"
                     " from rollups.device_metrics_hourly") == 1


def test_refresh_command_rejects_a_backwards_range(db_url: str) -> None:
    result = run("refresh", "--database-url", db_url, "--start", "2026-03-02",
                 "--end", "2026-03-01")
    assert result.exit_code == 2
    assert "must be before --end" in result.output
    result = run("refresh", "--database-url", db_url, "--start", "yesterday")
    assert result.exit_code == 2 and "ISO-8601" in result.output


def test_export_writes_one_sorted_document_per_instrument_and_day(
    db_url: str, conn: psycopg.Connection, tmp_path: Path,
) -> None:
    load_instruments(conn)
    assert run("refresh", "--database-url", db_url).exit_code == 0
    result = run("export", "rollups", "--database-url", db_url, "--day", "2026-03-01",
                 "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["instrument_12_20260301.json", "instrument_7_20260301.json"]
    text = (tmp_path / "instrument_7_20260301.json").read_text()
    document = json.loads(text)
    assert text == json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert document["instrument_id"] == "7" and document["day"] == "2026-03-01"
    assert document["metrics"]["temperature_c"] == {
        "unit": "C", "min": 10.0, "max": 21.5, "mean": 15.75, "count": 24,
        "quality": {"good": 22, "non_good": 2},
    }
    assert document["metrics"]["humidity_pct"]["mean"] == 51.5
    assert document["quality"] == {"good": 46, "non_good": 2, "total": 48}
    provenance = document["provenance"]
    assert provenance["source"] == "rollups.instrument_daily"
    assert provenance["generator"].startswith("tsfleet ")
    assert len(provenance["batches"]) == 2
    assert provenance["day_window_utc"] == ["2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"]


def test_export_is_byte_identical_when_run_twice(db_url: str, conn: psycopg.Connection,
                                                 tmp_path: Path) -> None:
    load_instruments(conn)
    assert run("refresh", "--database-url", db_url).exit_code == 0
    for out in ("a", "b"):
        result = run("export", "rollups", "--database-url", db_url, "--day", "2026-03-01",
                     "--instrument", "12", "--out", str(tmp_path / out))
        assert result.exit_code == 0, result.output
    first = (tmp_path / "a" / "instrument_12_20260301.json").read_bytes()
    assert first == (tmp_path / "b" / "instrument_12_20260301.json").read_bytes()
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["instrument_12_20260301.json"]


def test_export_of_a_day_without_rollups_says_what_to_do(db_url: str, conn: psycopg.Connection,
                                                         tmp_path: Path) -> None:
    load_instruments(conn)
    result = run("export", "rollups", "--database-url", db_url, "--day", "2026-03-01",
                 "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "tsfleet refresh" in result.output
    assert run("refresh", "--database-url", db_url).exit_code == 0
    result = run("export", "rollups", "--database-url", db_url, "--day", "2026-03-01",
                 "--instrument", "99", "--out", str(tmp_path))
    assert result.exit_code == 1 and "instrument(s) 99" in result.output
    result = run("export", "rollups", "--database-url", db_url, "--day", "01/03/2026",
                 "--out", str(tmp_path))
    assert result.exit_code == 2
