"""Database harness: one TimescaleDB server per session, a fresh database per test.

Server, in this order: $TEST_DATABASE_URL (the suite creates and drops its own databases
there), a Docker engine if one answers (testcontainers, official image), else a throwaway
local cluster (see loader.devdb). The migrated schema is built once into a template database;
each test gets a clone of it, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql
from pytest_postgresql.janitor import DatabaseJanitor

from loader import migrate
from loader.db import plain_url, with_database
from loader.devdb.provision import throwaway_server

# CI runs the same examples every time (a failure there is reproducible, not a lottery);
# local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@dataclass(frozen=True)
class Server:
    url: str
    license: str
    timescaledb_version: str
    postgres_version_num: int
    template_name: str  # created with the extension by the server fixture; see template_db

    @property
    def is_community(self) -> bool:
        return self.license == "timescale"

    def janitor(self, dbname: str, template: str | None = None) -> DatabaseJanitor:
        parts = urlsplit(self.url)
        return DatabaseJanitor(
            user=parts.username or "postgres", password=parts.password,
            host=parts.hostname or "localhost", port=parts.port or 5432,
            dbname=dbname, template_dbname=template,
            maintenance_dbname=parts.path.lstrip("/") or "postgres",
        )


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def harness_log(pytestconfig: pytest.Config):
    """Print harness steps (server choice, TimescaleDB build) live, past pytest's capture."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def log(message: str) -> None:
        with capture.global_and_fixture_disabled():
            print(message, flush=True)

    return log


@pytest.fixture(scope="session")
def server(harness_log) -> Iterator[Server]:
    explicit = os.environ.get("TEST_DATABASE_URL")
    with throwaway_server(explicit and plain_url(explicit), log=harness_log) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "select (select default_version from pg_available_extensions"
                "  where name = 'timescaledb'),"
                " current_setting('server_version_num')::int"
            ).fetchone()
        assert row is not None
        if row[0] is None:
            pytest.exit(f"the test server at {url} has no TimescaleDB extension", returncode=3)
        # TimescaleDB 2.28 registers timescaledb.license only in a database with the
        # extension, not in the maintenance database (2.19 everywhere): read it in the
        # database that becomes the template, so no extra database is created and dropped.
        template_name = unique_name("tsfleet_tpl")
        template_url = _create_with_extension(url, template_name)
        with psycopg.connect(template_url, autocommit=True) as conn:
            setting = conn.execute(
                "select current_setting('timescaledb.license', true)").fetchone()
        license_name = (setting[0] if setting else None) or "apache"
        yield Server(url=url, license=license_name, timescaledb_version=row[0],
                     postgres_version_num=row[1], template_name=template_name)
        with psycopg.connect(url, autocommit=True) as conn:  # when template_db never ran
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(template_name)))


def _create_with_extension(url: str, dbname: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    db_url = with_database(url, dbname)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("set client_min_messages = warning")
        conn.execute("create extension if not exists timescaledb")
    return db_url


def create_empty_database(server: Server, dbname: str) -> str:
    """A new database with only the timescaledb extension, as a deployer would prepare it."""
    server.janitor(dbname).init()
    url = with_database(server.url, dbname)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set client_min_messages = warning")
        conn.execute("create extension if not exists timescaledb")
    return url


def drop_database(server: Server, dbname: str) -> None:
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(dbname)))


@pytest.fixture(scope="session")
def template_db(server: Server) -> Iterator[str]:
    """A migrated database, frozen as the template every test database is cloned from."""
    name = server.template_name
    url = with_database(server.url, name)
    migrate.apply(url)
    with psycopg.connect(url, autocommit=True) as conn:
        if server.is_community:
            # Tests drive refreshes and compression themselves: pause tsfleet's jobs so a
            # background job never changes data under a test, then stop this database's
            # scheduler so the template can be copied.
            conn.execute("select public.alter_job(j.job_id, scheduled => false)"
                         " from timescaledb_information.jobs as j where j.job_id >= 1000")
        conn.execute("select _timescaledb_functions.stop_background_workers()")
        if server.is_community:
            # A job the scheduler started right after migrating and that the stop cut short
            # would look crashed in every clone: clones start with no job history.
            conn.execute("""
                do $$
                begin
                    if to_regclass('_timescaledb_internal.bgw_job_stat_history') is not null then
                        delete from _timescaledb_internal.bgw_job_stat_history;
                    end if;
                    if to_regclass('_timescaledb_internal.bgw_job_stat') is not null then
                        delete from _timescaledb_internal.bgw_job_stat;
                    end if;
                end;
                $$""")
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("alter database {} with allow_connections false").format(
            sql.Identifier(name)))
    yield name
    drop_database(server, name)


@pytest.fixture
def db_url(server: Server, template_db: str) -> Iterator[str]:
    """URL of a fresh, fully migrated database for this test alone."""
    name = unique_name("tsfleet_test")
    server.janitor(name, template=template_db).init()
    yield with_database(server.url, name)
    drop_database(server, name)


@pytest.fixture
def empty_db_url(server: Server) -> Iterator[str]:
    """URL of a fresh database with TimescaleDB but no tsfleet objects (migration tests)."""
    name = unique_name("tsfleet_empty")
    yield create_empty_database(server, name)
    drop_database(server, name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to this test's database."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(autouse=True)
def _edition_gate(request: pytest.FixtureRequest) -> None:
    """Skip @pytest.mark.community tests, with the reason, on an Apache-edition server."""
    if request.node.get_closest_marker("community") is None:
        return
    server: Server = request.getfixturevalue("server")
    if not server.is_community:
        pytest.skip(
            f"needs TimescaleDB Community edition; the test server runs "
            f"timescaledb.license={server.license} (Apache edition)"
        )
