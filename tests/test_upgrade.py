"""An upgrade lands where a fresh install does: same schema, loaded rows intact and processed.

The upgraded database gets the migrations up to CUTOFF (with the functions and views re-applied,
as every deploy does), the samples, then the rest of the migrations. The fresh one gets every
migration, then the same samples. Both are then compared: `pg_dump --schema-only` (TimescaleDB's
internal chunk schemas left out: chunk names depend on load order), and every tsfleet table's
rows except columns that default to now().
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from loader import migrate
from loader.cli import main
from loader.db import yoyo_url
from tests.catalog import TSFLEET_SCHEMAS
from tests.conftest import Server, create_empty_database, drop_database, unique_name
from tests.ingest_support import SAMPLES, run_load_json

# The earliest point today's functions and views apply to (they read every table up to here).
# Everything after it (indexes on the readings hypertable, storage settings, the outbox, and
# whatever later migrations come) is applied to a populated database.
CUTOFF = "0094.add_batches_values_missing"
pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_db_url(server: Server) -> Iterator[str]:
    name = unique_name("tsfleet_fresh")
    yield create_empty_database(server, name)
    drop_database(server, name)


def apply_until(url: str, cutoff: str) -> list[str]:
    """yoyo's apply of the migrations up to cutoff, post-apply hook included."""
    backend = migrate.get_backend(yoyo_url(url))
    todo = migrate.read_migrations(str(migrate.sql_dir() / "migrations")).filter(
        lambda m: m.id <= cutoff or m.id == migrate.SENTINEL_ID)
    try:
        with backend.lock():
            backend.apply_migrations(todo)
    except RuntimeError as exc:  # post-apply.py: a view reads a table of a later migration
        pytest.fail(f"today's functions and views do not apply at {cutoff}; move CUTOFF to the "
                    f"newest migration they need: {exc}")
    return [m.id for m in todo if m.id != migrate.SENTINEL_ID]


def load_samples(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((SAMPLES / "assets" / "pumps.sql").read_text())
    loads = [
        ("instruments", str(SAMPLES / "instruments")),
        ("battery", str(SAMPLES / "battery")),
        ("messages", str(SAMPLES / "messages" / "messages.jsonl")),
        ("csv", str(SAMPLES / "generic" / "narrow.csv")),
    ]
    inserted = [run_load_json(url, *args)["totals"]["rows_inserted"] for args in loads]
    refreshed = CliRunner().invoke(main, ["refresh", "--no-retention", "--database-url", url])
    assert refreshed.exit_code == 0, refreshed.output
    return inserted


def schema_dump(url: str) -> str:
    dump = subprocess.run(
        [shutil.which("pg_dump") or "pg_dump", "--schema-only", "--no-comments",
         "--exclude-schema=_timescaledb*", "--exclude-schema=timescaledb_*", "--dbname", url],
        check=True, capture_output=True, text=True, timeout=300).stdout
    # pg_dump 15.14+ brackets the dump with \restrict <random key>.
    return re.sub(r"^\\(un)?restrict .*$", "", dump, flags=re.MULTILINE)


# Columns that say when a row was written, not what it holds.
WRITTEN_AT = {("ingest", "batches", "finished_at")}


def table_contents(url: str) -> dict[str, tuple[int, str]]:
    """Per tsfleet table: row count and a digest of its rows. Columns that default to now()
    or clock_timestamp() (and WRITTEN_AT) are left out; doubles are compared to 9 decimals,
    since an average's last bits depend on the order the rows were summed in."""
    with psycopg.connect(url) as conn:
        columns = conn.execute("""
            select t.table_schema, t.table_name, c.column_name, c.data_type
            from information_schema.tables as t
            inner join information_schema.columns as c
                on c.table_schema = t.table_schema and c.table_name = t.table_name
            where t.table_schema = any(%s) and t.table_type = 'BASE TABLE'
                and coalesce(c.column_default, '') !~ '(now|clock_timestamp)\\(\\)'
            order by 1, 2, c.ordinal_position""", [TSFLEET_SCHEMAS]).fetchall()
        tables: dict[tuple[str, str], list[sql.Composable]] = {}
        for schema, table, column, data_type in columns:
            if (schema, table, column) in WRITTEN_AT:
                continue
            field: sql.Composable = sql.Identifier(column)
            if data_type == "double precision":
                field = sql.SQL("round({}::numeric, 9)").format(field)
            tables.setdefault((schema, table), []).append(field)
        contents = {}
        for (schema, table), fields in tables.items():
            row = sql.SQL("row({})::text").format(sql.SQL(", ").join(fields))
            query = sql.SQL("select count(*), md5(coalesce(string_agg({row}, e'\\n'"
                            " order by {row}), '')) from {table}").format(
                row=row, table=sql.Identifier(schema, table))
            count, digest = conn.execute(query).fetchone()  # type: ignore[misc]
            contents[f"{schema}.{table}"] = (count, digest)
    return contents


def test_an_upgrade_over_loaded_samples_matches_a_fresh_install(
        empty_db_url: str, fresh_db_url: str) -> None:
    upgraded = empty_db_url
    first = apply_until(upgraded, CUTOFF)
    assert first[-1] == CUTOFF
    loaded = load_samples(upgraded)
    assert all(count > 0 for count in loaded)
    before_upgrade = table_contents(upgraded)

    rest = migrate.apply(upgraded)
    assert rest, "nothing left to apply after the cutoff: move CUTOFF earlier"
    assert rest[0] > CUTOFF and set(first).isdisjoint(rest)

    migrate.apply(fresh_db_url)
    assert load_samples(fresh_db_url) == loaded

    assert schema_dump(upgraded) == schema_dump(fresh_db_url)
    after_upgrade = table_contents(upgraded)
    fresh = table_contents(fresh_db_url)
    telemetry = {t: v for t, v in before_upgrade.items() if t.startswith("telemetry.")}
    assert telemetry["telemetry.readings"][0] > 1000
    assert telemetry["telemetry.asset_readings"][0] > 0, "the pump samples were not processed"
    assert {t: after_upgrade[t] for t in telemetry} == telemetry, "the upgrade changed rows"
    differing = {t: (after_upgrade.get(t), fresh.get(t))
                 for t in set(after_upgrade) | set(fresh) if after_upgrade.get(t) != fresh.get(t)}
    assert differing == {}
