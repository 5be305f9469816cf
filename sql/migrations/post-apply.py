"""Re-apply sql/functions/*.sql then sql/views/*.sql after every `yoyo apply`.

Functions and views are the single source of truth in those files, not in numbered migrations.
This hook, inside one transaction:
1. skips the work when the files' digest and the number of managed objects match the last run
   (so a second `yoyo apply` changes nothing);
2. refuses to go on if a data-bearing object (table default, materialized view, continuous
   aggregate...) depends on a managed function or view: dropping it would lose data;
3. drops every managed view and function (non-materialized views and functions in tsfleet's
   schemas that are not continuous aggregates or extension members), so a changed return type,
   a dropped view column or a removed file never leaves a stale object behind;
4. runs the files in name order (functions before views; the NN_ prefixes give the order),
   then revokes EXECUTE from PUBLIC on every managed routine (roles get it beside each one);
5. un-marks the sentinel migration so the next `yoyo apply` runs this hook again.
Self-contained on purpose: the migrate container runs plain `yoyo apply` without tsfleet.
"""

import hashlib
import os
import sys
from pathlib import Path

from yoyo import step

__transactional__ = True

SQL_ROOT = Path(__file__).resolve().parent.parent
SENTINEL_ID = "9999.reapply_functions_and_views"
MANAGED_SCHEMAS = ("telemetry", "ingest", "rollups", "quality", "alerts", "ops", "_tsfleet")

MANAGED_OBJECTS_SQL = """
with
managed_views as (
    select
        c.oid,
        'view' as kind,
        format('%%I.%%I', n.nspname, c.relname) as object_name
    from pg_catalog.pg_class as c
    inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
    where
        c.relkind = 'v'
        and n.nspname = any(%(schemas)s)
        and not exists (
            select from _timescaledb_catalog.continuous_agg as ca
            where ca.user_view_schema = n.nspname and ca.user_view_name = c.relname
        )
        and not exists (
            select from pg_catalog.pg_depend as d
            where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid
                and d.deptype = 'e'
        )
),
managed_functions as (
    select
        p.oid,
        case p.prokind
            when 'p' then 'procedure' when 'a' then 'aggregate' else 'function'
        end as kind,
        format(
            '%%I.%%I(%%s)', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)
        ) as object_name
    from pg_catalog.pg_proc as p
    inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where
        n.nspname = any(%(schemas)s)
        and not exists (
            select from pg_catalog.pg_depend as d
            where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid
                and d.deptype = 'e'
        )
)
select oid, kind, object_name from managed_views
union all
select oid, kind, object_name from managed_functions
"""

# Objects outside the managed set that depend on a managed one. Allowed: managed views' own
# rewrite rules, triggers (recreated beside their function) and other managed functions.
FOREIGN_DEPENDENTS_SQL = """
select distinct pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
    || ' depends on '
    || pg_catalog.pg_describe_object(d.refclassid, d.refobjid, 0) as problem
from pg_catalog.pg_depend as d
left join pg_catalog.pg_rewrite as r
    on d.classid = 'pg_catalog.pg_rewrite'::regclass and d.objid = r.oid
where
    d.refobjid = any(%(oids)s)
    and d.deptype = 'n'
    and d.classid <> 'pg_catalog.pg_trigger'::regclass
    and not (d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = any(%(oids)s))
    and not (r.oid is not null and r.ev_class = any(%(oids)s))
    and not (d.classid = 'pg_catalog.pg_type'::regclass)
"""


def sql_files():
    files = sorted((SQL_ROOT / "functions").glob("*.sql"))
    files += sorted((SQL_ROOT / "views").glob("*.sql"))
    return files


def files_digest(files):
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(SQL_ROOT).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def managed_objects(cursor):
    cursor.execute(MANAGED_OBJECTS_SQL, {"schemas": list(MANAGED_SCHEMAS)})
    return cursor.fetchall()


def reapply(conn):
    files = sql_files()
    digest = files_digest(files)
    cursor = conn.cursor()
    cursor.execute("select files_digest, managed_objects from _tsfleet.reapply_state")
    state = cursor.fetchone()
    current = managed_objects(cursor)
    forced = os.environ.get("TSFLEET_FORCE_REAPPLY", "") not in ("", "0", "false")
    if state and state[0] == digest and state[1] == len(current) and not forced:
        print("tsfleet: functions and views are up to date", file=sys.stderr)
    else:
        oids = [row[0] for row in current]
        cursor.execute(FOREIGN_DEPENDENTS_SQL, {"oids": oids})
        problems = [row[0] for row in cursor.fetchall()]
        if problems:
            raise RuntimeError(
                "cannot re-apply functions and views: data-bearing objects depend on them:\n  "
                + "\n  ".join(problems)
            )
        for _oid, kind, name in sorted(current, key=lambda row: row[1] != "view"):
            cursor.execute(f"drop {kind} if exists {name} cascade")
        cursor.execute("set local check_function_bodies = off")
        for path in files:
            try:
                cursor.execute(path.read_text(encoding="utf-8"))
            except Exception as exc:
                raise RuntimeError(f"{path.relative_to(SQL_ROOT)}: {exc}") from exc
        # EXECUTE is granted per role beside each function; nobody else gets it.
        for schema in MANAGED_SCHEMAS:
            cursor.execute(f"revoke execute on all routines in schema {schema} from public")
        count = len(managed_objects(cursor))
        cursor.execute(
            "insert into _tsfleet.reapply_state (files_digest, managed_objects) "
            "values (%(digest)s, %(count)s) on conflict (singleton) do update "
            "set files_digest = excluded.files_digest, managed_objects = excluded.managed_objects,"
            " applied_at = now()",
            {"digest": digest, "count": count},
        )
        print(f"tsfleet: re-applied {count} functions and views from {len(files)} files",
              file=sys.stderr)
    cursor.execute("delete from _yoyo_migration where migration_id = %(id)s", {"id": SENTINEL_ID})


steps = [step(reapply)]
