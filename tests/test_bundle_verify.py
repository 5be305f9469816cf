"""`tsfleet bundle verify`: every checksum recomputed; any change, loss or addition is caught."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.capture_support import SAMPLE_ARGS, bundle_files, capture, cli, load_sample


@pytest.fixture
def bundle_dir(conn: psycopg.Connection, db_url: str, tmp_path: Path) -> Path:
    load_sample(conn)
    out = tmp_path / "bundle"
    result = capture(db_url, out, *SAMPLE_ARGS)
    assert result.exit_code == 0, result.output
    return out


def _flip_one_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_verify_accepts_a_bundle_as_captured(bundle_dir: Path) -> None:
    result = cli("bundle", "verify", str(bundle_dir))
    assert result.exit_code == 0, result.output
    assert ": ok, 4 file(s), bundle sha256 " in result.output


def test_verify_catches_a_single_flipped_byte_in_a_csv(bundle_dir: Path) -> None:
    target = bundle_dir / "devices/pump-02/temperature_c.csv"
    _flip_one_byte(target, target.stat().st_size - 2)
    result = cli("bundle", "verify", str(bundle_dir))
    assert result.exit_code == 1
    assert "devices/pump-02/temperature_c.csv: sha256 does not match the manifest" in result.output
    assert "1 problem(s)" in result.output


@pytest.mark.parametrize("where", ["a sha256", "a warning count", "whitespace"])
def test_verify_catches_a_single_flipped_byte_in_the_manifest(
    bundle_dir: Path, where: str
) -> None:
    manifest = bundle_dir / "manifest.json"
    text = manifest.read_bytes()
    offsets = {
        "a sha256": text.index(b'"sha256": "') + len(b'"sha256": "'),
        "a warning count": text.index(b'"count": 2') + len(b'"count": '),
        "whitespace": text.index(b"\n  ") + 1,  # a space becomes '!'... a byte either way
    }
    _flip_one_byte(manifest, offsets[where])
    result = cli("bundle", "verify", str(bundle_dir))
    assert result.exit_code == 1
    assert "manifest.json" in result.output


def test_verify_reports_missing_and_extra_files(bundle_dir: Path) -> None:
    (bundle_dir / "devices/pump-01/power_w.csv").unlink()
    (bundle_dir / "devices/pump-01/notes.csv").write_text("bin_start,value\n")
    result = cli("bundle", "verify", str(bundle_dir))
    assert result.exit_code == 1
    assert "devices/pump-01/power_w.csv: missing" in result.output
    assert "devices/pump-01/notes.csv: extra file, not listed in the manifest" in result.output


def test_verify_of_a_folder_without_a_manifest_fails(tmp_path: Path) -> None:
    result = cli("bundle", "verify", str(tmp_path))
    assert result.exit_code == 1
    assert "manifest.json: missing" in result.output


def test_verify_leaves_the_bundle_untouched(bundle_dir: Path) -> None:
    before = bundle_files(bundle_dir)
    assert cli("bundle", "verify", str(bundle_dir)).exit_code == 0
    assert bundle_files(bundle_dir) == before
