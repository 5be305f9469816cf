"""Alerts judged on readings with exact time semantics (issue 13): worked cases with exact
episodes, live evaluation against backtest, monotonic live state, the future-leak property,
and backtest against a Python reference (tests/alert_reference.py) on generated series."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.cli import main as cli
from tests.alert_reference import Episode, Threshold, episodes, stale_signals, steps
from tests.alert_reference import threshold_signals as reference_threshold
from tests.alerts_support import T0, add_rule, device, metric, only_rules, refresh_rollups

SECOND = timedelta(seconds=1)
FIXTURE_OK = [HealthCheck.function_scoped_fixture]  # each example rolls its rows back


def insert_readings(conn: psycopg.Connection, device_key: str, metric_name: str,
                    points: list[tuple[datetime, float]]) -> None:
    metric_id = metric(conn, metric_name)
    row = conn.execute("select coalesce(max(batch_id), 0) from ingest.batches").fetchone()
    device_id = conn.execute("select device_id from telemetry.devices where device_key = %s",
                             [device_key]).fetchone()[0]
    with conn.cursor().copy(
        "copy telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)"
        " from stdin"
    ) as copy:
        for at, value in points:
            copy.write_row((at, device_id, metric_id, value, row[0]))


def backtest(conn: psycopg.Connection, rule: str, start: datetime, end: datetime,
             step: timedelta, device_key: str | None = None) -> list[Episode]:
    rows = conn.execute(
        "select fired_at, resolved_at, peak_value from alerts.backtest(%s, %s, %s, %s, %s)",
        [rule, start, end, step, device_key]).fetchall()
    return [Episode(*r) for r in rows]


def live(conn: psycopg.Connection, rule: str, times: list[datetime]) -> list[Episode]:
    """Step alerts.evaluate() over the times; the rule's episodes that fired."""
    for at in times:
        conn.execute("select count(*) from alerts.evaluate(%s)", [at])
    rows = conn.execute(
        "select e.fired_at, case when e.state = 'resolved' then e.ended_at end, e.peak_value"
        " from alerts.episodes as e join alerts.rules as r using (rule_id)"
        " where r.rule_key = %s and e.fired_at is not null order by e.fired_at",
        [rule]).fetchall()
    return [Episode(*r) for r in rows]


def test_a_30_second_spike_between_two_evaluations_fires_a_for_0_rule(
    conn: psycopg.Connection,
) -> None:
    device(conn, "gh-01")
    start = T0
    points = [(start + k * 10 * SECOND, 27.0) for k in range(360)]
    spike = {start + timedelta(minutes=17, seconds=s) for s in (10, 20, 30)}
    points = [(at, 52.9 if at in spike else value) for at, value in points]
    insert_readings(conn, "gh-01", "temperature_c", points)
    add_rule(conn, "hot", "threshold", {"metric": "temperature_c", "above": 40})
    only_rules(conn, "hot")
    expected = [Episode(start + timedelta(minutes=17, seconds=30),
                        start + timedelta(minutes=18), 52.9)]
    end = start + timedelta(hours=1)
    assert backtest(conn, "hot", start, end, 30 * SECOND) == expected
    # The newest value at each minute is 27: only the window since the last step sees it.
    assert live(conn, "hot", steps(start, end, timedelta(minutes=1))) == [
        Episode(start + timedelta(minutes=18), start + timedelta(minutes=19), 52.9)]


def test_an_8_hour_outage_below_a_threshold_sampled_every_5_minutes(
    conn: psycopg.Connection,
) -> None:
    device(conn, "battery-7")
    start = T0 - timedelta(hours=2)
    outage = (T0, T0 + timedelta(hours=8))
    points = [(start + k * timedelta(minutes=5), 10.0 if outage[0] <= start + k *
               timedelta(minutes=5) < outage[1] else 50.0) for k in range(12 * 12)]
    insert_readings(conn, "battery-7", "StateOfChargePercentage", points)
    only_rules(conn, "low_battery")  # below 20, clear 25, for 5m, keep_firing_for 5m
    expected = [Episode(T0 + timedelta(minutes=5), outage[1] + timedelta(minutes=5), 10.0)]
    end = start + timedelta(hours=12)
    assert backtest(conn, "low_battery", start, end, timedelta(minutes=5)) == expected
    assert live(conn, "low_battery", steps(start, end, timedelta(minutes=5))) == expected


def test_a_7_day_silence_of_an_hourly_device(conn: psycopg.Connection) -> None:
    device(conn, "station", nominal_interval="1 hour")
    last = T0 + timedelta(days=3)
    points = [(T0 + timedelta(hours=h), 1.0) for h in range(72)]
    resumed = last + timedelta(days=7)
    points += [(resumed + timedelta(hours=h), 1.0) for h in range(24)]
    insert_readings(conn, "station", "temperature_c", points)
    add_rule(conn, "silent", "stale_device",
             {"stale_after": "2 hours", "ignore_after": "30 days"})
    only_rules(conn, "silent")
    newest = last - timedelta(hours=1)  # the last reading before the silence
    expected = [Episode(newest + timedelta(hours=2), resumed,
                        (resumed - timedelta(hours=1) - newest).total_seconds())]
    end = resumed + timedelta(hours=12)
    assert backtest(conn, "silent", T0, end, timedelta(hours=1)) == expected
    # Evaluated live in the past too, which devices.last_reading_at could never tell.
    assert live(conn, "silent", steps(T0, end, timedelta(hours=1))) == expected


def test_completeness_counts_an_empty_hour_as_empty(conn: psycopg.Connection) -> None:
    device(conn, "meter", nominal_interval="5 minutes")
    points = [(T0 + k * timedelta(minutes=5), 1.0) for k in range(24)]  # two full hours
    insert_readings(conn, "meter", "energy_kwh", points)
    refresh_rollups(conn)
    only_rules(conn, "poor_completeness")  # below 80 %, last complete hour
    episodes_ = backtest(conn, "poor_completeness", T0 + timedelta(hours=1),
                         T0 + timedelta(hours=6), timedelta(hours=1))
    assert episodes_ == [Episode(T0 + timedelta(hours=3), None, 0.0)]


def test_live_evaluation_refuses_an_earlier_time(conn: psycopg.Connection) -> None:
    conn.execute("select count(*) from alerts.evaluate(%s)", [T0])
    conn.execute("select count(*) from alerts.evaluate(%s)", [T0])  # the same time is fine
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="already evaluated"):
        conn.execute("select count(*) from alerts.evaluate(%s)", [T0 - SECOND])


def test_backtest_writes_no_live_state(conn: psycopg.Connection) -> None:
    device(conn, "gh-02")
    insert_readings(conn, "gh-02", "temperature_c", [(T0, 60.0)])
    add_rule(conn, "hot", "threshold", {"metric": "temperature_c", "above": 40})
    assert len(backtest(conn, "hot", T0, T0 + timedelta(hours=1), timedelta(minutes=5))) == 1
    for table in ("alerts.episodes", "alerts.notifications", "alerts.rule_evaluations"):
        assert conn.execute(f"select count(*) from {table}").fetchone()[0] == 0, table


def test_backtest_command_prints_episodes_as_json(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        device(conn, "gh-03")
        insert_readings(conn, "gh-03", "temperature_c", [(T0 + timedelta(minutes=2), 45.5),
                                                         (T0 + timedelta(minutes=7), 21.0)])
        add_rule(conn, "hot", "threshold", {"metric": "temperature_c", "above": 40})
    result = CliRunner().invoke(cli, [
        "alerts", "backtest", "--database-url", db_url, "--rule", "hot",
        "--from", T0.isoformat(), "--to", (T0 + timedelta(hours=1)).isoformat(),
        "--step", "5m", "--json"])
    assert result.exit_code == 0, result.output

    assert json.loads(result.output) == [{
        "rule": "hot",
        "labels": {"rule": "hot", "device": "gh-03", "metric": "temperature_c",
                   "severity": "warning", "tenant": "default"},
        "fired_at": "2026-03-01T12:05:00Z", "resolved_at": "2026-03-01T12:10:00Z",
        "peak_value": 45.5}]
    result = CliRunner().invoke(cli, [
        "alerts", "backtest", "--database-url", db_url, "--rule", "nope",
        "--from", T0.isoformat(), "--to", T0.isoformat()])
    assert result.exit_code == 1 and "no alert rule nope" in result.output


# Generated series: spikes shorter than a step, gaps, duplicate timestamps (one kept, as the
# readings' unique key keeps one), values on and around the thresholds.
VALUES = st.sampled_from([5.0, 19.9, 20.0, 22.0, 25.0, 30.0, 40.0, 40.1, 55.0])
SERIES = st.lists(st.tuples(st.integers(0, 6 * 3600), VALUES), max_size=60)
RULES = st.one_of(
    st.builds(Threshold, below=st.just(20.0), clear=st.sampled_from([None, 25.0]),
              lookback=st.sampled_from([timedelta(minutes=10), timedelta(hours=1)])),
    st.builds(Threshold, above=st.just(40.0), clear=st.sampled_from([None, 30.0]),
              lookback=st.sampled_from([timedelta(minutes=10), timedelta(hours=1)])),
)
DURATIONS = st.sampled_from([timedelta(0), timedelta(minutes=3), timedelta(minutes=10)])
STEPS = st.sampled_from([timedelta(minutes=1), timedelta(seconds=450), timedelta(minutes=5)])


def _threshold_rule(conn: psycopg.Connection, rule: Threshold, for_: timedelta,
                    keep: timedelta) -> None:
    params: dict[str, object] = {"metric": "temperature_c",
                                 "lookback": f"{int(rule.lookback.total_seconds())} seconds"}
    params["below" if rule.below is not None else "above"] = rule.below or rule.above
    if rule.clear is not None:
        params["clear_threshold"] = rule.clear
    add_rule(conn, "prop", "threshold", params, for_interval=for_, keep_firing_for=keep)
    only_rules(conn, "prop")


def _points(raw: list[tuple[int, float]]) -> list[tuple[datetime, float]]:
    seen: dict[int, float] = {}
    for offset, value in raw:
        seen.setdefault(offset, value)
    return sorted((T0 + offset * SECOND, value) for offset, value in seen.items())


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE_OK)
@given(raw=SERIES, rule=RULES, for_=DURATIONS, keep=DURATIONS, step=STEPS)
def test_backtest_equals_the_reference(conn: psycopg.Connection, raw, rule, for_, keep,
                                       step) -> None:
    points = _points(raw)
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(hours=6)
    times = steps(start, end, step)
    expected = episodes(times, reference_threshold(points, rule, times), for_, keep)
    with conn.transaction(force_rollback=True):
        device(conn, "prop-device")
        insert_readings(conn, "prop-device", "temperature_c", points)
        _threshold_rule(conn, rule, for_, keep)
        assert backtest(conn, "prop", start, end, step) == expected


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURE_OK)
@given(stamps=st.lists(st.integers(0, 48 * 60), max_size=40),
       stale_after=st.sampled_from([timedelta(minutes=30), timedelta(hours=2)]),
       keep=DURATIONS)
def test_stale_backtest_equals_the_reference(conn: psycopg.Connection, stamps, stale_after,
                                             keep) -> None:
    points = _points([(minute * 60, 1.0) for minute in stamps])
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=48)
    step = timedelta(minutes=20)
    times = steps(start, end, step)
    signals = stale_signals([p[0] for p in points], stale_after, timedelta(days=30), times)
    expected = episodes(times, signals, timedelta(0), keep)
    with conn.transaction(force_rollback=True):
        device(conn, "prop-device")
        insert_readings(conn, "prop-device", "temperature_c", points)
        add_rule(conn, "prop", "stale_device",
                 {"stale_after": f"{int(stale_after.total_seconds())} seconds"},
                 keep_firing_for=keep)
        only_rules(conn, "prop")
        assert backtest(conn, "prop", start, end, step) == expected


@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURE_OK)
@given(raw=SERIES, rule=RULES, for_=DURATIONS, keep=DURATIONS)
def test_live_stepping_equals_backtest(conn: psycopg.Connection, raw, rule, for_,
                                       keep) -> None:
    points = _points(raw)
    start, end, step = T0, T0 + timedelta(hours=6), timedelta(minutes=10)
    with conn.transaction(force_rollback=True):
        device(conn, "prop-device")
        insert_readings(conn, "prop-device", "temperature_c", points)
        _threshold_rule(conn, rule, for_, keep)
        replayed = backtest(conn, "prop", start, end, step)
        assert live(conn, "prop", steps(start, end, step)) == replayed


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURE_OK)
@given(raw=SERIES, later=SERIES, rule=RULES, cut=st.integers(600, 5 * 3600))
def test_readings_after_t_never_change_evaluate_t(conn: psycopg.Connection, raw, later, rule,
                                                   cut) -> None:
    at = T0 + cut * SECOND
    points = [p for p in _points(raw) if p[0] <= at]
    future = [(at + (offset % 7200 + 1) * SECOND, value) for offset, value in later]
    outcomes = []
    for extra in ([], future):
        with conn.transaction(force_rollback=True):
            device(conn, "prop-device")
            insert_readings(conn, "prop-device", "temperature_c",
                            sorted(dict(points + _dedupe(extra, points)).items()))
            _threshold_rule(conn, rule, timedelta(0), timedelta(0))
            conn.execute("update alerts.rules set is_enabled = true")  # every kind
            refresh_rollups(conn)
            first = conn.execute(
                "select rule, transition, labels, value from alerts.evaluate(%s)"
                " order by 1, 3::text", [at - timedelta(minutes=7)]).fetchall()
            second = conn.execute(
                "select rule, transition, labels, value from alerts.evaluate(%s)"
                " order by 1, 3::text", [at]).fetchall()
            outcomes.append((first, second))
    assert outcomes[0] == outcomes[1]


def _dedupe(extra: list[tuple[datetime, float]], points: list[tuple[datetime, float]]):
    taken = {p[0] for p in points}
    return [p for p in extra if p[0] not in taken]


def test_a_runner_behind_another_skips_its_evaluation(db_url: str) -> None:
    from loader.alerts.runner import Runner, RunnerConfig
    from loader.alerts.sinks import StdoutSink

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("select count(*) from alerts.evaluate(%s)", [T0])
    logged: list[str] = []
    config = RunnerConfig(database_url=db_url, sinks=[StdoutSink()], refresh=False)
    runner = Runner(config, log=lambda event, **_fields: logged.append(event),
                    clock=lambda: T0 - SECOND)
    try:
        stats = runner.cycle()
    finally:
        runner.close()
    assert stats.transitions == 0
    assert "evaluation_skipped" in logged
