"""Helpers for the stream-consumer tests: real `tsfleet consume nats` subprocesses, messages
in the normalized format, and waiting for the database to show what the consumer wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg

from tests.processing_support import add_asset, add_device, add_link

STREAM = "TELEMETRY"
SUBJECT = "telemetry.normalized.v1"
DURABLE = "asset-processor-group"
T0 = datetime(2026, 1, 28, 14, 30, tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def asset_worker_message(message_id: str = "msg-0001", **overrides: Any) -> dict[str, Any]:
    """The asset-worker example message (device-abc-123 at 2026-01-28T14:30:00Z)."""
    message = {
        "messageId": message_id,
        "deviceId": "device-abc-123",
        "organizationId": "org-1",
        "timestamp": "2026-01-28T14:30:00Z",
        "receivedAt": "2026-01-28T14:30:01.250Z",
        "metrics": {"temperature": 25.5, "voltage": 12.3, "current": 2.5, "pressure": 101.3,
                    "port_1_temp": 40.0, "port_2_temp": 55.0},
        "deviceMetadata": {"deviceType": "pump-controller", "serialNumber": "SN-4711",
                           "firmwareVersion": "2.3.1"},
    }
    message.update(overrides)
    return message


def fleet_messages(devices: int, steps: int, prefix: str = "m",
                   start: datetime = T0) -> list[dict[str, Any]]:
    """devices x steps messages, time-ordered, 4 metrics each, unique ids."""
    out = []
    for step in range(steps):
        at = iso(start + timedelta(minutes=step))
        for dev in range(devices):
            out.append({
                "messageId": f"{prefix}-{dev:04d}-{step:05d}",
                "deviceId": f"dev-{dev:04d}",
                "organizationId": "org-1",
                "timestamp": at,
                "receivedAt": at,
                "metrics": {"temperature": 20 + dev % 10 + step / 100, "voltage": 12.0,
                            "current": 2.0 + dev % 3, "pressure": 101.0},
            })
    return out


def pumps_for_worked_example(conn: psycopg.Connection) -> None:
    """Pump A (primary) and Pump B (RTU port 1) fed by device-abc-123, as in issue 3's
    worked example; the device is registered up front under the message's tenant."""
    conn.execute("insert into telemetry.tenants (tenant_key) values ('org-1')"
                 " on conflict do nothing")
    row = conn.execute("select tenant_id from telemetry.tenants where tenant_key = 'org-1'"
                       ).fetchone()
    assert row is not None
    tenant_id = int(row[0])
    device_id = add_device(conn, "device-abc-123", tenant_id=tenant_id)
    pump_a = add_asset(conn, "Pump A", tenant_id=tenant_id)
    pump_b = add_asset(conn, "Pump B", tenant_id=tenant_id)
    add_link(conn, device_id, pump_a, tenant_id=tenant_id, mapping={
        "device.voltage": "asset.power_input",
        "device.current": "asset.power_current",
        "device.temperature": "asset.motor_temperature",
    })
    add_link(conn, device_id, pump_b, tenant_id=tenant_id,
             mapping={"temperature": "motor_temperature"}, rtu_port=1, link_role="secondary")


def tsfleet_command() -> list[str]:
    script = Path(sys.executable).with_name("tsfleet")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from loader.cli import main; main()"]


@dataclass
class ConsumerProcess:
    """A real `tsfleet consume nats` process; its JSON log lines are kept in a file."""

    nats_url: str
    database_url: str
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    pause_before_ack: bool = False  # stop for good after the first commit (paused_consumer.py)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tsfleet-consume-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "consumer.log"

    @property
    def stats_path(self) -> Path:
        return self.workdir / "stats.json"

    def start(self) -> ConsumerProcess:
        command = ([sys.executable, str(Path(__file__).with_name("paused_consumer.py"))]
                   if self.pause_before_ack else [*tsfleet_command(), "consume", "nats"])
        args = [*command, "--servers", self.nats_url,
                "--stream", STREAM, "--subject", SUBJECT, "--durable", DURABLE,
                "--database-url", self.database_url, "--stats-json", str(self.stats_path),
                "--stats-interval", "1s", *self.extra]
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed in wait/kill)
        self.process = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                        env={**os.environ, **self.env})
        return self

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found

    def wait_for_event(self, name: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == name:
                    return event
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"consumer exited ({self.process.returncode}) before "
                                     f"{name}:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        raise AssertionError(f"no {name} event within {timeout} s:\n"
                             f"{self.log_path.read_text(errors='replace')[-4000:]}")

    def stats(self) -> dict[str, Any]:
        return json.loads(self.stats_path.read_text())

    def wait(self, timeout: float = 120) -> int:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self.log.close()
        return code

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no cleanup, no acks, nothing flushed
        self.wait(30)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_consumer(nats_url: str, database_url: str, *extra: str,
                     env: dict[str, str] | None = None) -> Iterator[ConsumerProcess]:
    """A consumer for the body of a `with`; stopped (SIGTERM, then SIGKILL) afterwards."""
    consumer = ConsumerProcess(nats_url, database_url, list(extra), env or {}).start()
    try:
        yield consumer
    finally:
        if consumer.process and consumer.process.poll() is None:
            consumer.process.send_signal(signal.SIGTERM)
            try:
                consumer.wait(60)
            except subprocess.TimeoutExpired:
                consumer.kill()


def wait_until(check: Callable[[], Any], timeout: float = 120, what: str = "condition",
               interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def count(url: str, query: str, params: Any = None) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def receipts(url: str) -> int:
    return count(url, "select count(*) from ingest.message_receipts")
