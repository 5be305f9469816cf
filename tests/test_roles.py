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
