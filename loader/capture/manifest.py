"""manifest.json: canonical JSON, checksums and warnings.

Checksums (all sha256, hex):
- files[].sha256: the bytes of each CSV;
- provenance.bundle_sha256: over the files, = sha256 of the lines "<sha256>  <path>\\n" sorted
  by path (what `sha256sum` prints), so it depends on the data files only and survives
  capture -> load -> capture;
- provenance.query.sha256: the canonical query parameters (canonical JSON below);
- provenance.source_rows.sha256: the raw readings read (see telemetry.summarize_capture_sources);
- manifest_sha256: the canonical JSON of the manifest without this key, so a changed byte
  anywhere in the manifest is caught too.
Canonical JSON: sorted keys, no whitespace, UTF-8. manifest.json itself is written with
sorted keys, 2-space indent and a final newline, and must be exactly that (verify checks it).
Nothing in the manifest depends on the wall clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta

from loader.capture.request import format_time

SCHEMA_VERSION = "1.0.0"
MANIFEST_NAME = "manifest.json"
BUNDLE_KIND = "tsfleet.capture"


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render_manifest(manifest: dict[str, object]) -> bytes:
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def manifest_checksum(manifest: dict[str, object]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return sha256_hex(canonical_json(body))


def seal(manifest: dict[str, object]) -> dict[str, object]:
    """The manifest with its own checksum added."""
    return {**manifest, "manifest_sha256": manifest_checksum(manifest)}


def bundle_checksum(files: Iterable[tuple[str, str]]) -> str:
    """sha256 over "<sha256>  <path>\\n" lines of (path, sha256) pairs, sorted by path."""
    listing = "".join(f"{sha}  {path}\n" for path, sha in sorted(files))
    return sha256_hex(listing.encode("utf-8"))


def ranges(bins: Iterable[datetime], bin_width: timedelta) -> list[dict[str, object]]:
    """Consecutive bin starts grouped: [{first_bin, last_bin, bins}] in time order."""
    out: list[dict[str, object]] = []
    first = last = None
    count = 0
    for at in sorted(bins):
        if last is not None and at - last == bin_width:
            last, count = at, count + 1
            continue
        if first is not None:
            out.append({"first_bin": format_time(first), "last_bin": format_time(last),
                        "bins": count})
        first = last = at
        count = 1
    if first is not None:
        out.append({"first_bin": format_time(first), "last_bin": format_time(last),
                    "bins": count})
    return out


def warning(
    code: str,
    path: str,
    bins: Iterable[datetime],
    bin_width: timedelta,
    detail: dict[str, object] | None = None,
) -> dict[str, object]:
    bin_list = sorted(set(bins))
    entry: dict[str, object] = {
        "code": code,
        "file": path,
        "count": len(bin_list),
        "ranges": ranges(bin_list, bin_width),
    }
    if detail:
        entry["detail"] = detail
    return entry


def bins_in_warnings(
    manifest: dict[str, object], path: str, codes: Iterable[str]
) -> set[str]:
    """Every bin start (as written in the CSV) that warnings of these codes list for a file."""
    wanted = set(codes)
    width = timedelta(seconds=int(manifest["grid"]["bin_seconds"]))  # type: ignore[index]
    out: set[str] = set()
    for entry in manifest.get("warnings", []):  # type: ignore[union-attr]
        if entry["code"] not in wanted or entry["file"] != path:
            continue
        for span in entry["ranges"]:
            first = datetime.fromisoformat(span["first_bin"].replace("Z", "+00:00"))
            out.update(format_time(first + i * width) for i in range(int(span["bins"])))
    return out
