"""Migrations go up, down to zero and up again, on empty and populated databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from loader import migrate
from loader.db import yoyo_url
from tests.catalog import TSFLEET_SCHEMAS, schema_snapshot

REPO = Path(__file__).resolve().parent.parent
OPS_FUNCTION_OIDS = (
    "select array_agg(oid order by oid) from pg_proc where pronamespace = 'ops'::regnamespace"
)


def numbered_migrations() -> list[Path]:
    return list((REPO / "sql" / "migrations").glob("[0-9][0-9][0-9][0-9].*.rollback.sql"))


def tsfleet_schemas(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "select nspname from pg_namespace where nspname = any(%s) order by 1", [TSFLEET_SCHEMAS]
    ).fetchall()
    return [r[0] for r in rows]


def populate(conn: psycopg.Connection) -> None:
    # Community: pause tsfleet's jobs so the compression policy does not race the test.
    conn.execute("select public.alter_job(job_id, scheduled => false)"
                 " from timescaledb_information.jobs where job_id >= 1000")
    conn.execute("""
        insert into telemetry.devices (tenant_id, device_key) values (1, 'dev-1');
        insert into telemetry.metrics (metric_name) values ('temperature_c');
        insert into ingest.batches (source_kind, source_name, status)
        values ('test', 't', 'committed');
        insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
        select t, 1, 1, 20.0, 1
        from generate_series(now() - interval '20 days', now(), interval '1 hour') as t;
    """)


def test_up_down_up_on_empty_database_gives_the_same_objects(empty_db_url: str) -> None:
    migrate.apply(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        after_up = schema_snapshot(conn)
    assert len(after_up) > 100
    rolled_back = migrate.rollback(empty_db_url)
    assert "0001.create_schemas" in rolled_back
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert tsfleet_schemas(conn) == []
        assert conn.execute("select count(*) from _yoyo_migration").fetchone()[0] == 0
    migrate.apply(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert schema_snapshot(conn) == after_up


def test_up_down_up_on_populated_database(empty_db_url: str) -> None:
    migrate.apply(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        populate(conn)
        assert conn.execute("select count(*) from telemetry.readings").fetchone()[0] == 481
        after_up = schema_snapshot(conn)
        compressed = conn.execute(
            "select count(*) from _tsfleet.setup_log where status = 'enabled'").fetchone()[0]
        if compressed:
            # Community: compress the old chunks so the rollback has to decompress them.
            conn.execute("select public.compress_chunk(c, if_not_compressed => true)"
                         " from public.show_chunks('telemetry.readings',"
                         " older_than => interval '7 days') as c")
    migrate.rollback(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert tsfleet_schemas(conn) == []
    migrate.apply(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert schema_snapshot(conn) == after_up
        assert conn.execute("select count(*) from telemetry.readings").fetchone()[0] == 0


def test_rollback_one_step_at_a_time_then_forward(empty_db_url: str) -> None:
    migrate.apply(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        after_up = schema_snapshot(conn)
    steps = 0
    while migrate.rollback(empty_db_url, count=1):
        steps += 1
    assert steps == len(numbered_migrations())
    migrate.apply(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert schema_snapshot(conn) == after_up


def test_second_apply_is_a_no_op(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        before = schema_snapshot(conn)
        oids_before = conn.execute(OPS_FUNCTION_OIDS).fetchone()[0]
    assert migrate.apply(db_url) == []
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert schema_snapshot(conn) == before
        oids_after = conn.execute(OPS_FUNCTION_OIDS).fetchone()[0]
    assert oids_after == oids_before, "an unchanged tree must not re-create functions"


def test_plain_yoyo_apply_from_repo_root_works(empty_db_url: str) -> None:
    """The deployer's command, exactly as the README gives it (DATABASE_URL unset)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    yoyo = Path(sys.executable).parent / "yoyo"
    for _ in range(2):
        result = subprocess.run([str(yoyo), "apply", "--batch", "--database",
                                 yoyo_url(empty_db_url)], cwd=REPO, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert set(tsfleet_schemas(conn)) == set(TSFLEET_SCHEMAS)
        applied = conn.execute("select count(*) from _yoyo_migration").fetchone()[0]
    assert applied == len(numbered_migrations()), "the re-apply sentinel must stay pending"
