"""NATS JetStream consumer draining a stream vs `tsfleet load messages` of the same JSON Lines."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nats
import psycopg
from nats.js.api import StreamConfig

from bench.harness import BenchContext, Result, stopwatch
from tests.nats_support import NatsServer, find_or_install_nats_server

MESSAGES = 200_000
DEVICES = 1_000
STREAM = "TELEMETRY"
SUBJECT = "telemetry.normalized.v1"
DESIGN_RATE = 10_000.0  # msg/s per worker the asset-worker design expects

# Half of the devices feed a pump each (the pump asset type ships with the migrations).
SETUP_SQL = """
insert into telemetry.tenants (tenant_key) values ('org-1') on conflict do nothing;

insert into telemetry.devices (tenant_id, device_key)
select t.tenant_id, format('bench-dev-%%s', lpad(i::text, 4, '0'))
from generate_series(0, %(devices)s - 1) as i
cross join telemetry.tenants as t
where t.tenant_key = 'org-1';

insert into telemetry.assets (tenant_id, asset_key, asset_type_id)
select d.tenant_id, 'bench-pump-' || d.device_key, aty.asset_type_id
from telemetry.devices as d
cross join telemetry.asset_types as aty
where aty.asset_type_key = 'pump' and d.device_key like 'bench-dev-%%'
    and right(d.device_key, 1)::int %% 2 = 0;

insert into telemetry.device_asset_links (tenant_id, device_id, asset_id, metrics_mapping)
select d.tenant_id, d.device_id, a.asset_id,
    '{"voltage": "power_input", "current": "power_current",
      "temperature": "motor_temperature"}'::jsonb
from telemetry.devices as d
inner join telemetry.assets as a on a.asset_key = 'bench-pump-' || d.device_key;
"""


def messages(count: int, devices: int) -> list[bytes]:
    """Time-ordered messages, 4 metrics each, stamped in the last few hours (live data)."""
    steps = max(1, count // devices)
    start = (datetime.now(timezone.utc) - timedelta(minutes=steps + 60)).replace(
        second=0, microsecond=0)
    out = []
    for step in range(steps):
        at = (start + timedelta(minutes=step)).isoformat().replace("+00:00", "Z")
        for dev in range(devices):
            out.append(json.dumps({
                "messageId": f"bench-{dev:04d}-{step:06d}",
                "deviceId": f"bench-dev-{dev:04d}",
                "organizationId": "org-1",
                "timestamp": at,
                "receivedAt": at,
                "metrics": {"temperature": 40 + (dev + step) % 50, "voltage": 11 + dev % 3,
                            "current": 1.5 + (step % 7) / 2, "pressure": 100 + dev % 5},
            }).encode())
    return out


async def _publish_all(url: str, payloads: list[bytes]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT]))
        futures = [await js.publish_async(SUBJECT, data) for data in payloads]
        await asyncio.gather(*futures)
    finally:
        await nc.close()


def _tsfleet() -> list[str]:
    script = Path(sys.executable).with_name("tsfleet")
    return [str(script)] if script.exists() else [
        sys.executable, "-c", "from loader.cli import main; main()"]


def _prepare(url: str, devices: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in SETUP_SQL.split(";\n"):
            if statement.strip():
                conn.execute(statement, {"devices": devices})


def _rows(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select (select count(*) from ingest.message_receipts),"
            " (select count(*) from telemetry.readings),"
            " (select count(*) from telemetry.asset_readings)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scaled(MESSAGES, minimum=DEVICES)
    payloads = messages(count, DEVICES)
    count = len(payloads)
    workdir = Path(tempfile.mkdtemp(prefix="tsfleet-bench-consume-"))
    jsonl = workdir / "messages.jsonl"
    jsonl.write_bytes(b"\n".join(payloads) + b"\n")

    try:
        drains: dict[int, tuple[float, tuple[int, int, int], dict]] = {}
        for batch in (1000, 5000):
            drains[batch] = _drain(ctx, payloads, batch, workdir)
        with ctx.database() as url:
            _prepare(url, DEVICES)
            with stopwatch() as load_time:
                subprocess.run([*_tsfleet(), "load", "messages", str(jsonl),
                                "--database-url", url], check=True, stdout=subprocess.DEVNULL)
            loaded = _rows(url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    load_rate = count / load_time["seconds"]
    results = []
    for batch, (seconds, consumed, stats) in drains.items():
        if consumed != loaded or consumed[0] != count:
            raise RuntimeError(f"the two paths wrote different rows: consumer {consumed}, "
                               f"file load {loaded}, expected {count} messages")
        rate = count / seconds
        results += [
            Result(f"consumer --batch {batch}, {count:,} msgs", rate, "msg/s",
                   baseline=load_rate, baseline_name="tsfleet load messages, same JSONL "
                   f"({consumed[1]:,} readings, {consumed[2]:,} asset rows)",
                   target=">= 0.5"),
            Result(f"consumer --batch {batch} vs asset-worker design", rate, "msg/s",
                   baseline=DESIGN_RATE, baseline_name="10,000 msg/s per worker (design)",
                   target=">= 3.0"),
            Result(f"consumer --batch {batch} batch latency p50", float(
                stats["batch_latency_ms"]["p50"] or 0), "ms"),
            # Deferred refresh (--refresh-interval 30s): a few refreshes, not one per batch.
            Result(f"consumer --batch {batch} rollup refreshes", float(
                stats.get("rollup_refreshes", 0)), "count", baseline=float(stats["batches"]),
                baseline_name="micro-batches (the per-batch refreshes it replaces)"),
        ]
    return results


def _drain(ctx: BenchContext, payloads: list[bytes], batch: int,
           workdir: Path) -> tuple[float, tuple[int, int, int], dict]:
    """Publish into a fresh NATS, then time one consumer process draining it into a fresh
    database: (seconds, rows written, the consumer's final counters)."""
    nats_server = NatsServer(binary=find_or_install_nats_server()).start()
    try:
        asyncio.run(_publish_all(nats_server.url, payloads))
        with ctx.database() as url:
            _prepare(url, DEVICES)
            stats_path = workdir / f"stats-{batch}.json"
            with stopwatch() as elapsed, open(workdir / f"consumer-{batch}.log", "wb") as log:
                subprocess.run(
                    [*_tsfleet(), "consume", "nats", "--servers", nats_server.url,
                     "--stream", STREAM, "--subject", SUBJECT, "--durable", "bench",
                     "--database-url", url, "--batch", str(batch), "--max-wait", "200ms",
                     "--stop-when-drained", "--stats-json", str(stats_path),
                     "--stats-interval", "60s"],
                    check=True, stdout=subprocess.DEVNULL, stderr=log,
                )
            return elapsed["seconds"], _rows(url), json.loads(stats_path.read_text())
    finally:
        nats_server.cleanup()
