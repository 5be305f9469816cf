"""Scale-out on PostgreSQL: a streaming replica (pg_basebackup of a primary, hot standby) answers
every view analysts and Grafana read, with the primary's answers, and follows the primary as
new batches land; writes are refused there, so loaders, consumers and the runner go to the
primary (docs/operations.md).

The test starts its own small primary (as the `postgres` OS user, on a free port, TimescaleDB
preloaded), whatever TEST_DATABASE_URL names: a shared server cannot be base-backed-up."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from loader import migrate
from loader.db import with_database
from loader.devdb.cluster import LocalCluster, find_pg_bindir, free_port, start_local_cluster
from tests.consume_support import T0, fleet_messages, tsfleet_command, wait_until

pytestmark = pytest.mark.slow

PUBLIC_SCHEMAS = ("telemetry", "rollups", "quality", "alerts", "ops")
READERS = ("tsfleet_analyst", "tsfleet_grafana")
SMALL = {"shared_buffers": "128MB", "max_wal_senders": "4", "wal_level": "replica"}
# Every relation in a public schema that an analyst or Grafana may select from, and who may.
READABLE_SQL = """
select
    n.nspname,
    c.relname,
    array_agg(r.rolname order by r.rolname) as readers
from pg_catalog.pg_class as c
inner join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
cross join pg_catalog.pg_roles as r
where
    n.nspname = any(%(schemas)s)
    and c.relkind in ('v', 'm', 'r', 'p')
    and r.rolname = any(%(readers)s)
    and pg_catalog.has_table_privilege(r.oid, c.oid, 'select')
group by n.nspname, c.relname
order by n.nspname, c.relname
"""


def quiet(_message: str) -> None:
    pass


@pytest.fixture
def primary() -> Iterator[str]:
    """A migrated tsfleet database on a primary of our own."""
    cluster = start_local_cluster(settings=SMALL, log=quiet)
    try:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("create database tsfleet")
        url = with_database(cluster.url, "tsfleet")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("set client_min_messages = warning")
            conn.execute("create extension if not exists timescaledb")
        migrate.apply(url)
        yield url
    finally:
        cluster.stop()


def start_standby(primary_url: str) -> LocalCluster:
    """pg_basebackup of the primary (-R: standby.signal and primary_conninfo), started as a
    hot standby on a port of its own."""
    port = str(psycopg.conninfo.conninfo_to_dict(primary_url)["port"])
    standby = LocalCluster(bindir=find_pg_bindir(), port=free_port())
    workdir = Path(tempfile.mkdtemp(prefix="tsfleet-standby-"))
    standby._workdir, standby.datadir = workdir, workdir / "data"
    if os.geteuid() == 0:
        standby._user = "postgres"
        entry = pwd.getpwnam("postgres")
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    subprocess.run(standby._cmd(
        str(standby.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", port,
        "-U", "postgres", "-D", str(standby.datadir), "-R", "-X", "stream",
        "--checkpoint=fast"), check=True, capture_output=True)
    with open(standby.datadir / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
        conf.write(f"port = {standby.port}\nunix_socket_directories = '{workdir}'\n"
                   "hot_standby = on\n")
    log = workdir / "server.log"
    result = subprocess.run(standby._cmd(
        str(standby.bindir / "pg_ctl"), "-D", str(standby.datadir), "-l", str(log), "-w",
        "-t", "60", "start"), capture_output=True, text=True)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stderr
        standby.stop()
        raise RuntimeError(f"the standby did not start:\n{tail}")
    return standby


def load_messages(url: str, messages: list[dict], workdir: Path, name: str) -> None:
    path = workdir / f"{name}.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
    subprocess.run([*tsfleet_command(), "load", "messages", str(path), "--database-url", url],
                   check=True, capture_output=True)


def readings(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute("select count(*) from telemetry.readings").fetchone()[0])  # type: ignore[index]


def answers(url: str, relations: list[tuple[str, str, list[str]]]) -> dict[str, int]:
    """Rows of every relation (every column evaluated), read as each role that may read
    it."""
    found: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set statement_timeout = '60s'")
        for schema, name, roles in relations:
            for role in roles:
                conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
                try:
                    rows = conn.execute(sql.SQL("select * from {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(name))).fetchall()
                except psycopg.Error as exc:
                    raise AssertionError(f"{schema}.{name} as {role} on {url}: {exc}") from exc
                finally:
                    conn.execute("reset role")
                found[f"{schema}.{name} as {role}"] = len(rows)
    return found


def test_a_streaming_replica_answers_every_analyst_and_grafana_view_like_the_primary(
    primary: str, tmp_path: Path
) -> None:
    load_messages(primary, fleet_messages(devices=5, steps=90), tmp_path, "first")
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("call rollups.refresh_after_load(%s, %s)",
                     [T0 - timedelta(days=1), T0 + timedelta(days=2)])
        relations = [(s, n, list(r)) for s, n, r in conn.execute(
            READABLE_SQL, {"schemas": list(PUBLIC_SCHEMAS), "readers": list(READERS)})]
    names = {f"{s}.{n}" for s, n, _r in relations}
    assert {"telemetry.readings_named", "rollups.device_metrics_hourly", "alerts.active_alerts",
            "alerts.dashboard_fleet_summary", "quality.freshness", "ops.overview"} <= names
    assert {s for s, _n, _r in relations} == set(PUBLIC_SCHEMAS)

    standby = start_standby(primary)
    try:
        replica = with_database(f"postgresql://postgres@127.0.0.1:{standby.port}/postgres",
                                "tsfleet")
        with psycopg.connect(replica, autocommit=True) as conn:
            assert conn.execute("select pg_is_in_recovery()").fetchone() == (True,)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("insert into telemetry.tenants (tenant_key) values ('nope')")
        assert readings(replica) == readings(primary) == 5 * 90 * 4

        # It streams: a batch loaded on the primary now shows on the replica.
        load_messages(primary, fleet_messages(devices=5, steps=30, prefix="later",
                                              start=T0 + timedelta(days=1)), tmp_path, "later")
        wait_until(lambda: readings(replica) == readings(primary) == 5 * 120 * 4,
                   timeout=60, what="the replica to replay the new batch")
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute("call rollups.refresh_after_load(%s, %s)",
                         [T0, T0 + timedelta(days=2)])
            lsn = conn.execute("select pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]

        def caught_up() -> bool:
            with psycopg.connect(replica, autocommit=True) as conn:
                return bool(conn.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                         [lsn]).fetchone()[0])  # type: ignore[index]
        wait_until(caught_up, timeout=60, what="the replica to replay the refresh")

        on_primary, on_replica = answers(primary, relations), answers(replica, relations)
        assert on_replica == on_primary
        assert len(on_replica) == sum(len(r) for _s, _n, r in relations)
        assert on_replica["telemetry.readings_named as tsfleet_analyst"] == 5 * 120 * 4
        assert on_replica["rollups.device_metrics_hourly as tsfleet_grafana"] > 0
        assert on_replica["quality.freshness as tsfleet_grafana"] == 5
    finally:
        standby.stop()
