"""`python -m loader.devdb run -- CMD...`: run CMD with DATABASE_URL set to a throwaway database.

Used by `make demo`. The server follows the harness's order of choice (DEMO_DATABASE_URL, a
Docker engine, or a local cluster) and is removed when CMD ends.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
from psycopg import sql

from loader.db import with_database
from loader.devdb.provision import throwaway_server


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "run" or argv[1] != "--":
        print("usage: python -m loader.devdb run -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    with throwaway_server(os.environ.get("DEMO_DATABASE_URL")) as server_url:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists tsfleet_demo with (force)"))
            conn.execute(sql.SQL("create database tsfleet_demo"))
        env = {**os.environ, "DATABASE_URL": with_database(server_url, "tsfleet_demo")}
        return subprocess.call(argv[2:], env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
