"""A real Alertmanager for tests: free port, temp storage, generated config, no clustering.

Like the NATS harness, it provides what is missing: when Debian's `prometheus-alertmanager`
(which ships `amtool`) is not installed and the machine is Debian with apt-get and root, it
installs the package (printing each step). Where that is impossible the tests that need it are
skipped with the reason. No mocks: tests talk to Alertmanager's API and to amtool.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from loader.devdb.cluster import free_port

DEBIAN_PACKAGE = "prometheus-alertmanager"
BINARIES = ("prometheus-alertmanager", "amtool")


def log(message: str) -> None:
    print(f"[tsfleet-alertmanager-harness] {message}", flush=True)


def _run_step(command: list[str]) -> None:
    log("$ " + " ".join(command))
    subprocess.run(command, check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _which(name: str) -> str | None:
    return shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                  else None)


def find_or_install_alertmanager() -> tuple[str, str]:
    """(alertmanager, amtool) paths; installs Debian's package when missing."""
    found = [_which(name) for name in BINARIES]
    if all(found):
        return found[0], found[1]  # type: ignore[return-value]
    if not shutil.which("apt-get") or not Path("/etc/debian_version").exists():
        raise RuntimeError("Alertmanager is not installed and this is not Debian: install "
                           "alertmanager and amtool (https://prometheus.io) and re-run")
    if os.geteuid() != 0:
        raise RuntimeError("Alertmanager is not installed and installing Debian's package "
                           f"needs root: run `apt-get install {DEBIAN_PACKAGE}` and re-run")
    log("alertmanager not found: installing Debian's package")
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", DEBIAN_PACKAGE]
    try:
        _run_step(install)
    except subprocess.CalledProcessError:
        _run_step(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"])
        _run_step(install)
    found = [_which(name) for name in BINARIES]
    if not all(found):
        raise RuntimeError(f"installed {DEBIAN_PACKAGE} but found no alertmanager/amtool")
    return found[0], found[1]  # type: ignore[return-value]


def webhook_config(webhook_url: str | None, resolve_timeout: str = "5m",
                   group_wait: str = "1s", group_interval: str = "1s") -> dict[str, Any]:
    """A route tree sending everything, grouped by rule and tenant, to one webhook."""
    receiver: dict[str, Any] = {"name": "test-webhook"}
    if webhook_url:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True,
                                        "max_alerts": 0}]
    return {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {"receiver": "test-webhook", "group_by": ["rule", "tenant"],
                  "group_wait": group_wait, "group_interval": group_interval,
                  "repeat_interval": "1h"},
        "receivers": [receiver],
    }


@dataclass
class Alertmanager:
    """An Alertmanager process owned by one test (loopback only, clustering off)."""

    binary: str
    amtool: str
    config: dict[str, Any]
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tsfleet-am-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config))
        log_path = self.workdir / "alertmanager.log"
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={config_path}",
                 f"--storage.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 "--cluster.listen-address=", "--log.level=info"],
                stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited with {self.process.returncode}:\n"
                                   + log_path.read_text(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"alertmanager did not get ready on port {self.port} within 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- talking to it ------------------------------------------------------------------------

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (active, silenced and inhibited ones, as the API lists them)."""
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=5) as resp:
            return json.loads(resp.read())

    def amtool_run(self, *args: str) -> str:
        result = subprocess.run([self.amtool, f"--alertmanager.url={self.url}", *args],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"amtool {' '.join(args)} failed: {result.stderr}")
        return result.stdout


@pytest.fixture(scope="session")
def alertmanager_binaries() -> tuple[str, str]:
    try:
        return find_or_install_alertmanager()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no Alertmanager for these tests: {exc}")


@pytest.fixture
def start_alertmanager(alertmanager_binaries: tuple[str, str]) -> Iterator:
    """A factory: start_alertmanager(config) -> a running Alertmanager, stopped afterwards."""
    started: list[Alertmanager] = []

    def start(config: dict[str, Any]) -> Alertmanager:
        am = Alertmanager(binary=alertmanager_binaries[0], amtool=alertmanager_binaries[1],
                          config=config).start()
        started.append(am)
        return am

    try:
        yield start
    finally:
        for am in started:
            am.cleanup()
