"""A throwaway local PostgreSQL cluster: initdb in a temp dir, free port, unprivileged user."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from loader.devdb.timescaledb_install import find_pg_bindir, require_timescaledb


class ClusterError(RuntimeError):
    """The local cluster could not be created or started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_user() -> str | None:
    """PostgreSQL refuses to run as root: pick the unprivileged account to run it as."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("TSFLEET_PG_USER"), "postgres", "nobody"):
        if not name:
            continue
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise ClusterError(
        "running as root and no unprivileged account (postgres or nobody) exists; "
        "create one or set TSFLEET_PG_USER"
    )


@dataclass
class LocalCluster:
    """A PostgreSQL cluster owned by this process; `stop()` removes every trace of it."""

    bindir: Path
    port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)
    datadir: Path | None = None
    _workdir: Path | None = None
    _user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, *args: str) -> list[str]:
        if self._user:
            return ["runuser", "-u", self._user, "--", *args]
        return list(args)

    def start(self) -> LocalCluster:
        self._user = _run_as_user()
        self._workdir = Path(tempfile.mkdtemp(prefix="tsfleet-pg-"))
        self.datadir = self._workdir / "data"
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self._workdir, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
            ),
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self._workdir}'",
            "shared_preload_libraries": "'timescaledb'",
            "timescaledb.telemetry_level": "off",
            "max_connections": "200",
            "fsync": "off",  # throwaway data: durability buys nothing here
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "512MB",
            "max_wal_size": "4GB",
            "log_min_messages": "warning",
            **self.settings,
        }
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as handle:
            handle.write("\n# tsfleet throwaway cluster\n")
            for key, value in conf.items():
                handle.write(f"{key} = {value}\n")
        log = self._workdir / "server.log"
        result = subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(log),
                      "-w", "-t", "60", "start"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stderr
            self.stop()
            raise ClusterError(f"could not start PostgreSQL on port {self.port}:\n{tail}")
        return self

    def restart(self, downtime_s: float = 0.0) -> None:
        """Stop and start the server in place (same port, same data): for outage tests."""
        assert self.datadir is not None
        subprocess.run(self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                                 "-m", "fast", "-w", "stop"), check=True,
                       stdout=subprocess.DEVNULL)
        time.sleep(downtime_s)
        subprocess.run(self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                                 "-l", str(self._workdir / "server.log"), "-w", "start"),
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.datadir and (self.datadir / "postmaster.pid").exists():
            subprocess.run(
                self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m",
                          "immediate", "-w", "stop"),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local_cluster(settings: dict[str, str] | None = None, log=print) -> LocalCluster:
    """Start a throwaway cluster with TimescaleDB preloaded, installing the extension if needed."""
    bindir = find_pg_bindir()
    require_timescaledb(bindir, log=log)
    return LocalCluster(bindir=bindir, settings=settings or {}).start()
