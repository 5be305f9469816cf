"""Data-quality views: intervals, completeness, gaps, freshness, event rate and outliers."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from tests.rollups_support import (
    add_device,
    add_metric,
    hours_ago,
    insert_reading,
    insert_series,
    one,
    refresh,
)


def five_minute_device(conn: psycopg.Connection, hours: int = 30,
                       silent: tuple[int, int] | None = None,
                       nominal_interval: str | None = None) -> tuple[int, int]:
    """A device sending every 5 minutes for `hours` hours up to the current hour, optionally
    silent from `silent[0]` to `silent[1]` hours ago."""
    device = add_device(conn, "dev-q", nominal_interval)
    metric = add_metric(conn, "temperature_c", valid_min=-40, valid_max=60)
    start = hours_ago(hours)
    if silent:
        insert_series(conn, device, metric, start, hours_ago(silent[0]), "5 min",
                      value_sql="20 + mod(n, 3)")
        insert_series(conn, device, metric, hours_ago(silent[1]), hours_ago(0), "5 min",
                      value_sql="20 + mod(n, 3)")
    else:
        insert_series(conn, device, metric, start, hours_ago(0), "5 min",
                      value_sql="20 + mod(n, 3)")
    refresh(conn)
    return device, metric


def test_nominal_interval_is_learned_from_the_readings(conn: psycopg.Connection) -> None:
    device, metric = five_minute_device(conn)
    row = conn.execute(
        "select nominal_interval, interval_source, last_reading_at from quality.intervals"
        " where device_id = %s and metric_id = %s", [device, metric]).fetchone()
    assert row[0] == timedelta(minutes=5) and row[1] == "learned"
    assert row[2] == hours_ago(0) - timedelta(minutes=5)


def test_nominal_interval_set_on_the_device_wins(conn: psycopg.Connection) -> None:
    device, _ = five_minute_device(conn, nominal_interval="10 minutes")
    assert conn.execute("select nominal_interval, interval_source from quality.intervals"
                        " where device_id = %s", [device]).fetchone() == (
        timedelta(minutes=10), "device")
    assert one(conn, "select max(completeness_pct) from quality.completeness_hourly") == 100


def test_completeness_counts_received_against_expected_per_hour(
    conn: psycopg.Connection,
) -> None:
    # Silent from 10 h ago to 8 h ago: two empty hours, older than the raw-count window, so
    # they come from the hourly rollup; the last 3 hours come from raw readings.
    device, metric = five_minute_device(conn, silent=(10, 8))
    insert_reading(conn, device, metric, hours_ago(2) + timedelta(minutes=1), 25.0)
    rows = dict(conn.execute(
        "select hour_start, received from quality.completeness_hourly"
        " where device_id = %s and metric_id = %s", [device, metric]).fetchall())
    assert len(rows) == 30
    assert rows[hours_ago(10)] == 0 and rows[hours_ago(9)] == 0
    assert rows[hours_ago(8)] == 12 and rows[hours_ago(1)] == 12
    assert rows[hours_ago(2)] == 13
    assert hours_ago(0) not in rows, "the current hour is not complete"
    pct = dict(conn.execute(
        "select hour_start, completeness_pct from quality.completeness_hourly"
        " where device_id = %s", [device]).fetchall())
    assert pct[hours_ago(10)] == 0 and pct[hours_ago(5)] == 100 and pct[hours_ago(2)] == 100
    assert one(conn, "select distinct expected from quality.completeness_hourly") == 12


def test_gaps_list_each_silence_longer_than_the_factor(conn: psycopg.Connection) -> None:
    device, metric = five_minute_device(conn, silent=(10, 8))
    gaps = conn.execute(
        "select gap_start, gap_end, gap_duration, missed_readings from quality.gaps"
        " where device_id = %s", [device]).fetchall()
    assert gaps == [(hours_ago(10) - timedelta(minutes=5), hours_ago(8), timedelta(hours=2,
                     minutes=5), 24)]
    # A 15-minute silence is 3 intervals: not a gap at factor 3, a gap at factor 2.
    conn.execute("delete from telemetry.readings where device_id = %s and recorded_at in"
                 " (%s, %s)", [device, hours_ago(4), hours_ago(4) + timedelta(minutes=5)])
    assert one(conn, "select count(*) from quality.gaps") == 1
    conn.execute("update quality.parameters set gap_interval_factor = 2")
    assert one(conn, "select count(*) from quality.gaps") == 2
    assert metric


def test_freshness_gives_age_of_the_newest_reading_per_device(
    conn: psycopg.Connection,
) -> None:
    device, _ = five_minute_device(conn, hours=4)
    silent = add_device(conn, "never-sent")
    rows = {r[0]: r[1:] for r in conn.execute(
        "select device_id, last_reading_at, age, nominal_interval, intervals_since_last"
        " from quality.freshness").fetchall()}
    last, age, interval, overdue = rows[device]
    assert last == hours_ago(0) - timedelta(minutes=5)
    assert interval == timedelta(minutes=5)
    assert age >= timedelta(minutes=5) and overdue >= 1
    assert rows[silent] == (None, None, None, None)


def test_event_rate_counts_readings_per_minute_fleet_wide_and_per_device(
    conn: psycopg.Connection,
) -> None:
    first = add_device(conn, "dev-a")
    second = add_device(conn, "dev-b")
    metric = add_metric(conn, "temperature_c")
    minute = one(conn, "select date_trunc('minute', now()) - interval '10 minutes'")
    insert_series(conn, first, metric, minute, minute + timedelta(minutes=1), "10 s")
    insert_series(conn, second, metric, minute, minute + timedelta(minutes=1), "20 s")
    rows = conn.execute(
        "select scope, device_id, readings_per_minute from quality.event_rate"
        " where minute_start = %s order by scope, device_id", [minute]).fetchall()
    assert rows == [("device", first, 6), ("device", second, 3), ("fleet", None, 9)]


def test_outliers_flag_out_of_range_and_far_from_baseline_readings(
    conn: psycopg.Connection,
) -> None:
    device, metric = five_minute_device(conn, hours=6)
    insert_reading(conn, device, metric, hours_ago(3) + timedelta(minutes=2), 35.0)
    insert_reading(conn, device, metric, hours_ago(3) + timedelta(minutes=3), 75.0)
    insert_reading(conn, device, metric, hours_ago(3) + timedelta(minutes=4), 22.5)
    rows = conn.execute(
        "select value, outlier_kind, baseline_median, baseline_mad, robust_z"
        " from quality.outliers where device_id = %s order by recorded_at", [device]).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(35.0, "baseline"), (75.0, "out_of_range")]
    assert rows[0][2] == 21 and rows[0][3] == 1
    assert float(rows[0][4]) == round(0.6745 * 14, 2)
    conn.execute("update quality.parameters set outlier_z_threshold = 20")
    assert one(conn, "select count(*) from quality.outliers") == 1


def test_quality_views_are_readable_by_analysts_and_grafana(conn: psycopg.Connection) -> None:
    five_minute_device(conn, hours=2)
    for role in ("tsfleet_analyst", "tsfleet_grafana"):
        conn.execute(f"set role {role}")
        for view in ("intervals", "completeness_hourly", "gaps", "freshness", "event_rate",
                     "outliers"):
            conn.execute(f"select * from quality.{view}").fetchall()
        conn.execute("reset role")
