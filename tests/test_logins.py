"""`tsfleet logins` / ops.ensure_login: service logins with one group role each, and no more."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import conninfo, sql

from loader.cli import main
from loader.commands.logins import SERVICE_LOGINS


@pytest.fixture
def login_env(conn: psycopg.Connection) -> Iterator[dict[str, str]]:
    """Unique login names (roles are cluster-wide) and passwords, dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    env = {}
    for login in SERVICE_LOGINS:
        # Not tsfleet_*: test_roles checks that no tsfleet_* role on the server can log in.
        env[login.user_env] = f"svc_{login.default_user}_{suffix}"
        env[login.password_env] = f"pw-{login.default_user}-{suffix}"
    yield env
    for login in SERVICE_LOGINS:
        conn.execute(sql.SQL("drop role if exists {}").format(
            sql.Identifier(env[login.user_env])))


def as_user(url: str, user: str) -> str:
    """The same database as another user (the test servers trust local connections)."""
    return conninfo.make_conninfo(url, user=user)


def run_logins(db_url: str, env: dict[str, str], *args: str):
    return CliRunner().invoke(main, ["logins", "--database-url", db_url, *args], env=env)


def test_each_service_gets_a_login_in_its_group_only(
        db_url: str, conn: psycopg.Connection, login_env: dict[str, str]) -> None:
    result = run_logins(db_url, login_env, "--require-all")
    assert result.exit_code == 0, result.output
    assert result.output.count("created") == 3
    for login in SERVICE_LOGINS:
        user = login_env[login.user_env]
        row = conn.execute("""
            select r.rolcanlogin, r.rolsuper or r.rolcreaterole or r.rolcreatedb,
                   a.rolpassword like 'SCRAM-SHA-256$%%',
                   array(select g.rolname from pg_auth_members as m
                         inner join pg_roles as g on m.roleid = g.oid
                         where m.member = r.oid order by 1)
            from pg_roles as r inner join pg_authid as a on r.oid = a.oid
            where r.rolname = %s""", [user]).fetchone()
        assert row == (True, False, True, [login.group_role]), user
    grafana = login_env["TSFLEET_GRAFANA_DB_USER"]
    settings = conn.execute(
        "select s.setconfig from pg_db_role_setting as s inner join pg_roles as r"
        " on s.setrole = r.oid where r.rolname = %s", [grafana]).fetchone()
    assert settings == (["jit=off"],)


def test_the_logins_can_do_their_job_and_nothing_more(
        db_url: str, login_env: dict[str, str]) -> None:
    assert run_logins(db_url, login_env).exit_code == 0
    consumer = as_user(db_url, login_env["TSFLEET_INGEST_DB_USER"])
    with psycopg.connect(consumer, autocommit=True) as as_consumer:
        assert as_consumer.execute("select current_user").fetchone() == (
            login_env["TSFLEET_INGEST_DB_USER"],)
        as_consumer.execute("select count(*) from ingest.batches")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_consumer.execute("create table telemetry.intruder (x int)")
    grafana = as_user(db_url, login_env["TSFLEET_GRAFANA_DB_USER"])
    with psycopg.connect(grafana, autocommit=True) as as_grafana:
        as_grafana.execute("select * from ops.overview")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_grafana.execute("select * from telemetry.readings limit 1")


def test_a_second_run_updates_the_password(
        db_url: str, conn: psycopg.Connection, login_env: dict[str, str]) -> None:
    user = login_env["TSFLEET_RUNNER_DB_USER"]
    verifier = "select rolpassword from pg_authid where rolname = %s"
    assert run_logins(db_url, login_env).exit_code == 0
    before = conn.execute(verifier, [user]).fetchone()
    again = run_logins(db_url, {**login_env, "TSFLEET_RUNNER_DB_PASSWORD": "changed"})
    assert again.exit_code == 0 and again.output.count("updated") == 3
    assert conn.execute(verifier, [user]).fetchone() != before


def test_a_missing_password_is_skipped_or_with_require_all_refused(
        db_url: str, login_env: dict[str, str]) -> None:
    partial = {**login_env, "TSFLEET_RUNNER_DB_PASSWORD": ""}
    refused = run_logins(db_url, partial, "--require-all")
    assert refused.exit_code == 2 and "TSFLEET_RUNNER_DB_PASSWORD" in refused.output
    skipped = run_logins(db_url, partial)
    assert skipped.exit_code == 0
    assert f"{login_env['TSFLEET_RUNNER_DB_USER']} skipped" in skipped.output


@pytest.mark.parametrize(("user", "verifier", "group", "message"), [
    ("svc_x", "SCRAM-SHA-256$4096:x", "tsfleet_owner", "not a service group role"),
    ("svc_x", "plain text", "tsfleet_ingest", "must be a SCRAM-SHA-256 verifier"),
    ("postgres", "SCRAM-SHA-256$4096:x", "tsfleet_ingest", "privileged role"),
    ("tsfleet_owner", "SCRAM-SHA-256$4096:x", "tsfleet_ingest", "reserved"),
])
def test_ensure_login_refuses_privilege_and_clear_text(
        conn: psycopg.Connection, user: str, verifier: str, group: str, message: str) -> None:
    with pytest.raises(psycopg.errors.RaiseException) as raised:
        conn.execute("select ops.ensure_login(%s, %s, %s)", [user, verifier, group])
    assert message in str(raised.value) + str(raised.value.diag.message_hint)
    assert conn.execute("select count(*) from pg_roles where rolname = 'svc_x'").fetchone() == (0,)
