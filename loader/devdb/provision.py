"""Pick a TimescaleDB server for tests or the demo: explicit URL, Docker, or a local cluster."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# The current release for PostgreSQL 15 that the suite runs on (Community edition), as
# docker-compose.yml pins it; Debian's package (the Apache edition) is 2.19.3.
TIMESCALEDB_IMAGE = "timescale/timescaledb:2.28.3-pg15"


def docker_engine_answers() -> bool:
    """True only when a Docker engine responds (the client alone is not enough)."""
    if not shutil.which("docker"):
        return False
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


@contextmanager
def docker_server(log: Callable[[str], None] = print) -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    log(f"[tsfleet-harness] starting {TIMESCALEDB_IMAGE} with testcontainers")
    with PostgresContainer(TIMESCALEDB_IMAGE, username="postgres", password="postgres",
                           dbname="postgres", driver=None) as container:
        yield container.get_connection_url()


@contextmanager
def local_server(settings: dict[str, str] | None = None,
                 log: Callable[[str], None] = print) -> Iterator[str]:
    from loader.devdb.cluster import start_local_cluster

    cluster = start_local_cluster(settings=settings, log=log)
    log(f"[tsfleet-harness] local PostgreSQL + TimescaleDB on port {cluster.port} "
        f"(data in {cluster.datadir})")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@contextmanager
def throwaway_server(explicit_url: str | None = None,
                     log: Callable[[str], None] = print) -> Iterator[str]:
    """Yield a server URL (superuser) following the documented order of choice."""
    if explicit_url:
        log("[tsfleet-harness] using the server given by the environment")
        yield explicit_url
    elif docker_engine_answers():
        with docker_server(log=log) as url:
            yield url
    else:
        log("[tsfleet-harness] no Docker engine answers; starting a local cluster")
        with local_server(log=log) as url:
            yield url
