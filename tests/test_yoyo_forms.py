"""yoyo as yoyo users run it from the repository root, and `tsfleet migrate --list`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
from click.testing import CliRunner

from loader import migrate
from loader.cli import main
from loader.db import yoyo_url

REPO = Path(__file__).resolve().parent.parent
YOYO = str(Path(sys.executable).parent / "yoyo")


def yoyo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([YOYO, *args], cwd=REPO, env={**base, **env}, capture_output=True,
                          text=True, timeout=600)


def applied_ids(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "select migration_id from _yoyo_migration order by migration_id")]


def test_yoyo_with_database_url_in_the_environment(empty_db_url: str) -> None:
    """`--database "$DATABASE_URL"`: the variable set, expanded by the shell."""
    result = subprocess.run(["sh", "-c", f'{YOYO} apply --batch --database "$DATABASE_URL"'],
                            cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "DATABASE_URL": yoyo_url(empty_db_url)})
    assert result.returncode == 0, result.stderr
    assert "re-applied" in result.stderr
    assert applied_ids(empty_db_url) == [m for m, _ in migrate.listing(empty_db_url)]


def test_yoyo_without_any_database_is_a_usage_error_not_a_traceback() -> None:
    result = yoyo("apply", "--batch")
    assert result.returncode == 2
    assert "Please specify a database uri" in result.stderr
    assert "Traceback" not in result.stderr


def test_yoyo_list_shows_the_migrations_with_database_given(empty_db_url: str) -> None:
    listed = yoyo("list", "--database", yoyo_url(empty_db_url))
    assert listed.returncode == 0, listed.stderr
    assert "0001.create_schemas" in listed.stdout
    assert applied_ids(empty_db_url) == []


def test_tsfleet_migrate_list_shows_applied_and_pending(empty_db_url: str) -> None:
    runner = CliRunner()
    before = runner.invoke(main, ["migrate", "--list", "--database-url", empty_db_url])
    assert before.exit_code == 0, before.output
    lines = before.output.splitlines()
    assert lines[0] == "U  0001.create_schemas"
    total = len(lines) - 1
    assert lines[-1] == f"0 applied, {total} pending"
    assert "9999" not in before.output, "the always-pending sentinel is not a migration to list"

    # Apply the first two by hand through yoyo, as an older release would have left them.
    first_two = [line[3:] for line in lines[:2]]
    backend = migrate.get_backend(yoyo_url(empty_db_url))
    todo = migrate.read_migrations(str(migrate.sql_dir() / "migrations")).filter(
        lambda m: m.id in first_two)
    with backend.lock():
        backend.apply_migrations_only(todo)

    after = runner.invoke(main, ["migrate", "--list", "--database-url", empty_db_url])
    assert after.exit_code == 0, after.output
    assert after.output.splitlines()[:3] == [f"A  {first_two[0]}", f"A  {first_two[1]}",
                                            "U  " + lines[2][3:]]
    assert after.output.splitlines()[-1] == f"2 applied, {total - 2} pending"
