"""Rollups: same names and columns on both editions, exact aggregates, refresh whole or by
range, late data, the loader's refresh_after_load, and retention that rollups outlive."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tests.rollups_support import (
    add_batch,
    add_device,
    add_metric,
    close_batch,
    day,
    insert_reading,
    insert_series,
    one,
    refresh,
)

STATS = ["value_min", "value_max", "value_avg", "value_stddev", "reading_count",
         "nongood_count", "value_first", "value_last"]

EXPECTED_COLUMNS = {
    "device_metrics_hourly": ["bucket_start", "device_id", "metric_id", *STATS],
    "device_metrics_daily": ["bucket_start", "device_id", "metric_id", *STATS],
    "asset_metrics_hourly": ["bucket_start", "asset_id", "metric_id", *STATS],
    "asset_health_hourly": ["bucket_start", "asset_id", "health_score_min", "health_score_avg",
                            "health_score_last", "reading_count"],
    "battery_soc_daily": ["bucket_start", "device_id", "soc_min_pct", "soc_max_pct",
                          "soc_avg_pct", "soc_last_pct", "reading_count"],
    "instrument_daily": [
        "bucket_start", "device_id", "temperature_min_c", "temperature_max_c",
        "temperature_avg_c", "temperature_count", "temperature_nongood_count",
        "humidity_min_pct", "humidity_max_pct", "humidity_avg_pct", "humidity_count",
        "humidity_nongood_count", "reading_count", "nongood_count",
    ],
}


def daily_row(conn: psycopg.Connection, device_id: int, metric_id: int, bucket: object):
    return conn.execute(
        "select value_min, value_max, value_avg, value_stddev, reading_count, nongood_count,"
        " value_first, value_last from rollups.device_metrics_daily"
        " where device_id = %s and metric_id = %s and bucket_start = %s",
        [device_id, metric_id, bucket],
    ).fetchone()


def raw_daily(conn: psycopg.Connection, device_id: int, metric_id: int, bucket: object):
    return conn.execute(
        "select min(value), max(value), avg(value), stddev_samp(value), count(*),"
        " count(*) filter (where quality <> 'good'),"
        " (array_agg(value order by recorded_at))[1],"
        " (array_agg(value order by recorded_at desc))[1]"
        " from telemetry.readings where device_id = %s and metric_id = %s"
        " and recorded_at >= %s and recorded_at < %s::timestamptz + interval '1 day'",
        [device_id, metric_id, bucket, bucket],
    ).fetchone()


def assert_close(actual: tuple, expected: tuple) -> None:
    assert actual is not None and expected is not None
    for a, e in zip(actual, expected, strict=True):
        if isinstance(e, float):
            assert a == pytest.approx(e, rel=1e-9, abs=1e-9)
        else:
            assert a == e


def test_rollups_have_the_contract_names_and_columns(conn: psycopg.Connection) -> None:
    for name, columns in EXPECTED_COLUMNS.items():
        rows = conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0"
            " and not attisdropped order by attnum", [f"rollups.{name}"],
        ).fetchall()
        assert [r[0] for r in rows] == columns, name


def test_each_edition_builds_rollups_its_own_way_and_says_so(
    conn: psycopg.Connection, server
) -> None:
    kinds = dict(conn.execute(
        "select c.relname, c.relkind::text from pg_class as c"
        " where c.relnamespace = 'rollups'::regnamespace and c.relkind in ('v', 'r', 'm')"
    ).fetchall())
    assert set(EXPECTED_COLUMNS) <= set(kinds)
    logged = dict(conn.execute(
        "select object_name, status from _tsfleet.setup_log"
        " where feature = 'continuous_aggregate'"
    ).fetchall())
    assert set(logged) == {f"rollups.{n}" for n in EXPECTED_COLUMNS}
    if server.is_community:
        caggs = one(conn, "select count(*) from timescaledb_information.continuous_aggregates"
                          " where view_schema = 'rollups'")
        assert caggs == len(EXPECTED_COLUMNS)
        assert set(logged.values()) == {"enabled"}
    else:
        assert {kinds[n] for n in EXPECTED_COLUMNS} == {"r"}
        assert set(logged.values()) == {"skipped"}


def test_whole_refresh_gives_daily_aggregates_equal_to_raw(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    insert_series(conn, device, metric, day("2026-03-01"), day("2026-03-03"), "7 min",
                  value_sql="20 + 5 * sin(n / 10.0) + mod(n, 7)",
                  quality_sql="case when mod(n, 11) = 0 then 'suspect' else 'good' end")
    refresh(conn)
    for bucket in (day("2026-03-01"), day("2026-03-02")):
        expected = raw_daily(conn, device, metric, bucket)
        assert_close(daily_row(conn, device, metric, bucket), expected)
    hours = one(conn, "select count(*) from rollups.device_metrics_hourly")
    assert hours == 48


def test_range_refresh_touches_only_buckets_in_the_range(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    insert_series(conn, device, metric, day("2026-03-01"), day("2026-03-03"), "1 hour")
    refresh(conn)
    insert_reading(conn, device, metric, day("2026-03-01") + timedelta(minutes=30), 99.0)
    insert_reading(conn, device, metric, day("2026-03-02") + timedelta(minutes=30), 77.0)
    refresh(conn, day("2026-03-01"), day("2026-03-01") + timedelta(hours=1))
    assert daily_row(conn, device, metric, day("2026-03-01"))[1] == 99.0
    assert daily_row(conn, device, metric, day("2026-03-02"))[1] == 20.0
    refresh(conn)
    assert daily_row(conn, device, metric, day("2026-03-02"))[1] == 77.0


def test_an_apache_rebuild_of_a_range_inside_buckets_recomputes_those_buckets_whole(
    conn: psycopg.Connection, server
) -> None:
    """The Apache rebuild reads its source by the time range of whole buckets: a range that
    starts and ends inside an hour rebuilds both hours from all of their readings."""
    if server.is_community:
        pytest.skip("Apache edition only: Community rollups are continuous aggregates")
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    insert_series(conn, device, metric, day("2026-03-01"), day("2026-03-02"), "10 min")
    refresh(conn)
    ten = day("2026-03-01") + timedelta(hours=10)
    conn.execute("update telemetry.readings set value = value + 100"
                 " where recorded_at >= %s and recorded_at < %s", [ten, ten + timedelta(hours=3)])
    conn.execute("select _tsfleet.rebuild_rollup_table('rollups.device_metrics_hourly', %s, %s)",
                 [ten + timedelta(minutes=30), ten + timedelta(hours=1, minutes=30)])
    hourly = dict(conn.execute(
        "select extract(hour from bucket_start at time zone 'UTC')::int, reading_count"
        " from rollups.device_metrics_hourly where value_min >= 100").fetchall())
    assert hourly == {10: 6, 11: 6}  # hour 12 was not in the range


def test_backfilled_old_day_changes_the_rollup_after_refresh_after_load(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    old_day = day("2026-01-10")
    insert_series(conn, device, metric, old_day, old_day + timedelta(days=1), "1 hour")
    refresh(conn)
    before = daily_row(conn, device, metric, old_day)
    assert before[4] == 24 and before[1] == 20.0
    batch = add_batch(conn)
    insert_series(conn, device, metric, old_day + timedelta(minutes=30),
                  old_day + timedelta(hours=3), "1 hour", value_sql="40.0", batch_id=batch)
    conn.execute("call rollups.refresh_after_load(%s)", [batch])
    after = daily_row(conn, device, metric, old_day)
    assert after[4] == 27 and after[1] == 40.0
    assert_close(after, raw_daily(conn, device, metric, old_day))


def test_refresh_after_load_of_a_batch_without_readings_changes_nothing(
    conn: psycopg.Connection,
) -> None:
    batch = add_batch(conn)
    conn.execute("call rollups.refresh_after_load(%s)", [batch])
    assert one(conn, "select count(*) from rollups.device_metrics_hourly") == 0


@pytest.mark.community
def test_refresh_after_load_inside_the_policy_window_leaves_it_to_the_policy(
    conn: psycopg.Connection,
) -> None:
    # The template pauses jobs; resume the refresh policies, but not before tomorrow.
    resumed = conn.execute(
        "select public.alter_job(j.job_id, scheduled => true, next_start => now() + '1 day')"
        " from timescaledb_information.jobs as j"
        " where j.proc_name = 'policy_refresh_continuous_aggregate'"
    ).fetchall()
    assert len(resumed) == len(EXPECTED_COLUMNS)
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    recent = one(conn, "select date_trunc('hour', now()) - interval '5 hours'")
    batch = insert_series(conn, device, metric, recent, recent + timedelta(hours=2), "10 min")
    conn.execute("call rollups.refresh_after_load(%s)", [batch])
    assert one(conn, "select count(*) from rollups.device_metrics_hourly") == 0
    old = recent - timedelta(days=10)
    batch = insert_series(conn, device, metric, old, old + timedelta(hours=2), "10 min")
    conn.execute("call rollups.refresh_after_load(%s)", [batch])
    assert one(conn, "select count(*) from rollups.device_metrics_hourly"
                     " where bucket_start < now() - interval '3 days'") == 2


def test_a_loader_that_may_not_refresh_leaves_the_queued_range_to_the_owner(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    batch = insert_series(conn, device, metric, day("2026-02-01"), day("2026-02-02"), "1 hour")
    conn.execute("set role tsfleet_ingest")
    conn.execute("select from ingest.commit_batch(%s, 24)", [batch])  # queues, as a load does
    conn.execute("call rollups.refresh_after_load(%s)", [batch])
    conn.execute("call rollups.refresh_queued()")
    conn.execute("reset role")
    assert one(conn, "select count(*) from rollups.device_metrics_hourly") == 0
    assert one(conn, "select batch_id from _tsfleet.rollup_refresh_queue") == batch
    refresh(conn, day("2026-03-01"), day("2026-03-02"))
    assert one(conn, "select count(*) from rollups.device_metrics_hourly") == 24
    assert one(conn, "select count(*) from _tsfleet.rollup_refresh_queue") == 0


def test_refresh_rejects_a_range_that_ends_before_it_starts(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match="refresh range is empty"):
        refresh(conn, day("2026-03-02"), day("2026-03-01"))


def test_a_non_owner_cannot_refresh(conn: psycopg.Connection) -> None:
    conn.execute("set role tsfleet_analyst")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        refresh(conn)


def test_battery_and_instrument_daily_rollups(conn: psycopg.Connection) -> None:
    battery = add_device(conn, "battery-1")
    soc = add_metric(conn, "StateOfChargePercentage")
    insert_series(conn, battery, soc, day("2026-03-01"), day("2026-03-02"), "1 hour",
                  value_sql="90 - n")
    instrument = add_device(conn, "instrument_7")
    temperature = add_metric(conn, "temperature_c")
    humidity = add_metric(conn, "humidity_pct")
    insert_series(conn, instrument, temperature, day("2026-03-01"), day("2026-03-02"), "1 hour",
                  value_sql="15 + n", quality_sql="case when n < 3 then 'sensor_fault' "
                                                  "else 'good' end")
    insert_series(conn, instrument, humidity, day("2026-03-01"), day("2026-03-02"), "1 hour",
                  value_sql="60 + n / 2.0")
    refresh(conn)
    soc_row = conn.execute(
        "select soc_min_pct, soc_max_pct, soc_last_pct, reading_count"
        " from rollups.battery_soc_daily where device_id = %s", [battery]).fetchall()
    assert soc_row == [(67.0, 90.0, 67.0, 24)]
    assert one(conn, "select count(*) from rollups.battery_soc_daily") == 1
    row = conn.execute(
        "select temperature_min_c, temperature_max_c, temperature_avg_c, temperature_count,"
        " temperature_nongood_count, humidity_min_pct, humidity_max_pct, humidity_count,"
        " humidity_nongood_count, reading_count, nongood_count"
        " from rollups.instrument_daily where device_id = %s", [instrument]).fetchone()
    assert row == (15.0, 38.0, pytest.approx(26.5), 24, 3, 60.0, 71.5, 24, 0, 48, 3)
    assert one(conn, "select count(*) from rollups.instrument_daily") == 1


def test_asset_metric_and_health_rollups(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-1")
    asset_type = one(conn, "insert into telemetry.asset_types (asset_type_key)"
                           " values ('rollup-test') returning asset_type_id")
    asset = one(conn, "insert into telemetry.assets (tenant_id, asset_key, asset_type_id)"
                      " values (1, 'pump-1', %s) returning asset_id", [asset_type])
    health = add_metric(conn, "health_score")
    power = add_metric(conn, "power_input")
    batch = add_batch(conn)
    conn.execute(
        "insert into telemetry.asset_readings"
        " (recorded_at, asset_id, metric_id, source_device_id, value, batch_id)"
        " select %(d)s::timestamptz + n * interval '15 min', %(a)s, m.metric_id, %(dev)s,"
        "        case when m.metric_id = %(h)s then 100 - 10 * n else n end, %(b)s"
        " from generate_series(0, 3) as n cross join (values (%(h)s), (%(p)s)) as m (metric_id)",
        {"d": day("2026-03-01"), "a": asset, "dev": device, "h": health, "p": power,
         "b": batch},
    )
    refresh(conn)
    assert conn.execute(
        "select health_score_min, health_score_avg, health_score_last, reading_count"
        " from rollups.asset_health_hourly").fetchall() == [(70.0, 85.0, 70.0, 4)]
    assert conn.execute(
        "select metric_id, value_min, value_max, value_first, value_last, reading_count"
        " from rollups.asset_metrics_hourly order by metric_id").fetchall() == [
        (health, 70.0, 100.0, 100.0, 70.0, 4), (power, 0.0, 3.0, 0.0, 3.0, 4)]


def test_whole_refresh_keeps_rollups_of_raw_data_dropped_by_retention(
    conn: psycopg.Connection,
) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    # Either side of a chunk boundary (7-day chunks from Thursday 2026-01-08).
    insert_series(conn, device, metric, day("2026-01-07"), day("2026-01-09"), "1 hour")
    refresh(conn)
    dropped = conn.execute("select public.drop_chunks('telemetry.readings',"
                           " older_than => '2026-01-08'::timestamptz)").fetchall()
    assert len(dropped) == 1
    insert_reading(conn, device, metric, day("2026-01-08") + timedelta(hours=5, minutes=30), 50.0)
    refresh(conn)
    assert daily_row(conn, device, metric, day("2026-01-07"))[4] == 24
    assert daily_row(conn, device, metric, day("2026-01-08"))[1] == 50.0


def test_raw_retention_is_kept_by_default_and_must_outlive_refresh_windows(
    conn: psycopg.Connection,
) -> None:
    assert one(conn, "select count(*) from ops.retention_settings where drop_after is null") == 2
    with pytest.raises(psycopg.errors.RaiseException, match="shorter than the rollup refresh"):
        conn.execute("select ops.set_raw_retention('1 day')")


def test_raw_retention_drops_old_chunks_but_rollups_keep_them(
    conn: psycopg.Connection, server
) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    old = one(conn, "select date_trunc('day', now()) - interval '40 days'")
    insert_series(conn, device, metric, old, old + timedelta(days=1), "1 hour")
    message = one(conn, "select ops.set_raw_retention('30 days')")
    if server.is_community:
        assert "retention policy" in message
        assert one(conn, "select count(*) from ops.jobs where job_kind = 'policy_retention'") == 2
        refresh(conn)
    else:
        assert "ops.apply_retention()" in message
    dropped = dict(conn.execute("select * from ops.apply_retention()").fetchall())
    assert dropped["telemetry.readings"] == 1
    assert one(conn, "select count(*) from telemetry.readings") == 0
    assert daily_row(conn, device, metric, old)[4] == 24
    one(conn, "select ops.set_raw_retention(null)")
    assert one(conn, "select count(*) from ops.retention_settings where drop_after is null") == 2


@pytest.mark.community
def test_rollup_refresh_and_compression_policies_exist_on_community(
    conn: psycopg.Connection,
) -> None:
    # Asked of TimescaleDB's catalog (ops.jobs, tested with the ops views, presents it): a
    # policy names the aggregate itself (2.28) or its materialization hypertable (2.19).
    jobs = conn.execute(
        "select format('%I.%I', ca.view_schema, ca.view_name), j.proc_name"
        " from timescaledb_information.jobs as j"
        " inner join timescaledb_information.continuous_aggregates as ca"
        " on (j.hypertable_schema, j.hypertable_name) in ((ca.view_schema, ca.view_name),"
        " (ca.materialization_hypertable_schema, ca.materialization_hypertable_name))"
        " where ca.view_schema = 'rollups' order by 1, 2").fetchall()
    refreshed = {t for t, k in jobs if k == "policy_refresh_continuous_aggregate"}
    compressed = {t for t, k in jobs if k == "policy_compression"}
    assert refreshed == {f"rollups.{n}" for n in EXPECTED_COLUMNS}
    assert compressed == {"rollups.device_metrics_hourly", "rollups.asset_metrics_hourly"}


def test_refresh_after_load_refreshes_the_batch_time_range_it_recorded(
    conn: psycopg.Connection,
) -> None:
    """close_batch records min/max like the loaders; refresh_after_load reads only that."""
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    batch = add_batch(conn)
    insert_reading(conn, device, metric, day("2026-02-10") + timedelta(minutes=5), 1.0,
                   batch_id=batch)
    close_batch(conn, batch)
    conn.execute("call rollups.refresh_after_load(%s)", [batch])
    assert one(conn, "select reading_count from rollups.device_metrics_daily") == 1


def test_refresh_with_only_a_start_runs_to_the_newest_reading(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    insert_series(conn, device, metric, day("2026-03-01"), day("2026-03-04"), "1 hour")
    refresh(conn, day("2026-03-02"))
    days = conn.execute("select bucket_start from rollups.device_metrics_daily order by 1"
                        ).fetchall()
    assert [d[0] for d in days] == [day("2026-03-02"), day("2026-03-03")]


@pytest.mark.community
def test_late_data_reaches_compressed_rollup_chunks(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    old = one(conn, "select date_trunc('day', now()) - interval '60 days'")
    insert_series(conn, device, metric, old, old + timedelta(days=1), "1 hour")
    refresh(conn)
    compressed = conn.execute(
        "select public.compress_chunk(c) from public.show_chunks((select format('%I.%I',"
        " materialization_hypertable_schema, materialization_hypertable_name)::regclass"
        " from timescaledb_information.continuous_aggregates"
        " where view_name = 'device_metrics_hourly'), older_than => interval '30 days') as c"
    ).fetchall()
    assert compressed
    batch = insert_reading(conn, device, metric, old + timedelta(minutes=30), 99.0)
    conn.execute("call rollups.refresh_after_load(%s)", [batch])
    assert daily_row(conn, device, metric, old)[1] == 99.0
    assert daily_row(conn, device, metric, old)[4] == 25


def test_refresh_after_load_of_a_range_refreshes_the_range_of_several_batches(
    conn: psycopg.Connection,
) -> None:
    """The stream consumer's call: one refresh for the accumulated range of its batches,
    end exclusive; readings outside the range wait for the next refresh."""
    device = add_device(conn, "dev-1")
    metric = add_metric(conn, "temperature_c")
    first = day("2026-02-10") + timedelta(minutes=5)
    last = day("2026-02-12") + timedelta(minutes=5)
    insert_reading(conn, device, metric, first, 1.0)
    insert_reading(conn, device, metric, last, 3.0)
    insert_reading(conn, device, metric, day("2026-02-14"), 9.0)
    conn.execute("call rollups.refresh_after_load(%s, %s)",
                 [first, last + timedelta(microseconds=1)])
    days = conn.execute("select bucket_start, value_max from rollups.device_metrics_daily"
                        " order by 1").fetchall()
    assert days == [(day("2026-02-10"), 1.0), (day("2026-02-12"), 3.0)]
    conn.execute("set role tsfleet_ingest")
    conn.execute("call rollups.refresh_after_load(%s, %s)",
                 [day("2026-02-14"), day("2026-02-14") + timedelta(microseconds=1)])
    conn.execute("reset role")
    queued = conn.execute("select range_start, batch_id from _tsfleet.rollup_refresh_queue"
                          ).fetchall()
    assert queued == [(day("2026-02-14"), None)]
