"""Battery vendor API responses: a directory with assets/assets.json and telemetry/<id>.json.

assets.json = {"totalCount": N, "items": [{"deviceId", "description", "state"}, ...]}: each
item becomes a device (device_type 'battery') with its description and state.
telemetry/<deviceId>.json = {"series": [{"name": "StateOfChargePercentage",
"data": [[<epoch ms>, <number>], ...]}, ...]}: series names become metrics as given. The whole
directory is one batch: each file goes to the database as one document and
ingest.parse_battery reads them (sql/functions/22_ingest_parse.sql).
"""

from __future__ import annotations

from pathlib import Path

from psycopg import Cursor

from loader.formats.records import FormatError, Source
from loader.ingest.copy import copy_rows

SOURCE_KIND = "battery_api"


def files_of(root: Path) -> list[Path]:
    """The files that make up the batch (for the checksum), in a stable order."""
    assets = root / "assets" / "assets.json"
    if not assets.is_file():
        raise FormatError(str(assets), None, None, "assets/assets.json is missing",
                          "point at the directory holding assets/ and telemetry/")
    return [assets, *sorted((root / "telemetry").glob("*.json"))]


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FormatError(str(path), None, None, f"cannot read: {exc.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(str(path), raw[:exc.start].count(b"\n") + 1, None,
                          f"not UTF-8 text (byte offset {exc.start})",
                          "re-encode the file as UTF-8") from None


def open_battery_dir(root: Path, checksum: str | None, tenant_key: str = "default") -> Source:
    files = files_of(root)

    def feed(cur: Cursor, progress) -> None:
        copy_rows(cur, ((number, 1, None, path.stem if number > 1 else None, read_text(path))
                        for number, path in enumerate(files, start=1)))

    return Source(kind=SOURCE_KIND, name=str(root), checksum=checksum, format="battery",
                  feed=feed, names=[str(p) for p in files], tenant_key=tenant_key,
                  size=sum(p.stat().st_size for p in files))
