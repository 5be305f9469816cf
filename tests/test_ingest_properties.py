"""Property-based tests (hypothesis) of the CSV and JSON parsers and the COPY text encoding."""

from __future__ import annotations

import csv
import json
import math
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.formats.generic_csv import CsvLayout, open_generic_csv
from loader.formats.messages_jsonl import decode_message, open_jsonl
from loader.formats.records import FormatError, Reading, Reject, TimestampParser
from loader.ingest.staging import escape

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
keys = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
               min_size=1, max_size=20).map(str.strip).filter(bool)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                       timezones=st.just(timezone.utc))


def unescape_copy_text(text: str) -> str:
    """PostgreSQL's reading of COPY text escapes (the subset escape() produces)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@SETTINGS
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")))
def test_copy_escaping_round_trips_and_never_splits_a_row(text: str) -> None:
    escaped = escape(text)
    assert "\t" not in escaped and "\n" not in escaped and "\r" not in escaped
    assert unescape_copy_text(escaped) == text


@SETTINGS
@given(moments, st.sampled_from([0, 60, -330, 840]))
def test_iso_timestamps_with_any_offset_parse_to_the_same_instant(moment: datetime,
                                                                  minutes: int) -> None:
    local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    parsed = TimestampParser("iso")(local.isoformat())
    assert datetime.fromisoformat(parsed) == moment


@SETTINGS
@given(st.integers(min_value=0, max_value=7_000_000_000_000))
def test_epoch_milliseconds_parse_exactly(ms: int) -> None:
    parsed = TimestampParser("epoch_ms")(str(ms))
    expected = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    assert datetime.fromisoformat(parsed) == expected


@SETTINGS
@given(st.lists(st.tuples(moments, keys, keys, finite), min_size=1, max_size=30))
def test_narrow_csv_round_trips_any_keys_and_values(rows: list[tuple[datetime, str, str, float]]
                                                     ) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["time", "device", "metric", "value"])
            for moment, device, metric, value in rows:
                writer.writerow([moment.isoformat(), device, metric, repr(value)])
        items = list(open_generic_csv(path, CsvLayout(), None).items())
    assert all(isinstance(i, Reading) for i in items)
    got = [(datetime.fromisoformat(i.recorded_at), i.device_key, i.metric_name, i.value)
           for i in items]
    assert got == rows


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_as_csv_give_readings_rejects_or_a_format_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.csv"
        path.write_bytes(b"time,device,metric,value\n" + data)
        try:
            items = list(open_generic_csv(path, CsvLayout(), None).items())
        except FormatError as exc:
            assert exc.source == str(path) and exc.message
            return
    for item in items:
        assert isinstance(item, (Reading, Reject))
        if isinstance(item, Reading):
            assert math.isfinite(item.value) and item.device_key and item.metric_name
        else:
            assert item.reason and item.line is not None and item.line >= 2


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


@SETTINGS
@given(json_values | message_like)
def test_any_json_value_decodes_to_readings_or_rejects_never_an_exception(value: object
                                                                          ) -> None:
    device, items = decode_message(value, 1, "raw", TimestampParser("iso"))
    for item in items:
        assert isinstance(item, (Reading, Reject))
        if isinstance(item, Reading):
            assert device is not None and item.device_key == device.device_key
            assert math.isfinite(item.value) and item.message_id
        else:
            assert item.reason and item.line == 1


@SETTINGS
@given(st.lists(st.tuples(keys, keys, moments, st.dictionaries(keys, finite, min_size=1,
                                                                 max_size=4)),
                min_size=1, max_size=10))
def test_json_lines_round_trip_every_metric_of_every_message(
        messages: list[tuple[str, str, datetime, dict[str, float]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_text("".join(json.dumps({"messageId": mid, "deviceId": dev,
                                            "timestamp": moment.isoformat(),
                                            "metrics": metrics}) + "\n"
                                for mid, dev, moment, metrics in messages), encoding="utf-8")
        items = list(open_jsonl(str(path), None).items())
    expected = [(mid.strip(), dev.strip(), moment, name.strip(), value)
                for mid, dev, moment, metrics in messages for name, value in metrics.items()]
    got = [(i.message_id, i.device_key, datetime.fromisoformat(i.recorded_at), i.metric_name,
            i.value) for i in items if isinstance(i, Reading)]
    assert got == expected
