"""A deterministic demo fleet with planted anomalies (`tsfleet simulate`).

Every value is a function of (seed, device, metric, reading time) alone: the same seed and the
same start give the same readings, byte for byte, however the range is cut into batches, and a
message id is the same for the same device and time, so writing a range twice changes nothing.
Reading times lie on a grid of `interval` (multiples of it since the Unix epoch).

The planted anomalies follow a timeline anchored at the first reading time `t0` (the start);
with the default 27 h backfill that ends at now, all of them are under way at now:

    device   metric                    from t0 + ...   anomaly                   caught by
    bat-02   StateOfChargePercentage   24h             drains 1.5 %/min to 8 %   low_battery
    gh-02    temperature_c             25h30m (+k*6h)  45 C for 45 minutes       temperature_range
    gh-03    humidity_pct              24h             +25 points within 20 min  humidity_drift
    gh-04    (all)                     24h             sends nothing             stale_device
    gh-05    humidity_pct              24h             quality `suspect`         quality_anomalies

Readings are built as normalized messages (the JSON Lines `tsfleet load messages` reads) and
written through the same library path as that command (`open_jsonl` + `load_source`); the
normalized message format has no quality field, so gh-05's flagged humidity goes through the
generic narrow CSV path `tsfleet load csv` reads (time,device,metric,value,quality). Over NATS
(`publish_nats`) the flagged readings cannot be carried and are published unflagged.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg

ONSET = timedelta(hours=24)  # after a day of normal history: the drift rule's 24 h baseline
SPIKE_AT = timedelta(hours=25, minutes=30)
SPIKE_EVERY = timedelta(hours=6)
SPIKE_FOR = timedelta(minutes=45)
DEFAULT_BACKFILL = timedelta(hours=27)  # t0 + 27 h = now: every anomaly caught by now
SUSPECT = "suspect"


@dataclass(frozen=True)
class DeviceSpec:
    device_key: str
    tenant_key: str
    device_type: str
    serial_number: str
    metrics: tuple[str, ...]


GREENHOUSE = ("temperature_c", "humidity_pct")
BATTERY = ("StateOfChargePercentage", "voltage_v")

FLEET: tuple[DeviceSpec, ...] = (
    *(DeviceSpec(f"gh-0{n}", "demo-greenhouses", "greenhouse-sensor", f"GH-SIM-{n:03d}",
                 GREENHOUSE) for n in range(1, 6)),
    *(DeviceSpec(f"bat-0{n}", "demo-energy", "battery-pack", f"BAT-SIM-{n:03d}", BATTERY)
      for n in range(1, 4)),
)


@dataclass(frozen=True)
class Anomaly:
    """One planted anomaly: where it is, from when, and which condition kind should catch it."""

    name: str
    device_key: str
    metric: str  # '*' for the whole device
    condition_kind: str
    starts_after: timedelta
    description: str


ANOMALIES: tuple[Anomaly, ...] = (
    Anomaly("battery drain", "bat-02", "StateOfChargePercentage", "low_battery", ONSET,
            "state of charge drains 1.5 %/min to 8 %"),
    Anomaly("temperature spike", "gh-02", "temperature_c", "temperature_range", SPIKE_AT,
            "45 C for 45 minutes, every 6 hours"),
    Anomaly("humidity drift", "gh-03", "humidity_pct", "humidity_drift", ONSET,
            "humidity 25 points above the same hour yesterday"),
    Anomaly("silent device", "gh-04", "*", "stale_device", ONSET, "sends nothing"),
    Anomaly("bad quality flags", "gh-05", "humidity_pct", "quality_anomalies", ONSET,
            f"every humidity reading flagged {SUSPECT}"),
)


@dataclass(frozen=True)
class Reading:
    recorded_at: datetime
    device: DeviceSpec
    metric: str
    value: float
    quality: str | None = None  # None: good (the messages format carries no quality)


@dataclass
class Simulation:
    """The fleet of one seed, its anomaly timeline anchored at `t0`, readings every `interval`."""

    seed: int
    t0: datetime
    interval: timedelta = timedelta(minutes=1)
    fleet: Sequence[DeviceSpec] = field(default=FLEET)

    def __post_init__(self) -> None:
        if self.interval.total_seconds() < 1:
            raise ValueError("the interval must be at least 1 second")
        if self.t0.tzinfo is None:
            raise ValueError("t0 must be timezone-aware")
        self.t0 = align_up(self.t0, self.interval)

    # -- reading times --------------------------------------------------------------------
    def ticks(self, after: datetime | None, until: datetime) -> Iterator[datetime]:
        """Reading times on the grid in (after, until] (from t0 on when `after` is None)."""
        step = self.interval
        tick = self.t0 if after is None or after < self.t0 else align_up(after + _TINY, step)
        while tick <= until:
            yield tick
            tick += step

    # -- values ---------------------------------------------------------------------------
    def readings(self, at: datetime) -> list[Reading]:
        """Every device's readings at one reading time (a silent device has none)."""
        out: list[Reading] = []
        since = at - self.t0
        for device in self.fleet:
            if device.device_key == "gh-04" and since >= ONSET:
                continue
            rng = random.Random(f"{self.seed}/{device.device_key}/{_epoch(at)}")
            for metric in device.metrics:
                value, quality = self._value(device, metric, at, since, rng)
                out.append(Reading(at, device, metric, round(value, 2), quality))
        return out

    def _value(self, device: DeviceSpec, metric: str, at: datetime, since: timedelta,
               rng: random.Random) -> tuple[float, str | None]:
        key = device.device_key
        phase = _unit(self.seed, key)  # each device its own offset in the cycles
        day = 2 * math.pi * (_epoch(at) / 86400.0 + phase * 0.1)
        if metric == "temperature_c":
            value = 22 + 4 * math.sin(day - math.pi / 2) + rng.gauss(0, 0.3)
            if key == "gh-02" and _in_spike(since):
                value = 45 + rng.gauss(0, 0.5)
            return value, None
        if metric == "humidity_pct":
            value = 60 - 6 * math.sin(day - math.pi / 2) + rng.gauss(0, 0.8)
            if key == "gh-03" and since >= ONSET:
                value += 25 * min(1.0, (since - ONSET) / timedelta(minutes=20))
            quality = SUSPECT if key == "gh-05" and since >= ONSET else None
            return min(value, 100.0), quality
        soc = self._state_of_charge(key, at, since, phase)
        if metric == "StateOfChargePercentage":
            return soc + rng.gauss(0, 0.2), None
        return 48 + 0.04 * (soc - 50) + rng.gauss(0, 0.05), None  # voltage_v

    def _state_of_charge(self, key: str, at: datetime, since: timedelta, phase: float,
                         ) -> float:
        def normal(moment: datetime) -> float:
            return 70 + 20 * math.sin(2 * math.pi * (_epoch(moment) / 28800.0 + phase))
        if key == "bat-02" and since >= ONSET:
            drained = 1.5 * (since - ONSET).total_seconds() / 60
            return max(8.0, normal(self.t0 + ONSET) - drained)
        return normal(at)

    # -- anomalies ------------------------------------------------------------------------
    def anomaly_start(self, anomaly: Anomaly) -> datetime:
        return self.t0 + anomaly.starts_after


def _in_spike(since: timedelta) -> bool:
    if since < SPIKE_AT:
        return False
    return (since - SPIKE_AT) % SPIKE_EVERY < SPIKE_FOR


_TINY = timedelta(microseconds=1)


def _epoch(at: datetime) -> float:
    return at.timestamp()


def _unit(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by the seed and the device."""
    return random.Random(f"{seed}/{key}/phase").random()


def align_up(at: datetime, step: timedelta) -> datetime:
    """The first multiple of `step` since the Unix epoch at or after `at`."""
    seconds = step.total_seconds()
    ticks = math.ceil(round(at.timestamp() / seconds, 9))
    return datetime.fromtimestamp(ticks * seconds, tz=timezone.utc)


def align_down(at: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    ticks = math.floor(round(at.timestamp() / seconds, 9))
    return datetime.fromtimestamp(ticks * seconds, tz=timezone.utc)


# -- the bytes: normalized messages and the flagged readings ----------------------------------

def iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def messages(seed: int, readings: Iterable[Reading]) -> list[dict[str, Any]]:
    """One normalized message per device and time (flagged readings left out: see csv_rows)."""
    grouped: dict[tuple[datetime, str], list[Reading]] = {}
    for reading in readings:
        grouped.setdefault((reading.recorded_at, reading.device.device_key), []).append(reading)
    out = []
    for (at, key), group in grouped.items():
        device = group[0].device
        metrics = {r.metric: r.value for r in group if r.quality is None}
        out.append({
            "messageId": f"sim-{seed}-{key}-{at.strftime('%Y%m%dT%H%M%SZ')}",
            "deviceId": key,
            "organizationId": device.tenant_key,
            "timestamp": iso(at),
            "receivedAt": iso(at + timedelta(seconds=1)),
            "metrics": metrics,
            "deviceMetadata": {"deviceType": device.device_type,
                               "serialNumber": device.serial_number,
                               "firmwareVersion": "sim-1.0"},
        })
    return out


def jsonl(items: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(m, separators=(", ", ": ")).encode() + b"\n" for m in items)


def flagged_csv(readings: Iterable[Reading]) -> bytes:
    """Readings with a quality flag as narrow CSV (`tsfleet load csv`), or b'' when none."""
    flagged = [r for r in readings if r.quality is not None]
    if not flagged:
        return b""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["time", "device", "metric", "value", "quality"])
    for r in flagged:
        writer.writerow([iso(r.recorded_at), r.device.device_key, r.metric, r.value, r.quality])
    return text.getvalue().encode()


def render(simulation: Simulation, readings: Sequence[Reading]) -> bytes:
    """The whole output as one byte string: the JSON Lines, then the flagged CSV (if any)
    after a `# flagged readings` line (what `tsfleet simulate --out` writes)."""
    body = jsonl(messages(simulation.seed, readings))
    flagged = flagged_csv(readings)
    return body + (b"# flagged readings (tsfleet load csv)\n" + flagged if flagged else b"")


def readings_between(simulation: Simulation, after: datetime | None, until: datetime,
                     ) -> list[Reading]:
    return [r for at in simulation.ticks(after, until) for r in simulation.readings(at)]


# -- writing ----------------------------------------------------------------------------------

@dataclass
class Written:
    readings: int = 0
    messages: int = 0
    rows_inserted: int = 0
    rows_duplicate: int = 0
    rows_rejected: int = 0
    failed: list[str] = field(default_factory=list)

    def add(self, result: Any) -> None:
        self.rows_inserted += int(result.rows_inserted)
        self.rows_duplicate += int(result.rows_duplicate)
        self.rows_rejected += int(result.rows_rejected)
        if result.status == "failed":
            self.failed.append(f"{result.source_name}: {result.error}")


def write_database(url: str, simulation: Simulation, readings: Sequence[Reading],
                   connect: Callable[..., psycopg.Connection]) -> Written:
    """Write readings as `tsfleet load messages` (and `tsfleet load csv` for the flagged ones)
    would: through open_jsonl / open_generic_csv and load_source, then the rollup queue."""
    # Imported here: the public load path, whatever its internals (loader/ingest is the
    # ingestion owner's; nothing below reaches past its exported functions).
    from loader.formats import messages_jsonl
    from loader.formats.generic_csv import CsvLayout, open_generic_csv
    from loader.ingest import BatchFailed, LoadOptions, load_source
    from loader.ingest.checksum import content_checksum
    from loader.ingest.rollup_refresh import drain_queue

    written = Written(readings=len(readings))
    if not readings:
        return written
    batch = messages(simulation.seed, readings)
    written.messages = len(batch)
    first, last = readings[0].recorded_at, readings[-1].recorded_at
    stem = f"simulate-seed{simulation.seed}-{first:%Y%m%dT%H%M%S}-{last:%Y%m%dT%H%M%S}"
    with tempfile.TemporaryDirectory(prefix="tsfleet-simulate-") as tmp, \
            connect(url, autocommit=True) as conn:
        path = Path(tmp) / f"{stem}.jsonl"
        path.write_bytes(jsonl(batch))
        sources: list[Callable[[], Any]] = [functools.partial(
            messages_jsonl.open_jsonl, str(path), content_checksum([path], root=path.parent))]
        flagged = flagged_csv(readings)
        if flagged:
            # The flagged devices (gh-05) are in one tenant; they exist from their messages.
            tenant = min(r.device.tenant_key for r in readings if r.quality is not None)
            csv_path = Path(tmp) / f"{stem}-flagged.csv"
            csv_path.write_bytes(flagged)
            spec = CsvLayout(layout="narrow")
            checksum = content_checksum([csv_path], root=csv_path.parent,
                                        options=spec.describe())
            sources.append(functools.partial(open_generic_csv, csv_path, spec, checksum,
                                             tenant))
        for open_source in sources:
            options = LoadOptions(refresh_rollups=True)
            try:
                written.add(load_source(conn, open_source(), options))
            except BatchFailed as failed:
                written.add(failed.result)
        drain_queue(conn)
    return written


async def publish_nats(servers: str, subject: str, seed: int, readings: Sequence[Reading],
                       ) -> int:
    """Publish the readings' messages to JetStream (Nats-Msg-Id = messageId, so a re-publish
    inside the stream's duplicate window is dropped); the number published."""
    import nats

    batch = messages(seed, readings)
    nc = await nats.connect(servers=servers.split(","), connect_timeout=5)
    try:
        js = nc.jetstream()
        for message in batch:
            await js.publish(subject, json.dumps(message).encode(),
                             headers={"Nats-Msg-Id": message["messageId"]})
    finally:
        await nc.drain()
    return len(batch)


# -- where each anomaly was caught --------------------------------------------------------------

@dataclass
class Caught:
    anomaly: Anomaly
    rule_key: str | None
    fired_at: datetime | None
    peak_value: float | None
    other_devices: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"anomaly": self.anomaly.name, "device": self.anomaly.device_key,
                "metric": self.anomaly.metric, "condition_kind": self.anomaly.condition_kind,
                "rule": self.rule_key, "fired_at": iso(self.fired_at) if self.fired_at else None,
                "peak_value": self.peak_value, "other_devices": self.other_devices}


def caught(conn: psycopg.Connection, simulation: Simulation, until: datetime,
           step: timedelta = timedelta(minutes=5)) -> list[Caught]:
    """Backtest every enabled rule of each anomaly's condition kind from an hour before the
    anomaly starts to `until` (alerts.backtest writes nothing): the first episode each raised
    for the anomaly's device, and the simulated devices they fired for besides."""
    simulated = {d.device_key for d in simulation.fleet}
    out = []
    for anomaly in ANOMALIES:
        start = simulation.anomaly_start(anomaly) - timedelta(hours=1)
        rules = [r[0] for r in conn.execute(
            "select rule_key from alerts.rules where condition_kind = %s and is_enabled"
            " order by rule_key", [anomaly.condition_kind]).fetchall()]
        best: Caught = Caught(anomaly, None, None, None, [])
        others: set[str] = set()
        for rule_key in rules:
            if until <= start:
                break
            episodes = conn.execute(
                "select labels ->> 'device', fired_at, peak_value"
                " from alerts.backtest(%s, %s, %s, %s) where fired_at is not null"
                " order by fired_at", [rule_key, start, until, step]).fetchall()
            for device, fired_at, peak in episodes:
                if device == anomaly.device_key:
                    if best.fired_at is None or fired_at < best.fired_at:
                        best = Caught(anomaly, rule_key, fired_at, peak, [])
                elif device in simulated:
                    others.add(device)
        best.other_devices = sorted(others)
        out.append(best)
    if not conn.autocommit:
        conn.rollback()  # a backtest writes nothing; its scratch tables go with it
    return out
