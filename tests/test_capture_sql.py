"""The SQL behind capture, called as an analyst would from psql."""

from __future__ import annotations

import math

import psycopg
import pytest

from tests.capture_support import load_sample

BINS_SQL = """
select series_key, metric_name, bin_start, value, reading_count, expected_count, expected_from
from telemetry.bin_readings(
    'device', array['pump-01', 'pump-02'], array['temperature_c', 'power_w'],
    '2026-03-01 00:00+00', '2026-03-01 01:00+00', interval '5 minutes', %s, %s
)
"""


def test_an_analyst_can_bin_readings_without_access_to_the_base_tables(
    conn: psycopg.Connection,
) -> None:
    load_sample(conn)
    conn.execute("set role tsfleet_analyst")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("select count(*) from telemetry.readings")
    rows = conn.execute(BINS_SQL, ["mean", "nan"]).fetchall()
    assert len(rows) == 2 * 2 * 12
    summary = conn.execute(
        "select row_count from telemetry.summarize_capture_sources('device',"
        " array['pump-01', 'pump-02'], array['temperature_c', 'power_w'],"
        " '2026-03-01 00:00+00', '2026-03-01 01:00+00')"
    ).fetchone()
    assert summary == (44 + 50 + 30,)  # the pre-window power reading is not read


def test_bins_come_in_bytewise_series_order_with_gaps_marked_by_zero_readings(
    conn: psycopg.Connection,
) -> None:
    load_sample(conn)
    rows = conn.execute(BINS_SQL, ["mean", "none"]).fetchall()
    keys = [(r[0], r[1]) for r in rows[::12]]
    assert keys == sorted(keys)
    gaps = [r for r in rows if r[0] == "pump-01" and r[1] == "temperature_c" and r[4] == 0]
    assert [r[3] for r in gaps] == [None, None, None]
    first = rows[0]
    assert first[5:] == (5, "nominal_interval")


def test_hold_fill_carries_the_last_binned_value_forward(conn: psycopg.Connection) -> None:
    load_sample(conn)
    rows = conn.execute(BINS_SQL, ["last", "hold"]).fetchall()
    temp = [r for r in rows if r[0] == "pump-01" and r[1] == "temperature_c"]
    assert temp[3][4] > 0 and temp[4][4] == 0
    assert temp[4][3] == temp[5][3] == temp[6][3] == temp[3][3]
    pump2_power = [r for r in rows if r[0] == "pump-02" and r[1] == "power_w"]
    assert all(math.isnan(r[3]) for r in pump2_power)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("'device', array['pump-01'], array['power_w'], '2026-03-01 01:00+00',"
         " '2026-03-01 00:00+00', interval '5 minutes'", "must be after its start"),
        ("'device', array['pump-01'], array['power_w'], '2026-03-01 00:00+00',"
         " '2026-03-01 01:00+00', interval '0'", "positive fixed length"),
        ("'device', array['pump-01'], array['power_w'], '2026-03-01 00:00+00',"
         " '2026-03-01 01:00+00', interval '1 month'", "positive fixed length"),
        ("'device', array['pump-01'], array['power_w'], '2026-03-01 00:00+00',"
         " '2026-03-01 01:00+00', interval '7 minutes'", "not a whole number"),
        ("'gadget', array['pump-01'], array['power_w'], '2026-03-01 00:00+00',"
         " '2026-03-01 01:00+00', interval '5 minutes'", "device or asset"),
        ("'device', array['pump-01'], array['power_w'], '2026-03-01 00:00+00',"
         " '2026-03-01 01:00+00', interval '5 minutes', 'median'", "aggregate must be"),
    ],
)
def test_bad_arguments_raise_invalid_parameter_value(
    conn: psycopg.Connection, call: str, message: str
) -> None:
    load_sample(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        conn.execute(f"select * from telemetry.bin_readings({call})")
