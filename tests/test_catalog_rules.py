"""Catalog-wide rules: comments on everything, pinned search_path, no EXECUTE for PUBLIC."""

from __future__ import annotations

import psycopg

from tests.catalog import TSFLEET_SCHEMAS

PUBLIC_API_SCHEMAS = ["telemetry", "ingest", "rollups", "quality", "alerts", "ops"]


def test_every_table_view_and_function_has_a_comment(conn: psycopg.Connection) -> None:
    missing = conn.execute(
        """
        select format('%%s %%I.%%I', c.relkind, n.nspname, c.relname)
        from pg_class as c inner join pg_namespace as n on c.relnamespace = n.oid
        where n.nspname = any(%(s)s) and c.relkind in ('r', 'v', 'm', 'p')
          and obj_description(c.oid, 'pg_class') is null
        union all
        select format('function %%I.%%I(%%s)', n.nspname, p.proname,
                      pg_get_function_identity_arguments(p.oid))
        from pg_proc as p inner join pg_namespace as n on p.pronamespace = n.oid
        where n.nspname = any(%(s)s) and obj_description(p.oid, 'pg_proc') is null
        order by 1
        """,
        {"s": TSFLEET_SCHEMAS},
    ).fetchall()
    assert [m[0] for m in missing] == []


def test_every_column_of_a_public_view_has_a_comment(conn: psycopg.Connection) -> None:
    missing = conn.execute(
        """
        select format('%%I.%%I.%%I', n.nspname, c.relname, a.attname)
        from pg_class as c
        inner join pg_namespace as n on c.relnamespace = n.oid
        inner join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0
        where n.nspname = any(%(s)s) and c.relkind in ('v', 'm')
          and not a.attisdropped and col_description(c.oid, a.attnum) is null
        order by 1
        """,
        {"s": PUBLIC_API_SCHEMAS},
    ).fetchall()
    assert [m[0] for m in missing] == []


# A procedure that commits (refreshing continuous aggregates needs that) cannot carry a SET
# clause; it pins search_path first thing in its body instead.
PIN_IN_BODY = r"set_config\(\s*'search_path',\s*'pg_catalog, pg_temp'"


def test_every_function_pins_its_search_path(conn: psycopg.Connection) -> None:
    unpinned = conn.execute(
        """
        select format('%%I.%%I', n.nspname, p.proname)
        from pg_proc as p inner join pg_namespace as n on p.pronamespace = n.oid
        where n.nspname = any(%(s)s) and p.prokind in ('f', 'p')
          and not exists (select from unnest(p.proconfig) as cfg where cfg like 'search_path=%%')
          and not (p.prokind = 'p' and p.prosrc ~ %(pin)s)
        order by 1
        """,
        {"s": TSFLEET_SCHEMAS, "pin": PIN_IN_BODY},
    ).fetchall()
    assert [u[0] for u in unpinned] == []


def test_no_function_is_executable_by_public(conn: psycopg.Connection) -> None:
    public_exec = conn.execute(
        """
        select format('%%I.%%I', n.nspname, p.proname)
        from pg_proc as p inner join pg_namespace as n on p.pronamespace = n.oid
        where n.nspname = any(%(s)s)
          and exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as acl
                      where acl.grantee = 0 and acl.privilege_type = 'EXECUTE')
        order by 1
        """,
        {"s": TSFLEET_SCHEMAS},
    ).fetchall()
    assert [p[0] for p in public_exec] == []


def test_every_named_constraint_and_index_follows_the_naming_pattern(
    conn: psycopg.Connection,
) -> None:
    bad = conn.execute(
        """
        select format('%%I.%%I', n.nspname, c.relname)
        from pg_class as c inner join pg_namespace as n on c.relnamespace = n.oid
        where n.nspname = any(%(s)s) and c.relkind = 'i'
          and c.relname !~ '_(pkey|key|idx)$'
        union all
        select con.conname from pg_constraint as con
        inner join pg_namespace as n on con.connamespace = n.oid
        where n.nspname = any(%(s)s) and con.conname !~ '_(pkey|key|fkey|check|excl)$'
        order by 1
        """,
        {"s": TSFLEET_SCHEMAS},
    ).fetchall()
    assert [b[0] for b in bad] == []
