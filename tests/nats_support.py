"""A real NATS server with JetStream for tests: free port, temp store dir, stopped afterwards.

Like the database harness, it provides what is missing: when no `nats-server` binary is on
the PATH and the machine is Debian with apt-get and root, it installs Debian's `nats-server`
package (printing each step). Where that is impossible the tests that need NATS are skipped
with the reason. No mocks of NATS anywhere: tests talk to this server with nats-py.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from loader.devdb.cluster import free_port

DEBIAN_PACKAGE = "nats-server"


def log(message: str) -> None:
    print(f"[tsfleet-nats-harness] {message}", flush=True)


def _run_step(command: list[str]) -> None:
    log("$ " + " ".join(command))
    subprocess.run(command, check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def find_or_install_nats_server() -> str:
    """Path of nats-server; installs Debian's package when missing. Raises RuntimeError why not."""
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if found:
        return found
    if not shutil.which("apt-get") or not Path("/etc/debian_version").exists():
        raise RuntimeError("nats-server is not installed and this is not Debian: install "
                           "nats-server (https://nats.io, >= 2.9, JetStream) and re-run")
    if os.geteuid() != 0:
        raise RuntimeError("nats-server is not installed and installing Debian's package needs "
                           "root: run `apt-get install nats-server` as root and re-run")
    log("nats-server not found: installing Debian's package")
    install = ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=600", DEBIAN_PACKAGE]
    try:
        _run_step(install)
    except subprocess.CalledProcessError:
        _run_step(["apt-get", "update", "-o", "DPkg::Lock::Timeout=600"])
        _run_step(install)
    found = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(found).exists():
        raise RuntimeError("installed Debian's nats-server but found no binary")
    return found


@dataclass
class NatsServer:
    """A nats-server process owned by the test; restart() keeps port and JetStream store."""

    binary: str
    port: int = field(default_factory=free_port)
    store_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tsfleet-nats-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self, log_path: Path) -> list[str]:
        return [self.binary, "--jetstream", "--addr", "127.0.0.1", "--port", str(self.port),
                "--store_dir", str(self.store_dir / "js"), "--log", str(log_path)]

    def start(self) -> NatsServer:
        log_path = self.store_dir / "server.log"
        self.process = subprocess.Popen(self.command(log_path), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
                raise RuntimeError(f"nats-server exited with {self.process.returncode}:\n{tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"nats-server did not listen on port {self.port} within 30 s")
        asyncio.run(self._wait_for_jetstream())
        return self

    async def _wait_for_jetstream(self) -> None:
        nc = await nats.connect(self.url, connect_timeout=5)
        try:
            for _ in range(200):
                try:
                    await nc.jetstream().account_info()
                    return
                except Exception:  # JetStream may take a moment after the port opens
                    await asyncio.sleep(0.05)
        finally:
            await nc.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, downtime_s: float = 0.0) -> None:
        """Stop and start on the same port with the same store: streams and consumers survive."""
        self.stop()
        time.sleep(downtime_s)
        self.start()

    def kill(self) -> None:
        """SIGKILL: no goodbye to the cluster, nothing flushed."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.store_dir, ignore_errors=True)


@dataclass
class ClusterNode(NatsServer):
    """One node of a JetStream cluster on loopback (routes to every other node)."""

    name: str = "n1"
    cluster_port: int = field(default_factory=free_port)
    routes: list[int] = field(default_factory=list)

    def command(self, log_path: Path) -> list[str]:
        config = self.store_dir / "node.conf"
        routes = ", ".join(f'"nats://127.0.0.1:{port}"' for port in self.routes)
        config.write_text(
            f'server_name: "{self.name}"\n'
            f'listen: "127.0.0.1:{self.port}"\n'
            f'jetstream {{ store_dir: "{self.store_dir / "js"}" }}\n'
            f'cluster {{ name: "tsfleet-test", listen: "127.0.0.1:{self.cluster_port}",'
            f" routes: [{routes}] }}\n")
        return [self.binary, "--config", str(config), "--log", str(log_path)]

    async def _wait_for_jetstream(self) -> None:
        pass  # a lone node has no JetStream until the cluster elected its meta leader


@dataclass
class NatsCluster:
    """Three (or more) nats-server processes clustered on loopback, JetStream on each."""

    nodes: list[ClusterNode]

    @classmethod
    def start(cls, binary: str, size: int = 3) -> NatsCluster:
        cluster_ports = [free_port() for _ in range(size)]
        nodes = [ClusterNode(binary=binary, name=f"n{i + 1}", cluster_port=port,
                             routes=[p for p in cluster_ports if p != port])
                 for i, port in enumerate(cluster_ports)]
        cluster = cls(nodes)
        try:
            for node in nodes:
                node.start()
            asyncio.run(cluster._wait_until_ready())
        except BaseException:
            cluster.cleanup()
            raise
        return cluster

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def servers(self) -> str:
        return ",".join(self.urls)

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    async def _wait_until_ready(self, timeout: float = 60) -> None:
        """Every node answers JetStream requests (the meta leader is elected)."""
        deadline = time.monotonic() + timeout
        for url in self.urls:
            nc = await nats.connect(url, connect_timeout=5)
            try:
                while True:
                    try:
                        await nc.jetstream(timeout=2).account_info()
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
            finally:
                await nc.close()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


@pytest.fixture(scope="session")
def nats_binary() -> str:
    try:
        return find_or_install_nats_server()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no NATS server for the streaming tests: {exc}")


@pytest.fixture
def nats_server(nats_binary: str) -> Iterator[NatsServer]:
    """A fresh NATS server with JetStream for this test alone."""
    server = NatsServer(binary=nats_binary).start()
    try:
        yield server
    finally:
        server.cleanup()


# --- talking to the server (real client, no mocks) -------------------------------------------

async def _with_js(url: str, work):
    nc = await nats.connect(url, connect_timeout=5)
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


def add_stream(url: str, name: str, subjects: Sequence[str]) -> None:
    async def work(js):
        await js.add_stream(StreamConfig(name=name, subjects=list(subjects)))
    asyncio.run(_with_js(url, work))


def publish(url: str, subject: str, payloads: Sequence[bytes | dict]) -> list[int]:
    """Publish to JetStream, waiting for each ack; returns the stream sequence numbers."""
    async def work(js):
        seqs = []
        for payload in payloads:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            seqs.append((await js.publish(subject, data)).seq)
        return seqs
    return asyncio.run(_with_js(url, work))


def stream_messages(url: str, subject: str) -> list[tuple[dict[str, str], bytes]]:
    """Every message stored for `subject` (headers, data), read without consuming them."""
    async def work(js):
        stream = await js.find_stream_name_by_subject(subject)
        info = await js.stream_info(stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            if msg.subject == subject:
                found.append((dict(msg.headers or {}), msg.data or b""))
        return found
    return asyncio.run(_with_js(url, work))


def consumer_state(url: str, stream: str, durable: str) -> dict[str, int]:
    """Pending and unacknowledged counts of a durable consumer."""
    async def work(js):
        info = await js.consumer_info(stream, durable)
        return {"num_pending": info.num_pending, "num_ack_pending": info.num_ack_pending,
                "num_redelivered": info.num_redelivered,
                "delivered": info.delivered.stream_seq if info.delivered else 0}
    return asyncio.run(_with_js(url, work))
