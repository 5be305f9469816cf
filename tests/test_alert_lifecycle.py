"""The alert lifecycle in SQL, driven by alerts.evaluate(t) with explicit times."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tests.alerts_support import (
    T0,
    device,
    evaluate,
    minutes,
    notifications,
    only_rules,
    reading,
    refresh_rollups,
    set_rule,
    states,
)

SOC = "StateOfChargePercentage"


@pytest.fixture
def battery(conn: psycopg.Connection) -> psycopg.Connection:
    """One battery and only the low_battery rule: for 5 min, keep_firing_for 5 min, 20/25."""
    only_rules(conn, "low_battery")
    device(conn, "bat-1", "battery")
    return conn


def soc(conn: psycopg.Connection, at_minute: float, value: float) -> None:
    reading(conn, "bat-1", SOC, T0 + minutes(at_minute), value)


def test_pending_then_firing_after_for_then_resolved_after_keep_firing_for(
    battery: psycopg.Connection,
) -> None:
    conn = battery
    soc(conn, 0, 15)
    assert evaluate(conn, T0) == [("low_battery", "bat-1", "pending")]
    assert evaluate(conn, T0 + minutes(4)) == []
    assert states(conn) == [("low_battery", "pending")]
    assert evaluate(conn, T0 + minutes(5)) == [("low_battery", "bat-1", "firing")]
    assert notifications(conn) == [("low_battery", "firing")]
    soc(conn, 6, 30)  # clear (above clear_threshold 25)
    assert evaluate(conn, T0 + minutes(6)) == []
    assert states(conn) == [("low_battery", "firing")]
    assert evaluate(conn, T0 + minutes(10)) == []
    assert evaluate(conn, T0 + minutes(11)) == [("low_battery", "bat-1", "resolved")]
    assert states(conn) == [("low_battery", "resolved")]
    assert notifications(conn) == [("low_battery", "firing"), ("low_battery", "resolved")]
    row = conn.execute("select started_at, fired_at, cleared_at, ended_at from alerts.episodes"
                       ).fetchone()
    assert row == (T0, T0 + minutes(5), T0 + minutes(6), T0 + minutes(11))


def test_a_pending_alert_that_clears_is_cancelled_and_never_notified(
    battery: psycopg.Connection,
) -> None:
    conn = battery
    soc(conn, 0, 15)
    evaluate(conn, T0)
    soc(conn, 2, 50)
    assert evaluate(conn, T0 + minutes(3)) == [("low_battery", "bat-1", "cancelled")]
    assert notifications(conn) == []


def test_flapping_within_the_hysteresis_band_does_not_resolve(
    battery: psycopg.Connection,
) -> None:
    conn = battery
    set_rule(conn, "low_battery", for_interval=timedelta(0), keep_firing_for=timedelta(0))
    soc(conn, 0, 19)
    assert evaluate(conn, T0) == [("low_battery", "bat-1", "firing")]
    for minute, value in [(1, 21), (2, 24.9), (3, 19.5), (4, 22)]:
        soc(conn, minute, value)
        assert evaluate(conn, T0 + minutes(minute)) == [], (minute, value)
    # A fresh identity at 22 would not fire: the band only holds what is already open.
    assert states(conn) == [("low_battery", "firing")]
    soc(conn, 5, 25)
    assert evaluate(conn, T0 + minutes(5)) == [("low_battery", "bat-1", "resolved")]
    soc(conn, 6, 22)
    assert evaluate(conn, T0 + minutes(6)) == []
    assert notifications(conn) == [("low_battery", "firing"), ("low_battery", "resolved")]


def test_returning_within_keep_firing_for_keeps_the_same_episode(
    battery: psycopg.Connection,
) -> None:
    conn = battery
    set_rule(conn, "low_battery", for_interval=timedelta(0))
    soc(conn, 0, 10)
    evaluate(conn, T0)
    soc(conn, 1, 90)
    evaluate(conn, T0 + minutes(1))
    soc(conn, 3, 10)
    assert evaluate(conn, T0 + minutes(3)) == []
    soc(conn, 4, 90)
    evaluate(conn, T0 + minutes(4))
    assert evaluate(conn, T0 + minutes(8)) == []
    assert evaluate(conn, T0 + minutes(9)) == [("low_battery", "bat-1", "resolved")]
    assert conn.execute("select count(*) from alerts.episodes").fetchone()[0] == 1


def test_evaluating_twice_at_the_same_time_changes_nothing(battery: psycopg.Connection) -> None:
    conn = battery
    set_rule(conn, "low_battery", for_interval=timedelta(0))
    soc(conn, 0, 10)
    evaluate(conn, T0)
    assert evaluate(conn, T0) == []
    assert notifications(conn) == [("low_battery", "firing")]


def test_one_open_episode_per_identity_is_a_constraint(battery: psycopg.Connection) -> None:
    conn = battery
    soc(conn, 0, 10)
    evaluate(conn, T0)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "insert into alerts.episodes (rule_id, identity_hash, labels, state, started_at,"
            " last_held_at, last_evaluated_at) select rule_id, identity_hash, labels,"
            " 'pending', started_at, last_held_at, last_evaluated_at from alerts.episodes")


def test_a_new_episode_starts_after_resolution(battery: psycopg.Connection) -> None:
    conn = battery
    set_rule(conn, "low_battery", for_interval=timedelta(0), keep_firing_for=timedelta(0))
    soc(conn, 0, 10)
    evaluate(conn, T0)
    soc(conn, 1, 90)
    evaluate(conn, T0 + minutes(1))
    soc(conn, 2, 10)
    assert evaluate(conn, T0 + minutes(2)) == [("low_battery", "bat-1", "firing")]
    assert states(conn) == [("low_battery", "resolved"), ("low_battery", "firing")]
    history = conn.execute(
        "select state, firing_duration from alerts.episode_history order by episode_id"
    ).fetchall()
    assert history[0] == ("resolved", timedelta(minutes=1))


def test_repeat_interval_renotifies_until_acknowledged(battery: psycopg.Connection) -> None:
    conn = battery
    set_rule(conn, "low_battery", for_interval=timedelta(0),
             repeat_interval=timedelta(minutes=10))
    soc(conn, 0, 10)
    evaluate(conn, T0)
    assert evaluate(conn, T0 + minutes(9)) == []
    assert evaluate(conn, T0 + minutes(10)) == [("low_battery", "bat-1", "repeat")]
    episode_id = conn.execute("select episode_id from alerts.active_alerts").fetchone()[0]
    conn.execute("select alerts.acknowledge(%s, 'alice', 'on it')", [episode_id])
    assert evaluate(conn, T0 + minutes(30)) == []
    ack = conn.execute("select acknowledged_by from alerts.active_alerts").fetchone()
    assert ack == ("alice",)
    assert notifications(conn) == [("low_battery", "firing"), ("low_battery", "repeat")]


def test_acknowledging_a_closed_episode_is_refused(battery: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match="not open"):
        battery.execute("select alerts.acknowledge(12345, 'alice')")


def test_a_silence_mutes_matching_notifications_but_keeps_state(
    battery: psycopg.Connection,
) -> None:
    conn = battery
    set_rule(conn, "low_battery", for_interval=timedelta(0), keep_firing_for=timedelta(0))
    conn.execute("select alerts.silence('{\"device\": \"bat-1\"}', %s, 'bob', 'maintenance', %s)",
                 [T0 + minutes(30), T0 - minutes(1)])
    soc(conn, 0, 10)
    assert evaluate(conn, T0) == [("low_battery", "bat-1", "firing")]
    rows = conn.execute("select transition, silence_id is not null from alerts.notifications"
                        ).fetchall()
    assert rows == [("firing", True)]
    soc(conn, 40, 90)
    evaluate(conn, T0 + minutes(40))
    rows = conn.execute("select transition, silence_id is not null from alerts.notifications"
                        " order by notification_id").fetchall()
    assert rows == [("firing", True), ("resolved", False)]


def test_notification_payload_has_labels_annotations_and_times(
    battery: psycopg.Connection,
) -> None:
    conn = battery
    set_rule(conn, "low_battery", for_interval=timedelta(0), labels={"team": "energy"})
    soc(conn, 0, 12.5)
    evaluate(conn, T0)
    payload = conn.execute("select payload from alerts.notifications").fetchone()[0]
    assert payload["labels"] == {
        "alertname": "low_battery", "rule": "low_battery", "device": "bat-1",
        "metric": SOC, "severity": "warning", "tenant": "default", "team": "energy",
    }
    assert payload["annotations"]["summary"] == "Battery bat-1 state of charge is 12.5 %"
    assert payload["annotations"]["runbook_url"].endswith("docs/alerts.md#low_battery")
    assert payload["status"] == "firing" and payload["value"] == 12.5
    assert payload["startsAt"].startswith("2026-03-01T12:00:00")


def test_the_ingest_role_can_evaluate_and_deliver(battery: psycopg.Connection) -> None:
    conn = battery
    set_rule(conn, "low_battery", for_interval=timedelta(0))
    soc(conn, 0, 10)
    refresh_rollups(conn)
    with conn.transaction(force_rollback=True):
        conn.execute("set local role tsfleet_ingest")
        assert conn.execute("select transition from alerts.evaluate(%s)", [T0]
                            ).fetchall() == [("firing",)]
        conn.execute("select alerts.register_sink('ops', 'webhook')")
        conn.execute("update alerts.sinks set first_notification_id = 1, enqueued_through = 0")
        claimed = conn.execute("select notification_id, lease_token"
                               " from alerts.claim_deliveries('ops', 'r')").fetchall()
        assert len(claimed) == 1
        assert conn.execute("select alerts.record_delivery('ops', %s, %s, 'delivered')",
                            claimed[0]).fetchone() == ("delivered",)
