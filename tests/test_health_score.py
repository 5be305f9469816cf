"""Health scores: the default pump rules exactly, tiers, clamping, missing metrics."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.processing_support import (
    WORKED_EXAMPLE_AT,
    add_asset,
    add_asset_type,
    add_batch,
    add_device,
    add_link,
    add_readings,
    latest_health,
    process_batch,
)


def score(conn: psycopg.Connection, metrics: dict[str, float | None],
          asset_type: str = "pump") -> float | None:
    row = conn.execute("select telemetry.health_score(%s, %s)",
                       [asset_type, Jsonb(metrics)]).fetchone()
    assert row is not None
    return row[0]


def test_default_pump_rules_are_seeded_exactly(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "select hr.rule_group, hr.tier, hr.metric_name, hr.comparison, hr.threshold, hr.penalty"
        " from telemetry.health_rules as hr"
        " inner join telemetry.asset_types as aty using (asset_type_id)"
        " where aty.asset_type_key = 'pump' order by 1, 2"
    ).fetchall()
    assert rows == [
        ("motor_temperature", 1, "motor_temperature", ">", 80.0, 30.0),
        ("motor_temperature", 2, "motor_temperature", ">", 70.0, 10.0),
        ("power_consumption", 1, "power_consumption", "<", 10.0, 40.0),
        ("vibration", 1, "vibration", ">", 5.0, 20.0),
    ]


@pytest.mark.parametrize(("metrics", "expected"), [
    ({"motor_temperature": 80.0}, 90.0),           # not > 80, but > 70
    ({"motor_temperature": 80.5}, 70.0),           # first tier only: 30, not 30 + 10
    ({"motor_temperature": 70.0}, 100.0),          # thresholds are strict
    ({"motor_temperature": 70.1}, 90.0),
    ({"vibration": 5.0}, 100.0),
    ({"vibration": 5.01}, 80.0),
    ({"power_consumption": 9.99}, 60.0),
    ({"power_consumption": 10.0}, 100.0),
    ({"motor_temperature": 95.0, "vibration": 9.0, "power_consumption": 1.0}, 10.0),
    ({"motor_temperature": 75.0, "vibration": 6.0}, 70.0),
    # power_consumption derived from power_input * power_current (2 * 3 = 6 < 10)
    ({"power_input": 2.0, "power_current": 3.0}, 60.0),
    ({"power_input": 12.3, "power_current": 2.5}, 100.0),
    # a given power_consumption wins over the derived one
    ({"power_input": 2.0, "power_current": 3.0, "power_consumption": 50.0}, 100.0),
    # an overflowing power_consumption has no value, so its rule does not fire
    ({"power_input": 1e200, "power_current": 1e200, "vibration": 6.0}, 80.0),
])
def test_default_pump_rules_score_exactly(
    conn: psycopg.Connection, metrics: dict[str, float], expected: float
) -> None:
    assert score(conn, metrics) == expected


@pytest.mark.parametrize("metrics", [{}, {"pressure": 3.0}, {"vibration": None},
                                     {"vibration": "high"}])
def test_reading_set_without_rule_metrics_scores_100_under_pump_rules(
    conn: psycopg.Connection, metrics: dict[str, object]
) -> None:
    # Documented choice: an absent metric matches no rule (except 'missing' rules).
    assert score(conn, metrics) == 100.0  # type: ignore[arg-type]


def add_rules(conn: psycopg.Connection, asset_type: str,
              rules: list[tuple[str, int, str, str, float | None, float]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "insert into telemetry.health_rules (asset_type_id, rule_group, tier, metric_name,"
            " comparison, threshold, penalty) select asset_type_id, %s, %s, %s, %s, %s, %s"
            " from telemetry.asset_types where asset_type_key = %s",
            [(*rule, asset_type) for rule in rules],
        )


def test_missing_rule_penalizes_an_absent_metric(conn: psycopg.Connection) -> None:
    add_asset_type(conn, "sensor", {"metrics": ["level"]})
    add_rules(conn, "sensor", [("level", 1, "level", "missing", None, 25.0),
                               ("level", 2, "level", "<", 1.0, 50.0)])
    assert score(conn, {}, "sensor") == 75.0
    assert score(conn, {"level": 0.5}, "sensor") == 50.0
    assert score(conn, {"level": 2.0}, "sensor") == 100.0


def test_score_is_clamped_to_zero(conn: psycopg.Connection) -> None:
    add_asset_type(conn, "sensor", {"metrics": ["level"]})
    add_rules(conn, "sensor", [("low", 1, "level", "<", 1.0, 80.0),
                               ("very_low", 1, "level", "<=", 0.5, 80.0)])
    assert score(conn, {"level": 0.5}, "sensor") == 0.0
    assert score(conn, {"level": 0.9}, "sensor") == 20.0


def test_asset_type_without_rules_has_no_score(conn: psycopg.Connection) -> None:
    add_asset_type(conn, "sensor", {"metrics": ["level"]})
    assert score(conn, {"level": 1.0}, "sensor") is None


def test_unknown_asset_type_is_an_error(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='unknown asset type "boat"'):
        score(conn, {}, "boat")


def test_processing_writes_the_same_score_as_health_score(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-1")
    add_link(conn, device, add_asset(conn, "pump-1"), mapping={
        "voltage": "power_input", "current": "power_current", "temperature": "motor_temperature"})
    batch = add_batch(conn)
    add_readings(conn, batch, device, WORKED_EXAMPLE_AT,
                 {"voltage": 2.0, "current": 3.0, "temperature": 85.0, "vibration": 5.5})
    process_batch(conn, batch)
    expected = score(conn, {"power_input": 2.0, "power_current": 3.0,
                            "motor_temperature": 85.0, "vibration": 5.5})
    assert expected == 10.0
    assert latest_health(conn, "pump-1")[0] == expected


def test_analyst_can_call_health_score(conn: psycopg.Connection) -> None:
    conn.execute("set role tsfleet_analyst")
    try:
        assert score(conn, {"vibration": 6.0}) == 80.0
    finally:
        conn.execute("reset role")


def test_previous_health_score_is_derivable(conn: psycopg.Connection) -> None:
    device = add_device(conn, "dev-1")
    pump = add_asset(conn, "pump-1")
    add_link(conn, device, pump)
    first, second = add_batch(conn, "first"), add_batch(conn, "second")
    later = WORKED_EXAMPLE_AT + timedelta(minutes=1)
    add_readings(conn, first, device, WORKED_EXAMPLE_AT, {"vibration": 6.0})
    add_readings(conn, second, device, later, {"vibration": 1.0})
    process_batch(conn, first)
    process_batch(conn, second)
    row = conn.execute(
        "select telemetry.health_score_before(%(a)s, %(t1)s),"
        " telemetry.health_score_before(%(a)s, %(t2)s)",
        {"a": pump, "t1": WORKED_EXAMPLE_AT, "t2": later},
    ).fetchone()
    assert row == (None, 80.0)
    assert latest_health(conn, "pump-1")[:2] == (100.0, later)
