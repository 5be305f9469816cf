"""Released migrations never change: sql/migrations/MANIFEST.sha256 holds each one's checksum.

A database migrated before an in-place edit never gets the edit (yoyo skips what it applied), so
production silently drifts from a fresh install. A fix is a new migration. The manifest is in
`sha256sum` format: `cd sql/migrations && sha256sum -c MANIFEST.sha256` checks it by hand, and a
new migration is added with `sha256sum NNNN.<verb>_<object>*.sql >> MANIFEST.sha256` (keep the
lines sorted by name).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent.parent / "sql" / "migrations"
MANIFEST = MIGRATIONS / "MANIFEST.sha256"
LINE = re.compile(r"^(?P<digest>[0-9a-f]{64})  (?P<name>\S+)$")


def manifest(folder: Path = MIGRATIONS) -> dict[str, str]:
    entries: dict[str, str] = {}
    for number, line in enumerate((folder / MANIFEST.name).read_text().splitlines(), start=1):
        match = LINE.match(line)
        assert match, f"MANIFEST.sha256:{number}: not a `sha256sum` line: {line!r}"
        assert match["name"] not in entries, f"MANIFEST.sha256:{number}: listed twice"
        entries[match["name"]] = match["digest"]
    return entries


def migration_files() -> list[str]:
    return sorted(p.name for p in MIGRATIONS.iterdir() if re.match(r"^\d{4}\.", p.name))


def changed_migrations(folder: Path = MIGRATIONS) -> list[str]:
    changed = []
    for name, digest in manifest(folder).items():
        path = folder / name
        if not path.exists():
            changed.append(f"{name}: removed")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            changed.append(f"{name}: changed")
    return changed


def test_no_listed_migration_changed_or_disappeared() -> None:
    changed = changed_migrations()
    assert changed == [], (
        "released migrations must never change (databases that applied them never see the "
        "edit); revert and write a new migration instead: " + ", ".join(changed))


def test_every_migration_file_is_listed() -> None:
    unlisted = [name for name in migration_files() if name not in manifest()]
    assert unlisted == [], (
        "add new migrations to sql/migrations/MANIFEST.sha256: "
        f"cd sql/migrations && sha256sum {' '.join(unlisted)} >> MANIFEST.sha256")


def test_every_forward_migration_has_its_rollback_listed_beside_it() -> None:
    names = manifest()
    forward = [n for n in names if n.endswith(".sql") and not n.endswith(".rollback.sql")]
    assert len(forward) > 30
    missing = [n for n in forward if n.removesuffix(".sql") + ".rollback.sql" not in names]
    assert missing == []


def test_the_check_reports_an_edited_and_a_removed_migration(tmp_path: Path) -> None:
    copy = shutil.copytree(MIGRATIONS, tmp_path / "migrations")
    with open(copy / "0006.create_readings.sql", "a") as handle:
        handle.write("\n")
    (copy / "0012.create_ingest_rejects.rollback.sql").unlink()
    assert changed_migrations(copy) == ["0006.create_readings.sql: changed",
                                        "0012.create_ingest_rejects.rollback.sql: removed"]
