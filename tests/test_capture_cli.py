"""`tsfleet capture` as a user meets it: dry run, clear errors, safe output folders."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.capture_support import (
    SAMPLE_ARGS,
    capture,
    cli,
    load_sample,
    read_manifest,
    validate_manifest,
)


def test_dry_run_prints_the_plan_and_writes_nothing(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    out = tmp_path / "bundle"
    result = cli("capture", "--database-url", db_url, *SAMPLE_ARGS, "--dry-run",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "devices/pump-01/temperature_c.csv" in result.output
    assert "4 file(s) x 12 bins of 300 s" in result.output
    assert "data_gap 17" in result.output  # 3 + 2 + 12 gap bins
    assert "dry run: nothing written" in result.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_dry_run_sizes_match_what_a_capture_writes(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    dry = cli("capture", "--database-url", db_url, *SAMPLE_ARGS, "--dry-run")
    assert capture(db_url, tmp_path / "b", *SAMPLE_ARGS).exit_code == 0
    total = sum(p.stat().st_size for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert f"{total} bytes with manifest.json" in dry.output


BAD_ARGUMENTS = [
    (["--end", "2026-02-28T00:00:00Z"], "is not after --start"),
    (["--bin", "0m"], "longer than zero"),
    (["--bin", "5 minutes"], "unit s, m, h or d"),
    (["--end", "2026-03-01T01:02:00Z"], "not a whole number of 5m bins"),
    (["--start", "yesterday"], "not an ISO-8601 time"),
    (["--devices", "pump-99"], "unknown device(s): pump-99"),
    (["--metrics", "rpm"], "unknown metric(s): rpm"),
    (["--assets", "rig-z"], "either --devices or --assets"),
]


@pytest.mark.parametrize(("override", "message"), BAD_ARGUMENTS,
                         ids=[m for _, m in BAD_ARGUMENTS])
def test_bad_arguments_are_usage_errors_that_say_what_to_fix(
    conn: psycopg.Connection, db_url: str, tmp_path: Path, override: list[str], message: str
) -> None:
    load_sample(conn)
    args = dict(zip(SAMPLE_ARGS[::2], SAMPLE_ARGS[1::2], strict=True))
    if override[0] == "--assets":
        args_list = [*SAMPLE_ARGS, *override]
    else:
        if override[0] == "--devices":
            args["--devices"] = "pump-01," + override[1]
        else:
            args[override[0]] = override[1]
        args_list = [item for pair in args.items() for item in pair]
    result = capture(db_url, tmp_path / "b", *args_list)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "b").exists()


def test_unknown_asset_is_a_usage_error(db_url: str, tmp_path: Path) -> None:
    result = capture(db_url, tmp_path / "b", "--assets", "rig-z", "--metrics", "x",
                     "--start", "2026-03-01", "--end", "2026-03-02", "--bin", "1h")
    assert result.exit_code == 2
    assert "unknown asset(s): rig-z" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- action: drop\n  bins: ['2026-03-01T00:05:00Z']\n", "injections[0]:action"),
        ("- action: nan\n  bins: ['2026-03-01T00:07:00Z']\n",
         "injections[0]:bins[0]: 2026-03-01T00:07:00Z is not a bin start"),
        ("- action: nan\n  device: pump-09\n  bins: ['2026-03-01T00:05:00Z']\n",
         "injections[0]:device: 'pump-09' is not in this capture"),
        ("- action: zero\n  start: '2026-03-01T00:05:00Z'\n", "give start and end together"),
        ("{not: [valid", "cannot read the gaps file"),
    ],
)
def test_a_bad_gaps_file_names_the_entry_and_field(
    conn: psycopg.Connection, db_url: str, tmp_path: Path, content: str, message: str
) -> None:
    load_sample(conn)
    gaps = tmp_path / "gaps.yaml"
    gaps.write_text(content)
    result = capture(db_url, tmp_path / "b", *SAMPLE_ARGS, "--gaps", str(gaps))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert str(gaps) in result.output


def test_a_non_empty_output_folder_is_refused_and_force_replaces_a_bundle(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused = capture(db_url, other, *SAMPLE_ARGS, "--force")
    assert refused.exit_code == 1 and "not a bundle" in refused.output
    assert (other / "notes.txt").read_text() == "mine"
    out = tmp_path / "b"
    assert capture(db_url, out, *SAMPLE_ARGS).exit_code == 0
    again = capture(db_url, out, *SAMPLE_ARGS, "--fill", "zero")
    assert again.exit_code == 1 and "--force" in again.output
    assert read_manifest(out)["grid"]["fill"] == "nan"
    replaced = capture(db_url, out, *SAMPLE_ARGS, "--fill", "zero", "--force")
    assert replaced.exit_code == 0, replaced.output
    assert read_manifest(out)["grid"]["fill"] == "zero"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "other"]


def test_keys_that_are_not_file_names_get_safe_distinct_paths(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    conn.execute(
        "insert into telemetry.devices (tenant_id, device_key)"
        " values (1, 'site 1/pump'), (1, 'site_1_pump');"
        "insert into telemetry.metrics (metric_name) values ('flow')"
    )
    result = capture(db_url, tmp_path / "b", "--devices", "site 1/pump,site_1_pump",
                     "--metrics", "flow", "--start", "2026-03-01", "--end", "2026-03-01T01:00",
                     "--bin", "1h")
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "b")
    validate_manifest(manifest)
    paths = {f["device"]: f["path"] for f in manifest["files"]}
    assert paths["site_1_pump"] == "devices/site_1_pump/flow.csv"
    assert paths["site 1/pump"].startswith("devices/site_1_pump-")
    assert (tmp_path / "b" / paths["site 1/pump"]).is_file()
