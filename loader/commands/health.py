"""`tsfleet health`: can this service reach what it needs, with its own credentials?"""

from __future__ import annotations

import asyncio

import click
import psycopg

from loader.db import connect, redacted, resolve_url
from loader.options import database_url_option


def check_database(url: str) -> str:
    """The login connects and reads ops.capabilities (granted to every tsfleet role): the
    database is up, migrated, and this login belongs to a tsfleet group."""
    with connect(url, connect_timeout=5) as conn:
        row = conn.execute("select timescaledb_edition from ops.capabilities").fetchone()
    return f"database {redacted(url)}: ok ({row[0] if row else 'no capabilities row'})"


async def _check_nats(servers: list[str], timeout_s: float) -> None:
    import nats

    async def quiet(_error: Exception) -> None:
        """nats-py logs every failed attempt with a traceback; the result says enough."""

    async def check() -> None:
        client = await nats.connect(servers=servers, connect_timeout=timeout_s,
                                    allow_reconnect=False, max_reconnect_attempts=0,
                                    error_cb=quiet)
        try:
            await client.jetstream().account_info()
        finally:
            await client.close()

    # nats-py keeps retrying a refused first connection: bound the whole check.
    await asyncio.wait_for(check(), timeout=timeout_s)


def check_nats(servers: str) -> str:
    asyncio.run(_check_nats([s.strip() for s in servers.split(",") if s.strip()], 5.0))
    return "nats: ok (JetStream answers)"


@click.command()
@database_url_option
@click.option("--nats-servers", envvar="TSFLEET_NATS_URL", metavar="URL[,URL...]",
              help="Also check NATS JetStream (default: $TSFLEET_NATS_URL, if set).")
def health(database_url: str | None, nats_servers: str | None) -> None:
    """Check the database (and NATS) with this service's credentials; exit 1 if not healthy.

    For container healthchecks: the alert runner and the consumer run it with their own
    logins, so a wrong password or a missing grant shows as unhealthy.

    Example:

        tsfleet health --nats-servers nats://consumer:s3cret@localhost:4222
    """
    url = resolve_url(database_url)
    try:
        click.echo(check_database(url))
    except psycopg.Error as exc:
        raise click.ClickException(f"database {redacted(url)}: {exc}") from exc
    if nats_servers:
        try:
            click.echo(check_nats(nats_servers))
        except Exception as exc:  # nats-py raises many kinds; all mean "not healthy"
            raise click.ClickException(f"nats: {exc!r}") from exc
