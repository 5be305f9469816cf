"""A corpus of malformed inputs: each gives its documented outcome and loses no stored data.

File-level problems fail the batch with an error naming file, line and field, write nothing
but a failed batch row, and exit 1. Row-level problems go to ingest.rejects with line, field,
raw text and reason while the good rows of the batch load. See docs/formats.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.ingest_support import SAMPLES, batches, readings, rejects, run_load, scalar, write_csv

NARROW = ["time", "device", "metric", "value"]
GOOD = [["2026-02-01T00:00:00Z", "x1", "power_w", "1.5"],
        ["2026-02-01T00:01:00Z", "x1", "power_w", "2.5"]]


def narrow_with(bad: list[str]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        path = write_csv(tmp / "bad.csv", NARROW, [GOOD[0], bad, GOOD[1]])
        return ["csv", str(path)]
    return build


def raw_file(name: str, content: bytes, *args: str, fmt: str = "csv"
             ) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        path = tmp / name
        path.write_bytes(content)
        return [fmt, str(path), *args]
    return build


def battery_with(assets: bytes | None = None, telemetry: bytes | None = None
                 ) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        root = tmp / "battery"
        (root / "assets").mkdir(parents=True)
        (root / "telemetry").mkdir()
        (root / "assets" / "assets.json").write_bytes(assets or json.dumps(
            {"totalCount": 1, "items": [{"deviceId": "b1", "state": "Ok"}]}).encode())
        if telemetry is not None:
            (root / "telemetry" / "b1.json").write_bytes(telemetry)
        return ["battery", str(root)]
    return build


def jsonl(*lines: str) -> Callable[[Path], list[str]]:
    good = json.dumps({"messageId": "g1", "deviceId": "x1", "timestamp": "2026-02-01T00:00:00Z",
                       "metrics": {"power_w": 1.5, "energy_kwh": 2.5}})
    return raw_file("m.jsonl", ("\n".join([good, *lines]) + "\n").encode(), fmt="messages")


@dataclass
class Case:
    name: str
    build: Callable[[Path], list[str]]
    # error: substrings of the error; reject: (field, substring of the reason)
    error: tuple[str, ...] = ()
    reject: tuple[str | None, str] | None = None
    good_rows: int = 2


CASES = [
    # --- file-level: the batch fails, nothing is written but the failed batch row ---
    Case("empty file", raw_file("e.csv", b""), error=("e.csv: the file is empty",)),
    Case("header only", raw_file("h.csv", b"time,device,metric,value\n"),
         error=("h.csv:2: the file has a header but no data rows",)),
    Case("missing required column",
         raw_file("m.csv", b"time,device,metric\n2026-02-01T00:00:00Z,x1,power_w\n"),
         error=("m.csv:1:value: required column 'value' is missing",)),
    Case("duplicate column", raw_file("d.csv", b"time,device,metric,value,value\n"),
         error=("d.csv:1:value: duplicate column name",)),
    Case("not UTF-8", raw_file("l.csv", b"time,device,metric,value\n"
                                        b"2026-02-01T00:00:00Z,x1,power_w,1\n"
                                        b"2026-02-01T00:01:00Z,caf\xe9,power_w,1\n"),
         error=("l.csv:3: not UTF-8 text",)),
    Case("NUL byte", raw_file("n.csv", b"time,device,metric,value\n"
                                       b"2026-02-01T00:00:00Z,x\x001,power_w,1\n"),
         error=("n.csv:2: contains a NUL byte",)),
    Case("wide without device", raw_file("w.csv", b"time,power_w\n2026-02-01T00:00:00Z,1\n",
                                         "--layout", "wide"),
         error=("w.csv:1:device: wide layout needs a device column",)),
    Case("instrument without timestamp column",
         lambda tmp: ["instruments", str(write_csv(
             tmp / "instrument_Z9" / "instrument_Z9_20260201.csv",
             ["time", "temperature_c"], [["2026-02-01T00:00:00Z", "20"]]))],
         error=("instrument_Z9_20260201.csv:1:timestamp: required column 'timestamp'",)),
    Case("broken JSON", battery_with(assets=b'{"totalCount": 1,\n "items": [\n {"deviceId": }'),
         error=("assets.json:3: broken JSON: invalid input syntax for type json",)),
    Case("JSON of the wrong shape", battery_with(telemetry=b'{"points": []}'),
         error=("b1.json:1:series:",)),
    Case("asset without deviceId",
         battery_with(assets=b'{"totalCount": 1, "items": [{"description": "x"}]}'),
         error=("assets.json:items[1].deviceId: every asset needs a deviceId",)),
    Case("empty JSON Lines", raw_file("e.jsonl", b"\n\n", fmt="messages"),
         error=("e.jsonl: no messages",)),
    Case("JSON Lines not UTF-8",
         raw_file("u.jsonl", b'{"a": 1}\n{"messageId": "\xff"}\n', fmt="messages"),
         error=("u.jsonl:2: not UTF-8 text",)),
    # --- row-level: rejected with a reason, the good rows load ---
    Case("unparseable timestamp", narrow_with(["yesterday", "x1", "power_w", "1"]),
         reject=("time", "not an ISO-8601 timestamp")),
    Case("non-numeric value", narrow_with(["2026-02-01T00:02:00Z", "x1", "power_w", "abc"]),
         reject=("value", "not a number")),
    Case("NaN", narrow_with(["2026-02-01T00:02:00Z", "x1", "power_w", "NaN"]),
         reject=("value", "not a finite number")),
    Case("Infinity", narrow_with(["2026-02-01T00:02:00Z", "x1", "power_w", "-Infinity"]),
         reject=("value", "not a finite number")),
    Case("wrong field count", narrow_with(["2026-02-01T00:02:00Z", "x1", "power_w", "1", "2"]),
         reject=(None, "expected 4 fields, got 5")),
    Case("empty device", narrow_with(["2026-02-01T00:02:00Z", " ", "power_w", "1"]),
         reject=("device", "empty device")),
    Case("value outside the valid range",
         narrow_with(["2026-02-01T00:02:00Z", "x1", "power_w", "1000000"]),
         reject=("value", "outside the valid range [0, 50000] of metric power_w")),
    Case("timestamp far in the future",
         narrow_with(["2999-01-01T00:00:00Z", "x1", "power_w", "1"]),
         reject=("timestamp", "is in the future")),
    Case("epoch out of range",
         raw_file("ep.csv", b"time,device,metric,value\n1769904000,x1,power_w,1\n"
                            b"1e300,x1,power_w,1\n1769904060,x1,power_w,2\n",
                  "--time-format", "epoch_s"),
         reject=("time", "out of range")),
    Case("invalid JSON line", jsonl('{"messageId": "m2", "deviceId": '),
         reject=(None, "invalid JSON")),
    Case("message without messageId",
         jsonl(json.dumps({"deviceId": "x1", "timestamp": "2026-02-01T00:00:00Z",
                           "metrics": {"power_w": 1}})),
         reject=("messageId", "required field messageId is missing")),
    Case("metric value not a number",
         jsonl(json.dumps({"messageId": "m3", "deviceId": "x1",
                           "timestamp": "2026-02-01T00:05:00Z",
                           "metrics": {"power_w": "high"}})),
         reject=("metrics.power_w", "value is not a number")),
    Case("data point not a pair",
         battery_with(telemetry=json.dumps({"series": [{"name": "BatteryPowerW", "data": [
             [1769904000000, 1.5], [1769904060000], [1769904120000, 2.5]]}]}).encode()),
         reject=("BatteryPowerW", "a data point must be [epoch ms, number]")),
]


@pytest.fixture
def preloaded(db_url: str, conn: psycopg.Connection) -> list[tuple[object, ...]]:
    """Previously loaded data that no malformed input may change."""
    assert run_load(db_url, "csv", str(SAMPLES / "generic" / "narrow.csv")).exit_code == 0
    conn.execute("update telemetry.metrics set valid_min = 0, valid_max = 50000"
                 " where metric_name = 'power_w'")
    return readings(conn)


def test_the_corpus_covers_at_least_fifteen_kinds() -> None:
    assert len(CASES) >= 15
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_input_gives_its_documented_outcome(case: Case, db_url: str,
                                                      conn: psycopg.Connection,
                                                      preloaded: list[tuple[object, ...]],
                                                      tmp_path: Path) -> None:
    args = case.build(tmp_path)
    result = run_load(db_url, *args)
    last = batches(conn)[-1]
    if case.error:
        assert result.exit_code == 1, result.output
        for text in case.error:
            assert text in result.output
        assert last["status"] == "failed"
        assert all(text in last["error_message"] for text in case.error)
        assert readings(conn) == preloaded
        assert rejects(conn) == []
    else:
        assert case.reject is not None
        assert result.exit_code == 0, result.output
        assert last["status"] == "committed" and last["rows_rejected"] == 1
        assert last["rows_inserted"] == case.good_rows
        ((_source, line, field, raw, reason),) = rejects(conn)
        assert field == case.reject[0]
        assert case.reject[1] in reason
        assert line is not None and raw
        after = readings(conn)
        assert len(after) == len(preloaded) + case.good_rows
        assert set(preloaded) <= set(after)


def test_strict_fails_the_batch_on_the_first_reject(db_url: str, conn: psycopg.Connection,
                                                    preloaded: list[tuple[object, ...]],
                                                    tmp_path: Path) -> None:
    args = narrow_with(["2026-02-01T00:02:00Z", "x1", "power_w", "abc"])(tmp_path)
    result = run_load(db_url, *args, "--strict")
    assert result.exit_code == 1
    assert "bad.csv:3:value: not a number: 'abc' (--strict" in result.output
    assert readings(conn) == preloaded
    assert batches(conn)[-1]["status"] == "failed"


def test_strict_also_fails_on_a_reject_found_in_sql(db_url: str, conn: psycopg.Connection,
                                                    preloaded: list[tuple[object, ...]],
                                                    tmp_path: Path) -> None:
    args = narrow_with(["2026-02-01T00:02:00Z", "x1", "power_w", "1000000"])(tmp_path)
    result = run_load(db_url, *args, "--strict")
    assert result.exit_code == 1
    assert "bad.csv:3:value: value 1000000 outside the valid range" in result.output
    assert readings(conn) == preloaded
    assert scalar(conn, "select count(*) from ingest.rejects") == 0


def test_a_failed_file_does_not_stop_the_other_files(db_url: str, conn: psycopg.Connection,
                                                     tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", NARROW, GOOD)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    result = run_load(db_url, "csv", str(bad), str(good))
    assert result.exit_code == 1
    assert "1 of 2 batch(es) failed" in result.output
    assert [b["status"] for b in batches(conn)] == ["failed", "committed"]
    assert len(readings(conn)) == 2
