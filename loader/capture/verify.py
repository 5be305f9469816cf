"""Verify a bundle folder: every checksum recomputed, every file accounted for.

Problems found (each one line, "<path>: <what>"):
- manifest.json missing, not JSON, not in canonical form, or its manifest_sha256 wrong;
- a listed file missing, or its size or sha256 different from the manifest;
- a file in the folder that the manifest does not list;
- provenance.bundle_sha256 different from the checksum over the listed files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from loader.capture import manifest as mf


@dataclass
class Verification:
    folder: Path
    manifest: dict[str, object] | None = None
    problems: list[str] = field(default_factory=list)
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _listed_files(body: dict[str, object]) -> list[dict[str, object]]:
    files = body.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str)
        for f in files
    ):
        raise ValueError("files must be a list of {path, sha256, ...}")
    return files


def verify(folder: Path) -> Verification:
    result = Verification(folder=folder)
    manifest_path = folder / mf.MANIFEST_NAME
    if not folder.is_dir():
        result.problems.append(f"{folder}: not a folder")
        return result
    if not manifest_path.is_file():
        result.problems.append(f"{mf.MANIFEST_NAME}: missing")
        return result
    raw = manifest_path.read_bytes()
    try:
        body = json.loads(raw.decode("utf-8"))
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        files = _listed_files(body)
    except (UnicodeDecodeError, ValueError) as exc:
        result.problems.append(f"{mf.MANIFEST_NAME}: unreadable ({exc})")
        return result
    result.manifest = body
    if body.get("manifest_sha256") != mf.manifest_checksum(body):
        result.problems.append(f"{mf.MANIFEST_NAME}: manifest_sha256 does not match its content")
    if mf.render_manifest(body) != raw:
        result.problems.append(
            f"{mf.MANIFEST_NAME}: not in canonical form (sorted keys, 2-space indent); "
            "it was edited after capture"
        )
    listed = {str(f["path"]) for f in files}
    for entry in files:
        path = str(entry["path"])
        target = folder / path
        if Path(path).is_absolute() or ".." in Path(path).parts:
            result.problems.append(f"{path}: path leaves the bundle folder")
            continue
        if not target.is_file():
            result.problems.append(f"{path}: missing")
            continue
        data = target.read_bytes()
        result.files_checked += 1
        if entry.get("bytes") is not None and len(data) != entry["bytes"]:
            result.problems.append(
                f"{path}: {len(data)} bytes, the manifest says {entry['bytes']}"
            )
        if mf.sha256_hex(data) != entry["sha256"]:
            result.problems.append(f"{path}: sha256 does not match the manifest")
    for found in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = found.relative_to(folder).as_posix()
        if relative != mf.MANIFEST_NAME and relative not in listed:
            result.problems.append(f"{relative}: extra file, not listed in the manifest")
    provenance = body.get("provenance")
    expected = mf.bundle_checksum((str(f["path"]), str(f["sha256"])) for f in files)
    if not isinstance(provenance, dict) or provenance.get("bundle_sha256") != expected:
        result.problems.append(
            f"{mf.MANIFEST_NAME}: provenance.bundle_sha256 does not match the listed files"
        )
    return result
