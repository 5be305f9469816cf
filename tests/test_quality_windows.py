"""Quality functions over any window (quality.*_between, quality.freshness_at): past windows,
gaps of days, empty hours, session time zones; the views are the functions over their lookback;
the functions plan only the window's chunks and run without JIT."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rollups_support import (
    add_device,
    add_metric,
    day,
    insert_series,
    one,
    refresh,
)

HOUR = timedelta(hours=1)
QUALITY_FUNCTIONS = {
    "intervals_between": "quality.intervals",
    "completeness_between": "quality.completeness_hourly",
    "gaps_between": "quality.gaps",
    "event_rate_between": "quality.event_rate",
    "outliers_between": "quality.outliers",
}
LOOKBACK_OF = {
    "intervals_between": "completeness_lookback",
    "completeness_between": "completeness_lookback",
    "gaps_between": "gap_lookback",
    "event_rate_between": "event_rate_lookback",
    "outliers_between": "outlier_lookback",
}


def device_since(conn: psycopg.Connection, key: str, registered: datetime,
                 nominal_interval: str | None = None) -> int:
    """A device registered at `registered` (as ingest would have on its first reading)."""
    device = add_device(conn, key, nominal_interval)
    conn.execute("update telemetry.devices set created_at = %s where device_id = %s",
                 [registered, device])
    return device


def hourly_with_silence(conn: psycopg.Connection, device: int, metric: int, start: datetime,
                        end: datetime, silent_from: datetime, silent_to: datetime,
                        step: str = "10 min") -> None:
    insert_series(conn, device, metric, start, silent_from, step)
    insert_series(conn, device, metric, silent_to, end, step)


def test_gaps_between_finds_a_silence_of_days_in_a_past_window(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "station-1")
    metric = add_metric(conn, "temperature_c")
    # Hourly readings through March 2025, silent from Mar 10 to Mar 13 (Europe's DST change on
    # Mar 30 is irrelevant: everything is UTC).
    hourly_with_silence(conn, device, metric, day("2025-03-01"), day("2025-04-01"),
                        day("2025-03-10"), day("2025-03-13"), step="1 hour")
    refresh(conn)
    gaps = conn.execute(
        "select gap_start, gap_end, gap_duration, nominal_interval, missed_readings"
        " from quality.gaps_between(%s, %s)", [day("2025-03-05"), day("2025-03-20")]).fetchall()
    assert gaps == [(day("2025-03-10") - HOUR, day("2025-03-13"), timedelta(days=3, hours=1),
                     HOUR, 72)]
    # A window that holds only one side of the silence does not see it; the view (the last 7
    # days up to now) sees nothing of March 2025.
    assert one(conn, "select count(*) from quality.gaps_between(%s, %s)",
               [day("2025-03-11"), day("2025-03-20")]) == 0
    assert one(conn, "select count(*) from quality.gaps") == 0


def test_completeness_between_lists_every_empty_hour_as_zero(conn: psycopg.Connection) -> None:
    # Registered long before the window; every 10 minutes; silent for 2 days from before the
    # window's start, and for 26 hours inside it.
    device = device_since(conn, "dev-c", day("2025-01-01"))
    metric = add_metric(conn, "humidity_pct")
    insert_series(conn, device, metric, day("2025-05-01"), day("2025-05-09"), "10 min")
    insert_series(conn, device, metric, day("2025-05-11"), day("2025-05-14"), "10 min")
    insert_series(conn, device, metric, day("2025-05-15") + 2 * HOUR, day("2025-05-20"),
                  "10 min")
    refresh(conn)
    start, end = day("2025-05-10"), day("2025-05-17")
    rows = {r[0]: r[1:] for r in conn.execute(
        "select hour_start, received, expected, completeness_pct, nominal_interval"
        " from quality.completeness_between(%s, %s) where device_id = %s",
        [start, end, device]).fetchall()}
    assert sorted(rows) == [start + n * HOUR for n in range(7 * 24)]
    silent = {h for h in rows if h < day("2025-05-11")
              or day("2025-05-14") <= h < day("2025-05-15") + 2 * HOUR}
    assert len(silent) == 24 + 26
    assert all(rows[h][0] == 0 and rows[h][2] == 0 for h in silent)
    assert all(rows[h][0] == 6 and rows[h][2] == 100 for h in set(rows) - silent)
    assert {r[1] for r in rows.values()} == {6}
    assert {r[3] for r in rows.values()} == {timedelta(minutes=10)}


def test_completeness_between_starts_a_backfilled_device_at_its_first_reading(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "backfilled")  # registered now, readings from the past
    metric = add_metric(conn, "temperature_c")
    insert_series(conn, device, metric, day("2025-05-12") + 5 * HOUR, day("2025-05-13"), "5 min")
    refresh(conn)
    hours = [r[0] for r in conn.execute(
        "select hour_start from quality.completeness_between(%s, %s) order by 1",
        [day("2025-05-12"), day("2025-05-14")]).fetchall()]
    assert hours[0] == day("2025-05-12") + 5 * HOUR
    assert hours[-1] == day("2025-05-13") + 23 * HOUR, "empty hours after it still count"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_session_time_zone_and_dst_change_nothing(conn: psycopg.Connection, zone: str) -> None:
    device = device_since(conn, "dev-tz", day("2024-01-01"))
    metric = add_metric(conn, "temperature_c")
    # Across Europe's and America's spring-forward days (Mar 30 and Mar 9, 2025).
    hourly_with_silence(conn, device, metric, day("2025-03-01"), day("2025-04-05"),
                        day("2025-03-29") + 22 * HOUR, day("2025-03-30") + 3 * HOUR)
    refresh(conn)
    start = day("2025-03-08") + 30 * timedelta(minutes=1)
    end = day("2025-04-01") + 15 * timedelta(minutes=1)
    queries = [
        "select * from quality.completeness_between(%(s)s, %(e)s) order by hour_start",
        "select * from quality.gaps_between(%(s)s, %(e)s) order by gap_start",
        "select * from quality.event_rate_between(%(s)s, %(e)s)"
        " order by minute_start, device_id nulls first",
        "select * from quality.intervals_between(%(s)s, %(e)s)",
    ]
    conn.execute("set timezone = 'UTC'")
    in_utc = [conn.execute(q, {"s": start, "e": end}).fetchall() for q in queries]
    conn.execute("select set_config('timezone', %s, false)", [zone])
    in_zone = [conn.execute(q, {"s": start, "e": end}).fetchall() for q in queries]
    assert in_zone == in_utc
    hours = [r[4] for r in in_utc[0]]
    assert hours[0] == day("2025-03-08") and hours[-1] == day("2025-03-31") + 23 * HOUR
    assert len(hours) == 24 * 24, "every UTC hour once, none doubled or lost by DST"
    assert [(g[4], g[5]) for g in in_utc[1]] == [
        (day("2025-03-29") + 21 * HOUR + 50 * timedelta(minutes=1), day("2025-03-30") + 3 * HOUR)]


def test_views_equal_their_functions_over_the_default_window(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-now")
    metric = add_metric(conn, "temperature_c", valid_min=-40, valid_max=60)
    now = one(conn, "select date_trunc('hour', now())")
    assert isinstance(now, datetime)
    insert_series(conn, device, metric, now - timedelta(days=9), now - timedelta(days=3),
                  "5 min", value_sql="20 + mod(n, 3)")
    insert_series(conn, device, metric, now - timedelta(days=2), now, "5 min",
                  value_sql="case when n = 500 then 90 when n = 520 then 35 else 20 + mod(n, 3)"
                            " end")
    refresh(conn)
    with conn.transaction():  # one now() for the view and the function
        for function, view in QUALITY_FUNCTIONS.items():
            lookback = LOOKBACK_OF[function]
            from_view = conn.execute(f"select * from {view} order by 1, 2, 3, 4, 5").fetchall()
            from_function = conn.execute(
                f"select f.* from quality.parameters as p cross join lateral"
                f" quality.{function}(now() - p.{lookback}, now()) as f"
                f" order by 1, 2, 3, 4, 5").fetchall()
            assert from_view == from_function, view
            assert from_view, f"{view} has rows in this data"
        assert conn.execute("select * from quality.freshness order by 1").fetchall() == \
            conn.execute("select * from quality.freshness_at(now()) order by 1").fetchall()


def test_freshness_at_a_past_time_ignores_later_readings(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-f")
    metric = add_metric(conn, "temperature_c")
    insert_series(conn, device, metric, day("2025-06-01"), day("2025-06-02"), "15 min")
    insert_series(conn, device, metric, day("2025-06-05"), day("2025-06-06"), "15 min")
    conn.execute("update telemetry.devices set last_reading_at = %s where device_id = %s",
                 [day("2025-06-06") - timedelta(minutes=15), device])
    refresh(conn)
    row = conn.execute(
        "select last_reading_at, age, nominal_interval, intervals_since_last"
        " from quality.freshness_at(%s) where device_id = %s",
        [day("2025-06-03"), device]).fetchone()
    assert row == (day("2025-06-02") - timedelta(minutes=15), timedelta(days=1, minutes=15),
                   timedelta(minutes=15), 97)


def test_an_empty_or_reversed_window_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match="need p_start < p_end"):
        conn.execute("select * from quality.gaps_between(%s, %s)",
                     [day("2025-02-01"), day("2025-01-01")])


def test_the_functions_plan_only_the_windows_chunks(conn: psycopg.Connection) -> None:
    # Daily chunks, whatever the schema's default (migration 0046 makes it 7 days).
    conn.execute("select set_chunk_time_interval('telemetry.readings', interval '1 day')")
    device = add_device(conn, "dev-long", "1 hour")
    metric = add_metric(conn, "temperature_c", valid_min=-40, valid_max=60)
    insert_series(conn, device, metric, day("2025-01-01"), day("2025-03-02"), "1 hour")
    refresh(conn)
    chunks = one(conn, "select count(*) from timescaledb_information.chunks"
                       " where hypertable_name = 'readings'")
    assert chunks == 60
    calls = [f"select count(*) from quality.{f}(%(s)s, %(e)s)" for f in QUALITY_FUNCTIONS]
    calls.append("select count(*) from quality.freshness_at(%(e)s)")
    for call in calls:
        with conn.transaction():
            conn.execute(call, {"s": day("2025-02-10"), "e": day("2025-02-13")})
            # Planned chunks are locked until commit; chunks excluded while planning are not.
            locked = one(conn, """
                select count(*) from pg_locks as l
                inner join timescaledb_information.chunks as c
                    on l.relation = format('%I.%I', c.chunk_schema, c.chunk_name)::regclass
                where l.pid = pg_backend_pid() and c.hypertable_name = 'readings'""")
            window_days = 3 if "freshness_at" not in call else 7
            assert isinstance(locked, int) and 1 <= locked <= window_days, (call, locked)


def test_every_quality_function_pins_jit_off_and_custom_plans(conn: psycopg.Connection) -> None:
    rows = conn.execute("""
        select p.proname, p.proconfig from pg_proc as p
        inner join pg_namespace as n on p.pronamespace = n.oid
        where n.nspname = 'quality' order by 1""").fetchall()
    assert {r[0] for r in rows} == set(QUALITY_FUNCTIONS) | {"freshness_at"}
    for name, config in rows:
        assert "jit=off" in config and "plan_cache_mode=force_custom_plan" in config, name


def test_analysts_and_grafana_call_the_functions_without_reading_raw_tables(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-r")
    metric = add_metric(conn, "temperature_c")
    insert_series(conn, device, metric, day("2025-02-01"), day("2025-02-02"), "1 hour")
    for role in ("tsfleet_analyst", "tsfleet_grafana"):
        conn.execute(f"set role {role}")
        assert one(conn, "select count(*) from quality.intervals_between(%s, %s)",
                   [day("2025-02-01"), day("2025-02-02")]) == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from telemetry.readings")
        conn.execute("reset role")


# A reference for gaps and completeness over raw timestamps: hourly series with a device
# interval of 10 minutes, readings dropped at random (gaps from one reading to days).
START = day("2025-07-01")


def reference_gaps(times: list[datetime], start: datetime, end: datetime,
                   factor: float = 3) -> list[tuple[datetime, datetime]]:
    inside = sorted(t for t in times if start <= t < end)
    return [(a, b) for a, b in zip(inside, inside[1:], strict=False)
            if b - a > factor * timedelta(minutes=10)]


def reference_completeness(times: list[datetime], start: datetime, end: datetime,
                           registered: datetime) -> dict[datetime, int]:
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    end_hour = end.replace(minute=0, second=0, microsecond=0)
    counts: dict[datetime, int] = {}
    for t in times:
        hour = t.replace(minute=0, second=0, microsecond=0)
        if first_hour <= hour < end_hour:
            counts[hour] = counts.get(hour, 0) + 1
    inside = [t for t in times if start <= t < end]
    if not inside:
        return {}
    first_seen = min([*counts, end_hour])
    expected_from = max(first_hour, min(registered.replace(minute=0), first_seen))
    hours, hour = {}, expected_from
    while hour < end_hour:
        hours[hour] = counts.get(hour, 0)
        hour += HOUR
    return hours


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    # Runs of dropped readings: 1-3 (around the gap threshold of 3 intervals) up to 40 hours.
    dropped=st.lists(st.tuples(st.integers(0, 6 * 24 * 6),
                               st.one_of(st.integers(1, 3), st.integers(1, 6 * 40))),
                     max_size=5),
    window=st.tuples(st.integers(0, 3 * 24 * 60), st.integers(60, 4 * 24 * 60)),
    registered_hours=st.integers(-48, 72),
)
def test_gaps_and_completeness_match_a_reference(
    conn: psycopg.Connection, dropped: list[tuple[int, int]], window: tuple[int, int],
    registered_hours: int,
) -> None:
    conn.execute("delete from telemetry.readings")
    conn.execute("delete from telemetry.devices")
    registered = START + registered_hours * HOUR
    device = device_since(conn, "dev-ref", registered, "10 minutes")
    metric = add_metric(conn, "temperature_c")
    missing = {n for first, length in dropped for n in range(first, first + length)}
    steps = [n for n in range(6 * 24 * 6) if n not in missing]  # 6 days every 10 minutes
    times = [START + n * timedelta(minutes=10) for n in steps]
    conn.execute(
        "insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)"
        " select t, %s, %s, 1, 1 from unnest(%s::timestamptz[]) as t",
        [device, metric, times])
    refresh(conn, START - HOUR, START + timedelta(days=7))
    start = START + window[0] * timedelta(minutes=1)
    end = start + window[1] * timedelta(minutes=1)
    gaps = conn.execute("select gap_start, gap_end from quality.gaps_between(%s, %s)"
                        " order by 1", [start, end]).fetchall()
    assert [tuple(g) for g in gaps] == reference_gaps(times, start, end)
    hours = dict(conn.execute("select hour_start, received"
                              " from quality.completeness_between(%s, %s)",
                              [start, end]).fetchall())
    assert hours == reference_completeness(times, start, end, registered)
