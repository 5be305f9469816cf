"""`tsfleet health`: the container healthcheck of the alert runner and the consumer."""

from __future__ import annotations

from click.testing import CliRunner
from psycopg import conninfo

from loader.cli import main
from loader.devdb.cluster import free_port
from tests import nats_support
from tests.nats_support import NatsServer

nats_binary = nats_support.nats_binary
nats_server = nats_support.nats_server


def run_health(*args: str):
    return CliRunner().invoke(main, ["health", *args], env={"TSFLEET_NATS_URL": ""})


def test_healthy_database_and_nats(db_url: str, nats_server: NatsServer) -> None:
    result = run_health("--database-url", db_url, "--nats-servers", nats_server.url)
    assert result.exit_code == 0, result.output
    assert "database" in result.output and "nats: ok" in result.output


def test_a_login_that_cannot_connect_is_unhealthy(db_url: str) -> None:
    stranger = conninfo.make_conninfo(db_url, user="no_such_login_anywhere")
    result = run_health("--database-url", stranger)
    assert result.exit_code == 1
    assert "no_such_login_anywhere" in result.output


def test_an_unmigrated_database_is_unhealthy(empty_db_url: str) -> None:
    result = run_health("--database-url", empty_db_url)
    assert result.exit_code == 1
    assert "ops.capabilities" in result.output


def test_nats_not_answering_is_unhealthy(db_url: str) -> None:
    result = run_health("--database-url", db_url,
                        "--nats-servers", f"nats://127.0.0.1:{free_port()}")
    assert result.exit_code == 1
    assert "nats:" in result.output
