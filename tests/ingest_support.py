"""Helpers for the loader tests: run `tsfleet load`, write small input files, read results."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner, Result

from loader.cli import main

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"


def run_load(db_url: str, *args: str, input: str | None = None) -> Result:
    """`tsfleet load ARGS...` against db_url, in-process."""
    runner = CliRunner()
    return runner.invoke(main, ["load", *args], env={"DATABASE_URL": db_url}, input=input,
                         catch_exceptions=False)


def run_load_json(db_url: str, *args: str, input: str | None = None) -> dict[str, Any]:
    result = run_load(db_url, *args, "--json", input=input)
    start = result.stdout.index("{")
    return json.loads(result.stdout[start:])


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, messages: Iterable[object]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
    return path


def message(message_id: str, device: str = "device-abc-123", timestamp: str =
            "2026-01-28T14:30:00Z", organization: str | None = "org-1",
            **metrics: object) -> dict[str, Any]:
    """A normalized telemetry message like the asset worker's example."""
    body: dict[str, Any] = {
        "messageId": message_id, "deviceId": device, "timestamp": timestamp,
        "receivedAt": timestamp,
        "metrics": metrics or {"temperature": 25.5, "voltage": 12.3, "current": 2.5,
                               "pressure": 101.3},
        "deviceMetadata": {"deviceType": "pump-sensor", "serialNumber": "SN-1",
                           "firmwareVersion": "1.0.0"},
    }
    if organization is not None:
        body["organizationId"] = organization
    return body


def readings(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """Every stored reading as (time iso, device, metric, value, quality), sorted."""
    return conn.execute(
        "select to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'),"
        " device_key, metric_name, value, quality from telemetry.readings_named"
        " order by 1, 2, 3").fetchall()


def batches(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("select * from ingest.batches order by batch_id").fetchall()


def rejects(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute("select source_name, line_number, field_name, raw_text, reason"
                        " from ingest.rejects order by reject_id").fetchall()


def scalar(conn: psycopg.Connection, query: str, params: Sequence[object] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]
