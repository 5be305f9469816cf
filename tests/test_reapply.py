"""sql/functions and sql/views are re-applied after every apply, leaving nothing stale."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import psycopg
import pytest

from loader import migrate

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sql_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of sql/ that a test may edit; migrations read it via TSFLEET_SQL_DIR."""
    target = tmp_path / "sql"
    shutil.copytree(REPO / "sql", target)
    monkeypatch.setenv("TSFLEET_SQL_DIR", str(target))
    return target


def test_a_removed_view_file_drops_the_view(db_url: str, sql_copy: Path) -> None:
    probe = sql_copy / "views" / "95_probe.sql"
    probe.write_text("create view ops.reapply_probe as select 1 as one;\n"
                     "comment on view ops.reapply_probe is 'probe';\n")
    migrate.apply(db_url)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select to_regclass('ops.reapply_probe')").fetchone()[0] is not None
    probe.unlink()
    migrate.apply(db_url)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select to_regclass('ops.reapply_probe')").fetchone()[0] is None
        assert conn.execute("select to_regclass('ops.capabilities')").fetchone()[0] is not None


def test_a_view_may_lose_a_column_without_a_migration(db_url: str, sql_copy: Path) -> None:
    path = sql_copy / "views" / "10_telemetry_named.sql"
    text = path.read_text()
    text = text.replace("    r.quality,\n    r.batch_id\nfrom telemetry.readings",
                        "    r.quality\nfrom telemetry.readings")
    text = re.sub(r"comment on column telemetry.readings_named.batch_id is '[^']*';\n", "", text)
    path.write_text(text)
    migrate.apply(db_url)
    with psycopg.connect(db_url) as conn:
        columns = [r[0] for r in conn.execute(
            "select attname from pg_attribute where attrelid = 'telemetry.readings_named'::regclass"
            " and attnum > 0 order by attnum").fetchall()]
    assert columns[-1] == "quality" and "batch_id" not in columns


def test_a_function_may_change_its_return_type(db_url: str, sql_copy: Path) -> None:
    path = sql_copy / "functions" / "90_ops_policies.sql"
    text = path.read_text()
    path.write_text(text + """
create or replace function ops.reapply_probe() returns integer
language sql set search_path = pg_catalog, pg_temp as $$ select 1 $$;
comment on function ops.reapply_probe() is 'probe';
""")
    migrate.apply(db_url)
    path.write_text(text + """
create or replace function ops.reapply_probe() returns text
language sql set search_path = pg_catalog, pg_temp as $$ select 'two' $$;
comment on function ops.reapply_probe() is 'probe';
""")
    migrate.apply(db_url)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select ops.reapply_probe()").fetchone()[0] == "two"


def test_an_object_created_by_hand_in_a_managed_schema_is_removed(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("create view ops.stale_by_hand as select 1 as one")
    migrate.apply(db_url)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select to_regclass('ops.stale_by_hand')").fetchone()[0] is None


def test_reapply_refuses_to_cascade_into_data_bearing_objects(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("create materialized view public.precious as"
                     " select * from ops.capabilities")
    with pytest.raises(Exception, match="data-bearing objects depend on them"):
        migrate.apply(db_url, force_reapply=True)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select to_regclass('public.precious')").fetchone()[0] is not None
        assert conn.execute("select to_regclass('ops.capabilities')").fetchone()[0] is not None


def test_a_broken_file_fails_the_apply_naming_the_file_and_changes_nothing(
    db_url: str, sql_copy: Path,
) -> None:
    (sql_copy / "views" / "95_broken.sql").write_text("create view ops.broken as selec 1;\n")
    with pytest.raises(Exception, match="views/95_broken.sql"):
        migrate.apply(db_url)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select to_regclass('telemetry.readings_named')").fetchone()[0]
