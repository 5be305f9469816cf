"""Golden bundle: the sample dataset captures to exactly the files in tests/golden/sample.

Regenerate after an intended change of the output (then review the diff before committing):
    TSFLEET_UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/test_capture_golden.py
The manifest is compared without what names the source database or the release
(tests/golden/sample.manifest.json holds it normalized); every CSV byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import psycopg

from tests.capture_support import (
    GOLDEN,
    SAMPLE_ARGS,
    capture,
    data_files,
    load_sample,
    normalized_manifest,
    read_manifest,
    validate_manifest,
)

GOLDEN_BUNDLE = GOLDEN / "sample"
GOLDEN_MANIFEST = GOLDEN / "sample.manifest.json"


def _update_golden(folder: Path) -> None:
    if GOLDEN_BUNDLE.exists():
        shutil.rmtree(GOLDEN_BUNDLE)
    GOLDEN_BUNDLE.mkdir(parents=True)
    for path, data in data_files(folder).items():
        target = GOLDEN_BUNDLE / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    text = json.dumps(normalized_manifest(read_manifest(folder)), sort_keys=True, indent=2)
    GOLDEN_MANIFEST.write_text(text + "\n", encoding="utf-8")


def test_capture_of_the_sample_data_matches_the_golden_bundle(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    load_sample(conn)
    out = tmp_path / "bundle"
    result = capture(db_url, out, *SAMPLE_ARGS)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    validate_manifest(manifest)
    if os.environ.get("TSFLEET_UPDATE_GOLDEN"):
        _update_golden(out)
    golden_files = {p.relative_to(GOLDEN_BUNDLE).as_posix(): p.read_bytes()
                    for p in sorted(GOLDEN_BUNDLE.rglob("*")) if p.is_file()}
    assert data_files(out) == golden_files
    golden_manifest = json.loads(GOLDEN_MANIFEST.read_text(encoding="utf-8"))
    assert normalized_manifest(manifest) == golden_manifest


def test_golden_bundle_shows_the_documented_csv_format() -> None:
    lines = (GOLDEN_BUNDLE / "devices/pump-02/temperature_c.csv").read_text().splitlines()
    assert lines[0] == "bin_start,value"
    assert lines[1] == "2026-03-01T00:00:00Z,30.3333333333333"
    assert len(lines) == 13
    power = (GOLDEN_BUNDLE / "devices/pump-02/power_w.csv").read_text().splitlines()
    assert power[1:] == [f"2026-03-01T00:{m:02d}:00Z,nan" for m in range(0, 60, 5)]
