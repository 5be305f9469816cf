"""Write the deterministic sample datasets under data/samples/ (all four input formats).

    python scripts/make_samples.py [--out data/samples]

Same output on every run (fixed seed and dates, 2026-01-26..28 UTC). Deliberate anomalies,
for the quality views and alerts to find:
- instruments: GH1-02 reads 85.0 degC at 2026-01-27 13:00 (out of range); GH1-03's humidity
  drifts upward through 2026-01-28; GH1-04 flags 'bad' quality six hours running on
  2026-01-27; GH1-05 goes silent after 2026-01-26 06:00.
- battery: BAT-3 (…0003) runs its state of charge down to 12 % at the end; BAT-4 (…0004) is an
  asset without telemetry; GridImportKwh-mainmeter is a series with a qualifier.
- messages: pump sensors of two organizations every 5 minutes; 5 messages are delivered twice
  (same messageId) and must count as duplicates.
- generic: narrow.csv (time,device,metric,value,quality) and wide.csv (time,device,metrics...).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

START = datetime(2026, 1, 26, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parent.parent


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def instruments(out: Path, rng: random.Random) -> None:
    for number in range(1, 6):
        ident = f"GH1-{number:02d}"
        folder = out / f"instrument_{ident}"
        folder.mkdir(parents=True)
        for day in range(3):
            date = START + timedelta(days=day)
            rows = []
            for hour in range(24):
                moment = date + timedelta(hours=hour)
                if ident == "GH1-05" and moment > START + timedelta(hours=6):
                    break
                temperature = 21 + 4 * math.sin((hour - 8) / 24 * 2 * math.pi) + rng.gauss(0, .3)
                humidity = 62 - 8 * math.sin((hour - 8) / 24 * 2 * math.pi) + rng.gauss(0, 1)
                quality = "good"
                if ident == "GH1-02" and day == 1 and hour == 13:
                    temperature = 85.0
                if ident == "GH1-03" and day == 2:
                    humidity += 1.5 * hour
                if ident == "GH1-04" and day == 1 and 8 <= hour < 14:
                    quality = "bad"
                rows.append([iso(moment), f"{temperature:.2f}", f"{humidity:.1f}", quality])
            if not rows:
                continue
            path = folder / f"instrument_{ident}_{date:%Y%m%d}.csv"
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(["timestamp", "temperature_c", "humidity_pct", "quality_flag"])
                writer.writerows(rows)


def battery(out: Path, rng: random.Random) -> None:
    (out / "assets").mkdir(parents=True)
    (out / "telemetry").mkdir()
    ids = [f"6f1c2a3e-0000-4000-8000-00000000000{n}" for n in range(1, 5)]
    items = [{"deviceId": ident, "description": f"BAT-{n} home battery, site {n}",
              "state": "Warning" if n == 3 else "Ok"} for n, ident in enumerate(ids, start=1)]
    document = {"totalCount": len(items), "items": items}
    (out / "assets" / "assets.json").write_text(json.dumps(document, indent=2) + "\n")
    start_ms = int(START.timestamp() * 1000)
    step_ms = 15 * 60 * 1000
    for n, ident in enumerate(ids[:3], start=1):
        soc, energy = 80.0, 1000.0 * n
        series = {"StateOfChargePercentage": [], "BatteryPowerW": [],
                  "GridImportKwh-mainmeter": []}
        for step in range(192):
            stamp = start_ms + step * step_ms
            power = round(1500 * math.sin(step / 96 * 2 * math.pi) + rng.gauss(0, 50), 1)
            soc = min(100.0, max(5.0, soc + power / 4000 + rng.gauss(0, .2)))
            if n == 3:
                soc = max(12.0, 80.0 - step * 0.36)
            energy += abs(rng.gauss(0.25, 0.05))
            series["StateOfChargePercentage"].append([stamp, round(soc, 1)])
            series["BatteryPowerW"].append([stamp, power])
            series["GridImportKwh-mainmeter"].append([stamp, round(energy, 3)])
        payload = {"series": [{"name": k, "data": v} for k, v in series.items()]}
        (out / "telemetry" / f"{ident}.json").write_text(json.dumps(payload) + "\n")


def messages(out: Path, rng: random.Random) -> None:
    out.mkdir(parents=True)
    devices = [("device-abc-123", "org-1"), ("device-abc-124", "org-1"),
               ("device-abc-125", "org-1"), ("device-xyz-201", "org-2"),
               ("device-xyz-202", "org-2")]
    lines = []
    counter = 0
    for step in range(48):
        moment = START + timedelta(hours=12, minutes=5 * step)
        for number, (device, organization) in enumerate(devices):
            counter += 1
            message = {
                "messageId": f"msg-{counter:06d}",
                "deviceId": device,
                "organizationId": organization,
                "timestamp": iso(moment),
                "receivedAt": iso(moment + timedelta(seconds=2)),
                "metrics": {
                    "temperature": round(25 + number + rng.gauss(0, .5), 2),
                    "voltage": round(12.3 + rng.gauss(0, .05), 2),
                    "current": round(2.5 + rng.gauss(0, .1), 2),
                    "pressure": round(101.3 + rng.gauss(0, .2), 2),
                },
                "deviceMetadata": {"deviceType": "pump-sensor",
                                   "serialNumber": f"SN-{device[-3:]}",
                                   "firmwareVersion": "1.4.2"},
            }
            lines.append(json.dumps(message))
    # Redeliveries: the broker sent these five again, later in the stream.
    lines += [lines[i] for i in (3, 50, 100, 150, 200)]
    (out / "messages.jsonl").write_text("\n".join(lines) + "\n")


def generic(out: Path, rng: random.Random) -> None:
    out.mkdir(parents=True)
    with open(out / "narrow.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["time", "device", "metric", "value", "quality"])
        for step in range(96):
            moment = START + timedelta(minutes=15 * step)
            for device in ("meter-01", "meter-02", "meter-03"):
                writer.writerow([iso(moment), device, "power_w",
                                 f"{400 + rng.gauss(0, 20):.1f}", "good"])
                writer.writerow([iso(moment), device, "energy_kwh",
                                 f"{step * 0.1 + rng.random() * 0.01:.3f}", "good"])
    with open(out / "wide.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["time", "device", "supply_temp_c", "return_temp_c", "flow_pct"])
        for step in range(72):
            moment = START + timedelta(minutes=20 * step)
            for device in ("hvac-01", "hvac-02"):
                writer.writerow([iso(moment), device, f"{45 + rng.gauss(0, 1):.2f}",
                                 f"{35 + rng.gauss(0, 1):.2f}",
                                 "" if step % 24 == 5 else f"{60 + rng.gauss(0, 5):.1f}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "samples")
    args = parser.parse_args()
    rng = random.Random(20260126)
    for name, make in (("instruments", instruments), ("battery", battery),
                       ("messages", messages), ("generic", generic)):
        target = args.out / name
        if target.exists():
            shutil.rmtree(target)
        make(target, rng)
    print(f"samples written to {args.out}")


if __name__ == "__main__":
    main()
