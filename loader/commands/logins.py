"""`tsfleet logins`: the services' login roles, from passwords in the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

import click
import psycopg

from loader.db import connect, resolve_url
from loader.options import database_url_option


@dataclass(frozen=True)
class ServiceLogin:
    service: str
    user_env: str
    default_user: str
    password_env: str
    group_role: str


# Couples with: docker-compose.yml and .env.example (the variables), ops.ensure_login, and
# grafana/provisioning/datasources/tsfleet.yaml (its fixed user: tsfleet_grafana_login).
SERVICE_LOGINS = (
    ServiceLogin("consumer", "TSFLEET_INGEST_DB_USER", "ingest_consumer",
                 "TSFLEET_INGEST_DB_PASSWORD", "tsfleet_ingest"),
    ServiceLogin("alert runner", "TSFLEET_RUNNER_DB_USER", "alert_runner",
                 "TSFLEET_RUNNER_DB_PASSWORD", "tsfleet_ingest"),
    ServiceLogin("grafana", "TSFLEET_GRAFANA_DB_USER", "tsfleet_grafana_login",
                 "TSFLEET_GRAFANA_DB_PASSWORD", "tsfleet_grafana"),
)


def ensure_login(conn: psycopg.Connection, user: str, password: str, group_role: str) -> str:
    """Create or update one login. The password is hashed here (SCRAM-SHA-256, by libpq), so
    the clear text never reaches the server or its statement log."""
    verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256")
    row = conn.execute("select ops.ensure_login(%s, %s, %s)",
                       [user, verifier.decode(), group_role]).fetchone()
    assert row is not None
    return str(row[0])


@click.command()
@database_url_option
@click.option("--require-all", is_flag=True,
              help="Fail when a service's password variable is not set (docker-compose).")
def logins(database_url: str | None, require_all: bool) -> None:
    """Create or update the services' logins, run as the owner after `tsfleet migrate`.

    Each login is a member of one group role and nothing more: the consumer's and the alert
    runner's of tsfleet_ingest, Grafana's of tsfleet_grafana. Names and passwords come from
    the environment (passwords never from arguments):

    \b
      TSFLEET_INGEST_DB_USER  (ingest_consumer)  TSFLEET_INGEST_DB_PASSWORD
      TSFLEET_RUNNER_DB_USER  (alert_runner)     TSFLEET_RUNNER_DB_PASSWORD
      TSFLEET_GRAFANA_DB_USER (tsfleet_grafana_login)  TSFLEET_GRAFANA_DB_PASSWORD

    A login whose password variable is unset is skipped (an error with --require-all).

    Example:

        TSFLEET_GRAFANA_DB_PASSWORD=s3cret tsfleet logins
    """
    url = resolve_url(database_url)
    missing = [login.password_env for login in SERVICE_LOGINS
               if not os.environ.get(login.password_env)]
    if require_all and missing:
        raise click.UsageError(f"set {', '.join(missing)} (the services' database passwords)")
    try:
        with connect(url, autocommit=True) as conn:
            for login in SERVICE_LOGINS:
                password = os.environ.get(login.password_env)
                user = os.environ.get(login.user_env) or login.default_user
                if not password:
                    click.echo(f"{login.service}: {login.password_env} not set, {user} skipped")
                    continue
                done = ensure_login(conn, user, password, login.group_role)
                click.echo(f"{login.service}: {done}")
    except psycopg.Error as exc:
        raise click.ClickException(f"cannot create the service logins: {exc}") from exc
