"""Properties of the SQL parse path against Python references (hypothesis).

The database parses every value (sql/functions/21_ingest_values.sql, 22_ingest_parse.sql);
Python's csv module, float(), datetime and zoneinfo are the references it must agree with.
Each example is a query on the test database (one connection for the whole test).
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.formats.generic_csv import CsvLayout, open_generic_csv
from loader.ingest import load_source
from loader.stream.messages import RawMessage
from loader.stream.sink import write_messages
from tests.ingest_support import readings, write_csv

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
keys = text.map(str.strip).filter(bool)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                       timezones=st.just(timezone.utc))


@SETTINGS
@given(st.lists(text, min_size=1, max_size=6), st.sampled_from([",", ";", "\t", "|"]))
def test_a_csv_line_splits_into_the_fields_pythons_csv_module_wrote(
        conn: psycopg.Connection, fields: list[str], delimiter: str) -> None:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(fields)
    line = out.getvalue()
    expected = next(csv.reader([line], delimiter=delimiter))
    got = conn.execute("select ingest.split_csv_line(%s, %s)", [line, delimiter]).fetchone()
    assert got is not None and got[0] == expected


@SETTINGS
@given(st.text(st.sampled_from('a,"'), max_size=8))
def test_a_line_with_unbalanced_quotes_is_null_never_a_guess(conn: psycopg.Connection,
                                                              line: str) -> None:
    try:
        reference = next(csv.reader([line], strict=True))
        roundtrip = io.StringIO()
        csv.writer(roundtrip, lineterminator="").writerow(reference)
    except csv.Error:
        reference = None
    got = conn.execute("select ingest.split_csv_line(%s, ',')", [line]).fetchone()
    assert got is not None
    if got[0] is not None and reference is not None:
        assert got[0] == reference
    if reference is None:
        assert got[0] is None


@SETTINGS
@given(finite)
def test_a_number_text_reads_as_python_reads_it(conn: psycopg.Connection, value: float) -> None:
    for shown in (repr(value), f"{value:.17e}", f"{value:f}"):
        got = conn.execute("select ingest.to_float(%s)", [shown]).fetchone()
        assert got is not None and got[0] == float(shown), shown


@SETTINGS
@given(st.sampled_from(["1e400", "-1e400", "1e-400", "9" * 5000, "1" + "0" * 400, "NaN",
                        "inf", "-Infinity", "1_000", "0x10", "", " ", "1.2.3", "--1"]))
def test_what_is_not_a_storable_number_is_null_with_a_reason(conn: psycopg.Connection,
                                                             shown: str) -> None:
    value, reason = conn.execute(
        "select ingest.to_float(ingest.number_text(%s, '.')),"
        " ingest.number_problem(%s, ingest.number_text(%s, '.'))",
        [shown, shown, shown]).fetchone()
    assert value is None and reason


@SETTINGS
@given(moments, st.sampled_from([0, 60, -330, 840]))
def test_iso_timestamps_with_any_offset_parse_to_the_same_instant(
        conn: psycopg.Connection, moment: datetime, minutes: int) -> None:
    local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    at, problem = conn.execute("select * from ingest.parse_time(%s)",
                               [local.isoformat()]).fetchone()
    assert problem is None and at == moment


@SETTINGS
@given(st.integers(min_value=0, max_value=7_000_000_000_000))
def test_epoch_milliseconds_parse_exactly(conn: psycopg.Connection, ms: int) -> None:
    at, problem = conn.execute("select * from ingest.parse_time(%s, 'epoch_ms')",
                               [str(ms)]).fetchone()
    assert problem is None
    assert at == datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)


def zoneinfo_reading(local: datetime, zone: str) -> tuple[str, list[datetime]]:
    """The reference: the instants a wall-clock time names in a zone (zoneinfo's folds)."""
    tz = ZoneInfo(zone)
    candidates = sorted({local.replace(tzinfo=tz, fold=fold).astimezone(timezone.utc)
                         for fold in (0, 1)})
    valid = [c for c in candidates if c.astimezone(tz).replace(tzinfo=None) == local]
    kind = "nonexistent" if not valid else "ambiguous" if len(valid) == 2 else "plain"
    return kind, valid


@settings(SETTINGS, max_examples=60)
@given(st.sampled_from(["Europe/Rome", "America/New_York", "Australia/Lord_Howe"]),
       st.sampled_from(["2004-03-28", "2004-10-31", "2021-03-14", "2021-11-07", "2021-04-04",
                        "2021-10-03", "2021-06-15"]),
       st.integers(min_value=0, max_value=24 * 4 - 1))
def test_local_times_across_daylight_saving_match_zoneinfo(
        conn: psycopg.Connection, zone: str, day: str, quarter: int) -> None:
    local = datetime.fromisoformat(day) + timedelta(minutes=15 * quarter)
    kind, valid = zoneinfo_reading(local, zone)
    for mode in ("raise", "earliest", "latest"):
        at, problem = conn.execute("select * from ingest.localize(%s, %s, %s)",
                                   [local, zone, mode]).fetchone()
        if kind == "nonexistent":
            assert at is None and "nonexistent local time" in problem
        elif kind == "ambiguous" and mode == "raise":
            assert at is None and "ambiguous local time" in problem
        else:
            expected = valid[-1] if mode == "latest" else valid[0]
            assert problem is None and at == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
message_like = st.fixed_dictionaries(
    {}, optional={"messageId": json_values | keys, "deviceId": json_values | keys,
                  "timestamp": json_values | moments.map(datetime.isoformat),
                  "organizationId": json_values | keys,
                  "metrics": json_values | st.dictionaries(keys, json_values | finite),
                  "deviceMetadata": json_values})


@settings(SETTINGS, max_examples=20)
@given(st.lists(json_values | message_like, min_size=1, max_size=5))
def test_any_json_gives_readings_or_rejects_and_the_batch_commits(
        conn: psycopg.Connection, values: list[object]) -> None:
    payloads = [RawMessage(None, None, json.dumps(v).encode(), n + 1)
                for n, v in enumerate(values)]
    counts = write_messages(conn, payloads, source_name="nats:any")
    assert counts.batch_id is not None
    reasons = conn.execute("select reason from ingest.rejects where batch_id = %s",
                           [counts.batch_id]).fetchall()
    assert all(reason for (reason,) in reasons)
    assert counts.rejected == len(reasons)


@settings(SETTINGS, max_examples=15)
@given(st.lists(st.tuples(moments.filter(lambda m: m.year < 2026), keys, keys, finite),
                min_size=1, max_size=30, unique_by=lambda r: (r[0], r[1], r[2])))
def test_narrow_csv_round_trips_any_keys_and_values(
        conn: psycopg.Connection, tmp_path: Path,
        rows: list[tuple[datetime, str, str, float]]) -> None:
    conn.execute("truncate telemetry.readings, telemetry.devices, ingest.batches cascade")
    path = write_csv(tmp_path / "any.csv", ["time", "device", "metric", "value"],
                     [[m.isoformat(), d, n, repr(v)] for m, d, n, v in rows])
    result = load_source(conn, open_generic_csv(path, CsvLayout(), None))
    assert (result.rows_inserted, result.rows_rejected) == (len(rows), 0)
    expected = sorted((m.strftime("%Y-%m-%dT%H:%M:%S"), d, n, v) for m, d, n, v in rows)
    got = sorted((t, d, n, v) for t, d, n, v, _q in readings(conn))
    assert len(got) == len(expected)
    for (t, d, n, v), (et, ed, en, ev) in zip(got, expected, strict=True):
        assert (t, d, n) == (et, ed, en) and (v == ev or math.isclose(v, ev))
