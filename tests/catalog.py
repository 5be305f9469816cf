"""Catalog queries shared by tests: what tsfleet created, described comparably."""

from __future__ import annotations

import re

import psycopg

TSFLEET_SCHEMAS = ["telemetry", "ingest", "rollups", "quality", "alerts", "ops", "_tsfleet"]

SNAPSHOT_SQL = """
select 'relation' as kind, format('%%I.%%I', n.nspname, c.relname) as name,
       c.relkind::text || ':' || coalesce(pg_catalog.pg_get_viewdef(c.oid), '') as detail
from pg_catalog.pg_class as c
inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'v', 'm', 'p', 'i', 'S')
union all
select 'column', format('%%I.%%I.%%I', n.nspname, c.relname, a.attname),
       pg_catalog.format_type(a.atttypid, a.atttypmod)
       || coalesce(' ' || pg_catalog.col_description(c.oid, a.attnum), '')
from pg_catalog.pg_attribute as a
inner join pg_catalog.pg_class as c on a.attrelid = c.oid
inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
where n.nspname = any(%(schemas)s) and a.attnum > 0 and not a.attisdropped
  and c.relkind in ('r', 'v', 'm', 'p')
union all
select 'constraint', format('%%I.%%I', n.nspname, con.conname),
       pg_catalog.pg_get_constraintdef(con.oid)
from pg_catalog.pg_constraint as con
inner join pg_catalog.pg_namespace as n on con.connamespace = n.oid
where n.nspname = any(%(schemas)s)
union all
select 'function',
       format('%%I.%%I(%%s)', n.nspname, p.proname,
              pg_catalog.pg_get_function_identity_arguments(p.oid)),
       md5(p.prosrc) || coalesce(array_to_string(p.proconfig, ','), '')
from pg_catalog.pg_proc as p
inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
where n.nspname = any(%(schemas)s)
union all
select 'trigger', format('%%I.%%I', c.relname, t.tgname), pg_catalog.pg_get_triggerdef(t.oid)
from pg_catalog.pg_trigger as t
inner join pg_catalog.pg_class as c on t.tgrelid = c.oid
inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
where n.nspname = any(%(schemas)s) and not t.tgisinternal
union all
select 'hypertable', format('%%I.%%I', h.hypertable_schema, h.hypertable_name),
       h.compression_enabled::text
from timescaledb_information.hypertables as h
where h.hypertable_schema = any(%(schemas)s)
union all
select 'job', j.proc_name || ' ' || coalesce(j.hypertable_schema || '.' || j.hypertable_name, ''),
       j.schedule_interval::text
from timescaledb_information.jobs as j
where j.job_id >= 1000
union all
select 'comment', format('%%I.%%I', n.nspname, c.relname),
       coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '')
from pg_catalog.pg_class as c
inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'v', 'm', 'p')
union all
select 'grant', format('%%I.%%I', n.nspname, c.relname), coalesce(c.relacl::text, '')
from pg_catalog.pg_class as c
inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'v', 'm', 'p')
"""


# Continuous aggregates embed TimescaleDB's internal ids (materialization hypertable, trigger
# argument), which change whenever they are re-created: compare them without the numbers.
INTERNAL_IDS = [
    (re.compile(r"_materialized_hypertable_\d+"), "_materialized_hypertable_N"),
    (re.compile(r"continuous_agg_invalidation_trigger\('\d+'\)"),
     "continuous_agg_invalidation_trigger('N')"),
]


def _normalized(text: str) -> str:
    for pattern, replacement in INTERNAL_IDS:
        text = pattern.sub(replacement, text)
    return text


def schema_snapshot(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    """Every tsfleet object with a comparable description (names, types, bodies, settings)."""
    rows = conn.execute(SNAPSHOT_SQL, {"schemas": TSFLEET_SCHEMAS}).fetchall()
    return {(kind, _normalized(name), _normalized(detail)) for kind, name, detail in rows}
