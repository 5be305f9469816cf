"""A corpus of malformed inputs: each gives its documented outcome and loses no stored data.

File-level problems fail the batch with an error naming file, line and field, write nothing
but a failed batch row, and exit 1. Row-level problems go to ingest.rejects with line, field,
raw text and reason while the good rows of the batch load. See docs/formats.md.
"""

from __future__ import annotations

import json
import re
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


def narrow_bytes(name: str, *lines: str, args: tuple[str, ...] = (),
                 header: str = "time,device,metric,value") -> Callable[[Path], list[str]]:
    """A narrow file of the two good rows around the given raw lines."""
    body = "\n".join([header, ",".join(GOOD[0]), *lines, ",".join(GOOD[1])]) + "\n"
    return raw_file(name, body.encode(), *args)


def local_times(name: str, zone: str, *lines: str, args: tuple[str, ...] = ()
                ) -> Callable[[Path], list[str]]:
    """Naive local times in `zone` around a DST change: two good rows and the given ones."""
    body = "\n".join(["time,device,metric,value", "2004-03-27T12:00:00,x9,power_w,1",
                      *lines, "2004-04-02T12:00:00,x9,power_w,2"]) + "\n"
    return raw_file(name, body.encode(), "--timezone", zone, *args)


def instrument(rows: list[str]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        folder = tmp / "instrument_Q1"
        folder.mkdir()
        (folder / "instrument_Q1_20260201.csv").write_text(
            "timestamp,temperature_c,humidity_pct,quality_flag\n"
            "2026-02-01T00:00:00Z,20.5,40,ok\n" + "".join(r + "\n" for r in rows)
            + "2026-02-01T02:00:00Z,21.5,41,ok\n")
        return ["instruments", str(folder)]
    return build


def battery_points(*points: object) -> Callable[[Path], list[str]]:
    return battery_with(telemetry=json.dumps({"series": [{"name": "BatteryPowerW", "data": [
        [1769904000000, 1.5], *points, [1769904120000, 2.5]]}]}).encode())


def bad_message(**fields: object) -> Callable[[Path], list[str]]:
    body = {"messageId": "b1", "deviceId": "x1", "timestamp": "2026-02-01T00:05:00Z",
            "metrics": {"power_w": 3.5}}
    body.update(fields)
    return jsonl(json.dumps(body))


def raw_message(field_text: str) -> Callable[[Path], list[str]]:
    """A message whose JSON text holds `field_text` as written (json.dumps cannot write it)."""
    base = {"messageId": '"b1"', "deviceId": '"x1"', "timestamp": '"2026-02-01T00:05:00Z"',
            "metrics": '{"power_w": 3.5}'}
    name = field_text.split(":", 1)[0].strip().strip('"')
    fields = [f'"{k}": {v}' for k, v in base.items() if k != name] + [field_text]
    return jsonl("{" + ", ".join(fields) + "}")


HUGE = "1" + "0" * 400
DIGITS = "9" * 4301

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
    # --- issue 14: hostile values, each one reject beside the good rows ---
    Case("CSV number too large for a float", narrow_with(["2026-02-01T00:02:00Z", "x1",
                                                          "power_w", HUGE]),
         reject=("value", "out of the range of a double precision number")),
    Case("CSV number of 4301 digits", narrow_with(["2026-02-01T00:02:00Z", "x1", "power_w",
                                                   DIGITS]),
         reject=("value", "out of the range")),
    Case("CSV timestamp past year 9999 in UTC",
         narrow_with(["9999-12-31T23:59:59-05:00", "x1", "power_w", "1"]),
         reject=("time", "out of range (years 1 to 9999 UTC)")),
    Case("CSV timestamp before year 1 in UTC",
         narrow_with(["0001-01-01T00:00:00+01:00", "x1", "power_w", "1"]),
         reject=("time", "out of range (years 1 to 9999 UTC)")),
    Case("CSV date that does not exist", narrow_with(["2026-02-30T00:00:00Z", "x1", "power_w",
                                                      "1"]),
         reject=("time", "not a valid date and time")),
    Case("CSV 50,000-character device key",
         narrow_with(["2026-02-01T00:02:00Z", "d" * 50_000, "power_w", "1"]),
         reject=("device", "device key longer than 200 characters")),
    Case("CSV 50,000-character metric name",
         narrow_with(["2026-02-01T00:02:00Z", "x1", "m" * 50_000, "1"]),
         reject=("metric", "metric name longer than 200 characters")),
    Case("CSV 10 MB value cell", narrow_with(["2026-02-01T00:02:00Z", "x1", "power_w",
                                              "x" * 10_000_000]),
         reject=("value", "not a number")),
    Case("CSV 10 MB quality cell",
         raw_file("q.csv", b"time,device,metric,value,quality\n"
                           b"2026-02-01T00:00:00Z,x1,power_w,1.5,good\n"
                           b"2026-02-01T00:02:00Z,x1,power_w,1," + b"q" * 10_000_000 + b"\n"
                           b"2026-02-01T00:01:00Z,x1,power_w,2.5,good\n"),
         reject=("quality", "quality flag longer than 100 characters")),
    Case("CSV unbalanced quotes", narrow_bytes("uq.csv", '2026-02-01T00:02:00Z,"x1,power_w,1'),
         reject=(None, "quotes of this line do not balance")),
    Case("CSV empty metric", narrow_with(["2026-02-01T00:02:00Z", "x1", " ", "1"]),
         reject=("metric", "empty metric name")),
    Case("CSV point under --decimal ','",
         raw_file("dc.csv", b"time;device;metric;value\n2026-02-01T00:00:00Z;x1;power_w;1,5\n"
                            b"2026-02-01T00:02:00Z;x1;power_w;1.234\n"
                            b"2026-02-01T00:01:00Z;x1;power_w;2,5\n",
                  "--delimiter", ";", "--decimal", ","),
         reject=("value", "holds a point but --decimal is ','")),
    Case("CSV nonexistent local time (Europe/Rome)",
         local_times("rome.csv", "Europe/Rome", "2004-03-28T02:30:00,x9,power_w,5"),
         reject=("time", "nonexistent local time 2004-03-28 02:30:00 in Europe/Rome")),
    Case("CSV ambiguous local time (Europe/Rome)",
         local_times("rome2.csv", "Europe/Rome", "2004-10-31T02:30:00,x9,power_w,5"),
         reject=("time", "ambiguous local time 2004-10-31 02:30:00 in Europe/Rome")),
    Case("CSV nonexistent local time (America/New_York)",
         local_times("ny.csv", "America/New_York", "2004-04-04T02:30:00,x9,power_w,5"),
         reject=("time", "nonexistent local time 2004-04-04 02:30:00 in America/New_York")),
    Case("CSV strptime format not matched",
         narrow_bytes("st.csv", "31/02/2026 10:00,x1,power_w,1",
                      args=("--time-format", "%Y-%m-%dT%H:%M:%SZ")),
         reject=("time", "does not match --time-format")),
    Case("wide CSV bad cell", raw_file("wb.csv", b"time,device,power_w,energy_kwh\n"
                                       b"2026-02-01T00:00:00Z,x1,1.5,oops\n"
                                       b"2026-02-01T00:01:00Z,x1,2.5,\n", "--layout", "wide"),
         reject=("energy_kwh", "not a number")),
    Case("instrument timestamp out of range",
         instrument(["9999-12-31T23:59:59-05:00,20,40,ok"]),
         reject=("timestamp", "out of range"), good_rows=4),
    Case("instrument bad value", instrument(["2026-02-01T01:00:00Z,warm,40,ok"]),
         reject=("temperature_c", "not a number"), good_rows=5),
    Case("message number too large for a float", raw_message('"metrics": {"power_w": ' + HUGE
                                                             + "}"),
         reject=("metrics.power_w", "out of the range of a double precision number")),
    Case("message number of 4301 digits", raw_message('"metrics": {"power_w": ' + DIGITS + "}"),
         reject=("metrics.power_w", "out of the range")),
    Case("message \\u0000 in deviceId", raw_message('"deviceId": "x\\u00001"'),
         reject=(None, "invalid JSON: unsupported Unicode escape sequence")),
    Case("message lone surrogate in a metric name",
         raw_message('"metrics": {"power\\ud800": 1}'),
         reject=(None, "invalid JSON")),
    Case("message nested 100,000 deep",
         raw_message('"metrics": {"power_w": ' + "[" * 100_000 + "]" * 100_000 + "}"),
         reject=(None, "invalid JSON: stack depth limit exceeded")),
    Case("message timestamp past year 9999 in UTC",
         bad_message(timestamp="9999-12-31T23:59:59-05:00"),
         reject=("timestamp", "out of range")),
    Case("message timestamp not a string", bad_message(timestamp=1769904000),
         reject=("timestamp", "required field timestamp is not a string")),
    Case("message 50,000-character deviceId", bad_message(deviceId="d" * 50_000),
         reject=("deviceId", "deviceId longer than 200 characters")),
    Case("message empty metric name", bad_message(metrics={"": 1}),
         reject=("metrics.", "empty metric name")),
    Case("message metric value null", bad_message(metrics={"power_w": None}),
         reject=("metrics.power_w", "value is not a number: null")),
    Case("message organizationId not a string", bad_message(organizationId=7),
         reject=("organizationId", "organizationId must be a non-empty string")),
    Case("message not an object", jsonl("[1, 2]"),
         reject=(None, "a message must be a JSON object")),
    Case("battery value too large for a float",
         battery_with(telemetry=('{"series": [{"name": "BatteryPowerW", "data": ['
                                 '[1769904000000, 1.5], [1769904060000, ' + HUGE + '],'
                                 ' [1769904120000, 2.5]]}]}').encode()),
         reject=("BatteryPowerW", "out of the range of a double precision number")),
    Case("battery value not a number", battery_points([1769904060000, "x"]),
         reject=("BatteryPowerW", "value is not a number")),
    Case("battery timestamp not epoch milliseconds", battery_points(["2026-02-01", 1.0]),
         reject=("BatteryPowerW", "timestamp is not epoch milliseconds")),
    Case("battery epoch out of range", battery_points([1e300, 1.0]),
         reject=("BatteryPowerW", "epoch milliseconds out of range")),
    # --- file level, with an error that says what to do ---
    Case("wrong delimiter", raw_file("sc.csv", b"time;device;metric;value\n"
                                     b"2026-02-01T00:00:00Z;x1;power_w;1\n"),
         error=("sc.csv:1: the header is one column", "pass --delimiter ';'")),
    Case("time column named timestamp",
         raw_file("ts.csv", b"timestamp,value\n2026-02-01T00:00:00Z,1\n"),
         error=("ts.csv:1:time: required column 'time' is missing (header: timestamp,value)",
                "try --time-column timestamp")),
    Case("narrow file that is wide",
         raw_file("wi.csv", b"time,device,power_w\n2026-02-01T00:00:00Z,x1,1\n"),
         error=("wi.csv:1:metric: required column 'metric' is missing", "--layout wide")),
    Case("mixed line endings", raw_file("le.csv", b"time,device,metric,value\r\n"
                                        b"2026-02-01T00:00:00Z,x1,power_w,1\n"),
         error=("le.csv:", "unreadable text", "use one line ending")),
    Case("a line of just backslash-period",
         raw_file("bp.csv", b"time,device,metric,value\n\\.\n"
                            b"2026-02-01T00:00:00Z,x1,power_w,1\n"),
         error=("bp.csv:2: a line holding only",)),
    Case("control character U+0001", raw_file("cc.csv", b"time,device,metric,value\n"
                                              b"2026-02-01T00:00:00Z,x\x011,power_w,1\n"),
         error=("cc.csv:2: contains the control character U+0001",)),
    Case("unsupported strptime directive",
         raw_file("sd.csv", b"time,device,metric,value\n2026,x1,power_w,1\n",
                  "--time-format", "%Q"),
         error=("unsupported directive %Q",)),
    Case("unknown column in --columns",
         raw_file("uc.csv", b"time,device,power_w\n2026-02-01T00:00:00Z,x1,1\n",
                  "--layout", "wide", "--columns", "T,RH"),
         error=("uc.csv:1:T: column 'T' of --columns/--exclude is not in the header",)),
    Case("every row rejected", raw_file("ar.csv", b"time,device,metric,value\n"
                                        b"yesterday,x1,power_w,1\n"),
         error=("every row was rejected (1 rejects), nothing stored",
                "ar.csv:2:time: not an ISO-8601 timestamp")),
]


@pytest.fixture
def preloaded(db_url: str, conn: psycopg.Connection) -> list[tuple[object, ...]]:
    """Previously loaded data that no malformed input may change."""
    assert run_load(db_url, "csv", str(SAMPLES / "generic" / "narrow.csv")).exit_code == 0
    conn.execute("update telemetry.metrics set valid_min = 0, valid_max = 50000"
                 " where metric_name = 'power_w'")
    return readings(conn)


def test_the_corpus_covers_at_least_forty_kinds() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_input_gives_its_documented_outcome(case: Case, db_url: str,
                                                      conn: psycopg.Connection,
                                                      preloaded: list[tuple[object, ...]],
                                                      tmp_path: Path) -> None:
    args = case.build(tmp_path)
    result = run_load(db_url, *args)
    assert not re.search(r"\b[A-Z][a-z]+[A-Z]?[a-z]*(Error|Exception)\b|Traceback", result.output)
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


def test_the_summary_names_the_first_rejects_and_where_the_rest_are(
        db_url: str, tmp_path: Path) -> None:
    rows = [("2026-01-01T00:00:00Z", "d1", "t", "1.5")]
    rows += [(f"2026-01-01T{hour:02d}:00:00Z", "d1", "t", f"bad{hour}") for hour in range(1, 6)]
    path = write_csv(tmp_path / "bad.csv", ["time", "device", "metric", "value"], rows)
    result = run_load(db_url, "csv", str(path))
    assert result.exit_code == 0, result.output
    named = [line.strip() for line in result.output.splitlines()
             if line.strip().startswith("rejected ")]
    assert named == [f"rejected {path}:{line}:value: not a number: 'bad{line - 2}'"
                     for line in (3, 4, 5)]
    assert "... 2 more: select * from ingest.rejects where batch_id = " in result.output
