"""Property-based tests (hypothesis) of the CSV and JSON parsers and the COPY text encoding."""

from __future__ import annotations

import csv
import json
import math
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.formats import csv_reading, generic_csv
from loader.formats.generic_csv import CsvLayout, open_generic_csv
from loader.formats.messages_jsonl import decode_message, open_jsonl
from loader.formats.records import (
    FormatError,
    Item,
    Reading,
    ReadingBlock,
    Reject,
    TimestampParser,
)
from loader.ingest.staging import escape

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
keys = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
               min_size=1, max_size=20).map(str.strip).filter(bool)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                       timezones=st.just(timezone.utc))


def read_items(path: Path, layout: CsvLayout | None = None, *, by_rows: bool = False,
               ) -> list[Item] | FormatError:
    """Every item of a generic CSV file, blocks expanded to their readings; `by_rows` turns
    the chunks and the column-at-a-time parse off: the csv module reads the whole file, row
    by row (the reference)."""

    def one_chunk(self: csv_reading.CsvFile, size_hint: int | None = None,  # noqa: ANN202
                  first: int | None = None):
        yield csv_reading.RawChunk(self._reader.line_num + 1, self._handle, None)

    with mock.patch.object(csv_reading.CsvFile, "chunks",
                           one_chunk) if by_rows else mock.MagicMock():
        try:
            items = list(open_generic_csv(path, layout or CsvLayout(), None).items())
        except FormatError as exc:
            return exc
    out: list[Item] = []
    for item in items:
        out.extend(item.readings() if isinstance(item, ReadingBlock) else [item])
    return out


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
        items = read_items(path)
    assert isinstance(items, list) and all(isinstance(i, Reading) for i in items)
    got = [(datetime.fromisoformat(i.recorded_at), i.device_key, i.metric_name, i.value)
           for i in items]
    assert got == rows


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_as_csv_give_readings_rejects_or_a_format_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.csv"
        path.write_bytes(b"time,device,metric,value\n" + data)
        items = read_items(path)
        if isinstance(items, FormatError):
            assert items.source == str(path) and items.message
            return
    for item in items:
        assert isinstance(item, (Reading, Reject))
        if isinstance(item, Reading):
            assert math.isfinite(item.value) and item.device_key and item.metric_name
        else:
            assert item.reason and item.line is not None and item.line >= 2


csv_cells = {  # valid cells first (with blanks and offsets to clean up), then broken ones
    "time": (["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+02:00", "2026-01-01 00:30:00",
              " 2026-01-01T00:00:00Z "], ["yesterday", ""]),
    "device": (["d1", "d2", " d1 ", "ünï", "NA", "#d"], ["", " "]),
    "metric": (["temp_c", "rh_pct", " temp_c", "m\u00e9", "null"], [""]),
    "value": (["1", "-2.5", " 3 ", "4.0e-3", "1e308", "+1", "1.", ".5", "1e-400", "\u0661"],
              ["1_0", "nan", "-inf", "1e400", "", "x", "0x10", "Infinity", "NA"]),
    "quality": (["", "good", " BAD ", "suspect"], []),
}
valid_line = st.tuples(*(st.sampled_from(good) for good, _ in csv_cells.values())).map(
    ",".join)
any_line = st.one_of(
    valid_line,
    st.tuples(*(st.sampled_from(good + bad) for good, bad in csv_cells.values())).map(
        ",".join),
    st.tuples(*(st.sampled_from(good) for good, _ in list(csv_cells.values())[:4])).map(
        ",".join),  # a field short
    st.sampled_from(["", "a,b,c,d,e,f", '"2026-01-01T00:00:00Z","d1","temp_c","1",""']),
)
csv_lines = st.one_of(st.lists(valid_line, min_size=1, max_size=40),
                      st.lists(any_line, min_size=1, max_size=40))


@settings(SETTINGS, max_examples=300)
@given(csv_lines, st.sampled_from(["\n", "\r\n", "\r"]), st.sampled_from([None, 40, 200]),
       st.booleans())
def test_the_column_parse_gives_what_the_row_parser_gives(
        lines: list[str], newline: str, chunk_bytes: int | None, with_quality: bool) -> None:
    """Whatever the rows, reading a narrow file a column at a time (fast, blocks) gives the
    same readings, rejects and errors, line numbers included, as reading it row by row."""
    header = "time,device,metric,value" + (",quality" if with_quality else "")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "n.csv"
        path.write_bytes((newline.join([header, *lines]) + newline).encode())
        with mock.patch.object(generic_csv, "BLOCK_CHARS", chunk_bytes or 1 << 20):
            fast, slow = read_items(path), read_items(path, by_rows=True)
    if isinstance(slow, FormatError):
        assert isinstance(fast, FormatError) and str(fast) == str(slow)
    else:
        assert fast == slow


@pytest.mark.parametrize(("column", "bad"), [
    (column, bad) for column, (_, bads) in csv_cells.items() for bad in bads])
def test_one_broken_cell_in_a_clean_file_reads_the_same_both_ways(column: str, bad: str,
                                                                   tmp_path: Path) -> None:
    """The column parse must notice each kind of broken cell (and hand the chunk to the row
    parser, which rejects exactly that row), not load it."""
    header = list(csv_cells)
    rows = [[good[i % len(good)] for good, _ in csv_cells.values()] for i in range(6)]
    rows[3][header.index(column)] = bad
    path = tmp_path / "one.csv"
    path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    fast, slow = read_items(path), read_items(path, by_rows=True)
    assert isinstance(slow, list) and [type(i) for i in slow].count(Reject) == 1
    assert fast == slow


@settings(SETTINGS, max_examples=100)
@given(st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"")), st.binary(max_size=300),
       st.sampled_from([1, 7, 64, 1 << 20]))
def test_first_nul_names_the_line_and_offset_of_the_first_nul(head: bytes, tail: bytes,
                                                               block: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.csv"
        path.write_bytes(head)
        assert csv_reading.first_nul(path, block) is None
        path.write_bytes(head + b"\0" + tail)
        assert csv_reading.first_nul(path, block) == (head.count(b"\n") + 1, len(head))


def test_keys_that_look_like_numbers_or_booleans_stay_the_text_they_are(tmp_path: Path) -> None:
    """Devices "0", "00" and "0.0" are three devices (a CSV reader that infers types would
    make one number of them), and a timestamp or metric is never re-typed either."""
    keys = ["0", "00", "0.0", "1e3", "True", "TRUE", "NaN", "2026-01-01"]
    path = tmp_path / "keys.csv"
    path.write_text("time,device,metric,value\n" + "".join(
        f"2026-01-01T00:00:00Z,{key},{key},{n}\n" for n, key in enumerate(keys)))
    fast = read_items(path)
    assert isinstance(fast, list) and all(isinstance(item, Reading) for item in fast)
    assert [(r.device_key, r.metric_name, r.value) for r in fast] == [
        (key, key, float(n)) for n, key in enumerate(keys)]
    assert fast == read_items(path, by_rows=True)


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
