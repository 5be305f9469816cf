"""Every warning code, fill mode and aggregate, on crafted datasets; every manifest is valid."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.capture_support import (
    ASSET_ARGS,
    ASSET_SQL,
    SAMPLE_ARGS,
    capture,
    csv_rows,
    load_sample,
    read_manifest,
    validate_manifest,
    warning_codes,
    warnings_of,
)

P1_TEMP = "devices/pump-01/temperature_c.csv"
P1_POWER = "devices/pump-01/power_w.csv"
P2_TEMP = "devices/pump-02/temperature_c.csv"
P2_POWER = "devices/pump-02/power_w.csv"

ALL_CODES = {
    "data_gap", "nan_fill", "zero_fill", "hold_fill", "partial_bin", "out_of_range",
    "gap_injected_remove", "gap_injected_nan", "gap_injected_zero",
}


def _capture(db_url: str, out: Path, *extra: str) -> dict:
    result = capture(db_url, out, *SAMPLE_ARGS, *extra)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    validate_manifest(manifest)
    return manifest


def _gaps_file(tmp_path: Path) -> Path:
    path = tmp_path / "gaps.yaml"
    path.write_text(
        "injections:\n"
        "  - action: remove\n"
        "    device: pump-02\n"
        "    metric: temperature_c\n"
        "    bins: [2026-03-01T00:05:00Z, '2026-03-01T00:10:00Z']\n"
        "  - action: nan\n"
        "    metric: power_w\n"
        "    start: 2026-03-01T00:00:00Z\n"
        "    end: 2026-03-01T00:10:00Z\n"
        "  - action: zero\n"
        "    device: pump-01\n"
        "    metric: temperature_c\n"
        "    bins: ['2026-03-01T00:55:00Z']\n",
        encoding="utf-8",
    )
    return path


def test_every_warning_code_is_produced_by_the_crafted_dataset(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    seen: set[str] = set()
    for fill in ("nan", "zero", "hold", "none"):
        manifest = _capture(db_url, tmp_path / fill, "--fill", fill,
                            "--gaps", str(_gaps_file(tmp_path)))
        seen |= warning_codes(manifest)
    assert seen == ALL_CODES


def test_gaps_and_fills_are_reported_with_their_bin_ranges(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    manifest = _capture(db_url, tmp_path / "b")
    [gap] = warnings_of(manifest, "data_gap", P1_TEMP)
    assert gap["count"] == 3
    assert gap["ranges"] == [{"first_bin": "2026-03-01T00:20:00Z",
                              "last_bin": "2026-03-01T00:30:00Z", "bins": 3}]
    assert warnings_of(manifest, "nan_fill", P1_TEMP)[0]["ranges"] == gap["ranges"]
    assert warnings_of(manifest, "data_gap", P2_POWER)[0]["count"] == 12
    assert warnings_of(manifest, "data_gap", P2_TEMP) == []


def test_partial_bins_use_the_nominal_interval_else_the_median_interval(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    # pump-02 reports every 2 minutes (no nominal interval): median 120 s -> 2 per 5-minute bin.
    conn.execute(
        "delete from telemetry.readings as r using telemetry.devices as d"
        " where r.device_id = d.device_id and d.device_key = 'pump-02'"
        " and r.recorded_at in ('2026-03-01 00:12:30+00', '2026-03-01 00:14:30+00')"
    )
    manifest = _capture(db_url, tmp_path / "b")
    [nominal] = warnings_of(manifest, "partial_bin", P1_TEMP)
    assert nominal["detail"] == {"expected_per_bin": 5, "expected_from": "nominal_interval"}
    assert nominal["ranges"][0]["first_bin"] == "2026-03-01T00:00:00Z"
    assert nominal["count"] == 1
    [median] = warnings_of(manifest, "partial_bin", P2_TEMP)
    assert median["detail"] == {"expected_per_bin": 2, "expected_from": "median_interval"}
    assert median["ranges"] == [{"first_bin": "2026-03-01T00:10:00Z",
                                 "last_bin": "2026-03-01T00:10:00Z", "bins": 1}]


def test_out_of_range_readings_are_counted_with_the_valid_range(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    manifest = _capture(db_url, tmp_path / "b")
    [oor] = warnings_of(manifest, "out_of_range")
    assert oor["file"] == P1_TEMP
    assert oor["detail"] == {"readings": 1, "valid_min": -20.0, "valid_max": 90.0}
    assert oor["ranges"][0]["first_bin"] == "2026-03-01T00:50:00Z"


@pytest.mark.parametrize(
    ("fill", "expected", "code"),
    [
        ("nan", ["nan", "nan"], "nan_fill"),
        ("zero", ["0", "0"], "zero_fill"),
        ("hold", ["1164.5", "1164.5"], "hold_fill"),
        ("none", None, None),
    ],
)
def test_fill_modes_write_the_documented_values(
    conn: psycopg.Connection, db_url: str, tmp_path: Path,
    fill: str, expected: list[str] | None, code: str | None,
) -> None:
    load_sample(conn)
    manifest = _capture(db_url, tmp_path / "b", "--fill", fill)
    rows = dict(csv_rows(tmp_path / "b", P1_POWER))
    last_two = [rows.get("2026-03-01T00:50:00Z"), rows.get("2026-03-01T00:55:00Z")]
    entry = next(f for f in manifest["files"] if f["path"] == P1_POWER)
    if expected is None:
        assert last_two == [None, None]
        assert entry["rows"] == 10
        assert not warnings_of(manifest, "nan_fill") and not warnings_of(manifest, "zero_fill")
    else:
        assert last_two == expected
        assert entry["rows"] == 12
        assert warnings_of(manifest, code, P1_POWER)[0]["count"] == 2
    assert warnings_of(manifest, "data_gap", P1_POWER)[0]["count"] == 2


def test_hold_without_an_earlier_value_in_the_window_stays_nan(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    manifest = _capture(db_url, tmp_path / "b", "--fill", "hold")
    assert {v for _, v in csv_rows(tmp_path / "b", P2_POWER)} == {"nan"}
    assert warnings_of(manifest, "nan_fill", P2_POWER)[0]["count"] == 12
    assert warnings_of(manifest, "hold_fill", P2_POWER) == []


@pytest.mark.parametrize(
    ("aggregate", "value"),
    [("mean", "40.455"), ("last", "41.04"), ("min", "40"), ("max", "41.04"), ("sum", "161.82")],
)
def test_each_aggregate_gives_its_value_for_a_bin(
    conn: psycopg.Connection, db_url: str, tmp_path: Path, aggregate: str, value: str
) -> None:
    load_sample(conn)
    _capture(db_url, tmp_path / "b", "--aggregate", aggregate)
    assert csv_rows(tmp_path / "b", P1_TEMP)[0] == ("2026-03-01T00:00:00Z", value)


def test_injected_gaps_change_the_listed_bins_and_are_recorded(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    manifest = _capture(db_url, tmp_path / "b", "--gaps", str(_gaps_file(tmp_path)))
    p2 = dict(csv_rows(tmp_path / "b", P2_TEMP))
    assert "2026-03-01T00:05:00Z" not in p2 and "2026-03-01T00:10:00Z" not in p2
    assert len(p2) == 10
    [removed] = warnings_of(manifest, "gap_injected_remove", P2_TEMP)
    assert removed["ranges"] == [{"first_bin": "2026-03-01T00:05:00Z",
                                  "last_bin": "2026-03-01T00:10:00Z", "bins": 2}]
    p1_power = dict(csv_rows(tmp_path / "b", P1_POWER))
    assert p1_power["2026-03-01T00:00:00Z"] == "nan" and p1_power["2026-03-01T00:05:00Z"] == "nan"
    assert {w["file"] for w in warnings_of(manifest, "gap_injected_nan")} == {P1_POWER, P2_POWER}
    assert dict(csv_rows(tmp_path / "b", P1_TEMP))["2026-03-01T00:55:00Z"] == "0"
    assert warnings_of(manifest, "gap_injected_zero", P1_TEMP)[0]["count"] == 1
    assert manifest["provenance"]["query"]["parameters"]["gaps"][0] == {
        "action": "remove", "key": "pump-02", "metric": "temperature_c",
        "bins": ["2026-03-01T00:05:00Z", "2026-03-01T00:10:00Z"],
    }


def test_a_json_gaps_file_works_like_yaml(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    path = tmp_path / "gaps.json"
    path.write_text(json.dumps([{"action": "zero", "bins": ["2026-03-01T00:20:00Z"]}]))
    manifest = _capture(db_url, tmp_path / "b", "--gaps", str(path))
    assert len(warnings_of(manifest, "gap_injected_zero")) == 4


def test_asset_series_aggregate_every_source_device(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    conn.execute(ASSET_SQL)
    result = capture(db_url, tmp_path / "b", *ASSET_ARGS)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "b")
    validate_manifest(manifest)
    [entry] = manifest["files"]
    assert entry["path"] == "assets/rig-a/flow_lpm.csv"
    assert entry["asset"] == "rig-a" and entry["asset_type"] == "capture_rig"
    rows = csv_rows(tmp_path / "b", entry["path"])
    # Bin 0: minutes 0-4 from two devices (ids differ by 1): mean of 10..14 plus id halves.
    first = float(rows[0][1])
    assert 12 < first < 14
    assert rows[2][1] == "nan"
    assert warnings_of(manifest, "data_gap")[0]["count"] == 1
    assert manifest["provenance"]["source_rows"]["count"] == 50
