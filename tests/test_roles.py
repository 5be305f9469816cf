"""Least privilege: each role can do its job and nothing more."""

from __future__ import annotations

import psycopg
import pytest


def as_role(conn: psycopg.Connection, role: str, query: str) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute(f"set local role {role}")
        conn.execute(query)


@pytest.mark.parametrize("role", ["tsfleet_analyst", "tsfleet_grafana"])
def test_readers_cannot_write_or_read_base_tables(conn: psycopg.Connection, role: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(conn, role, "select * from telemetry.readings limit 1")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(conn, role, "insert into telemetry.tenants (tenant_key) values ('x')")


def test_analyst_reads_the_public_views(conn: psycopg.Connection) -> None:
    as_role(conn, "tsfleet_analyst", "select * from telemetry.readings_named limit 1")
    as_role(conn, "tsfleet_analyst", "select * from ops.capabilities")


def test_grafana_reads_dashboard_views_but_not_analyst_detail(conn: psycopg.Connection) -> None:
    as_role(conn, "tsfleet_grafana", "select * from ops.overview")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(conn, "tsfleet_grafana", "select * from telemetry.readings_named limit 1")


def test_no_tsfleet_role_can_create_objects(conn: psycopg.Connection) -> None:
    for role in ("tsfleet_ingest", "tsfleet_analyst", "tsfleet_grafana"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_role(conn, role, "create table telemetry.intruder (x int)")


def test_roles_cannot_log_in(conn: psycopg.Connection) -> None:
    rows = conn.execute("select rolname, rolcanlogin from pg_roles where rolname like 'tsfleet_%'"
                        " order by 1").fetchall()
    assert [r[0] for r in rows] == ["tsfleet_analyst", "tsfleet_grafana", "tsfleet_ingest",
                                    "tsfleet_owner"]
    assert not any(r[1] for r in rows)


def test_no_tsfleet_role_but_the_owner_writes_a_telemetry_or_ingest_table(
        conn: psycopg.Connection) -> None:
    """The API is the only door: loaders and consumers (tsfleet_ingest) write through the
    security definer ingest functions. (Alerts' tables and the rollup queue are not yet
    behind such functions; their schemas are outside this rule for now.)"""
    writable = conn.execute("""
        select r.rolname, n.nspname || '.' || c.relname, p.privilege
        from pg_catalog.pg_class as c
        inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
        cross join pg_catalog.pg_roles as r
        cross join unnest(array['insert', 'update', 'delete', 'truncate']) as p (privilege)
        where
            c.relkind in ('r', 'p')
            and n.nspname in ('telemetry', 'ingest')
            and r.rolname like 'tsfleet\\_%' and r.rolname <> 'tsfleet_owner'
            and (has_table_privilege(r.oid, c.oid, p.privilege)
                 or (p.privilege in ('insert', 'update')
                     and has_any_column_privilege(r.oid, c.oid, p.privilege)))
        order by 1, 2, 3""").fetchall()
    assert writable == []


def test_ingest_entry_points_are_security_definer_with_a_pinned_search_path(
        conn: psycopg.Connection) -> None:
    entry_points = ["ingest.begin_batch(text,text,text,text)", "ingest.create_staging()",
                    "ingest.write_batch(bigint,text,text[],jsonb)",
                    "ingest.record_batch_outcome(text,text,text,text,text,bigint,text)",
                    "ingest.record_stream_rejects(text,jsonb)",
                    # `tsfleet bundle load` (sql/functions/61_capture_load.sql)
                    "ingest.register_bundle_keys(text[],text[],text[],text[],text[])",
                    "ingest.load_asset_bundle(text,text,text,text[],text[],text[],text[],"
                    "text[],timestamptz[],text[],text[],double precision[])"]
    rows = conn.execute("""
        select p.prosecdef, array_to_string(p.proconfig, ',')
        from unnest(%s::text[]) as e (name)
        inner join pg_catalog.pg_proc as p on p.oid = e.name::regprocedure""",
                        [entry_points]).fetchall()
    assert rows == [(True, "search_path=pg_catalog, pg_temp")] * len(entry_points)
