"""What `tsfleet alerts list|history|rules` print: alerts.open_alert_summaries,
alerts.list_episodes() and alerts.rule_settings (sql/views/40_alerts_70_listings.sql)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from loader.cli import main
from tests.alerts_support import set_rule


def episode(conn: psycopg.Connection, rule_key: str, device_key: str, state: str,
            started_ago: timedelta, fired: bool = True) -> int:
    now = datetime.now(timezone.utc)
    started = now - started_ago
    ended = now if state in ("resolved", "cancelled") else None
    row = conn.execute(
        "insert into alerts.episodes (rule_id, identity_hash, labels, state, value, started_at,"
        " fired_at, ended_at, last_held_at, last_evaluated_at)"
        " select rule_id, md5(%s || %s || %s), %s, %s, 12.5, %s, %s, %s, %s, %s"
        " from alerts.rules where rule_key = %s returning episode_id",
        [rule_key, device_key, str(started_ago),
         Jsonb({"device": device_key, "metric": "m", "severity": "warning",
                "tenant": "default"}),
         state, started, started if fired else None, ended, started, started, rule_key],
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_open_alert_summaries_list_open_episodes_newest_first(conn: psycopg.Connection) -> None:
    old = episode(conn, "low_battery", "d-1", "firing", timedelta(hours=2))
    new = episode(conn, "stale_device", "d-2", "pending", timedelta(minutes=5), fired=False)
    episode(conn, "low_battery", "d-3", "resolved", timedelta(minutes=1))
    conn.execute("insert into alerts.acknowledgements (episode_id, acknowledged_by)"
                 " values (%s, 'alice')", [old])
    rows = conn.execute(
        "select episode_id, rule, state, subject, metric, tenant, value, acknowledged_by,"
        " is_silenced, fired_at is null from alerts.open_alert_summaries").fetchall()
    assert rows == [
        (new, "stale_device", "pending", "d-2", "m", "default", 12.5, None, False, True),
        (old, "low_battery", "firing", "d-1", "m", "default", 12.5, "alice", False, False),
    ]


def test_list_episodes_keeps_the_period_and_the_rule(conn: psycopg.Connection) -> None:
    recent = episode(conn, "low_battery", "d-1", "resolved", timedelta(hours=1))
    other_rule = episode(conn, "stale_device", "d-2", "firing", timedelta(hours=3))
    episode(conn, "low_battery", "d-3", "resolved", timedelta(days=2))
    for who in ("bob", "carol"):  # one transaction each: acknowledged_at orders them
        conn.execute("insert into alerts.acknowledgements (episode_id, acknowledged_by)"
                     " values (%s, %s)", [recent, who])

    def listed(since: str, rule: str | None) -> list[tuple]:
        return conn.execute(
            "select episode_id, rule, state, acknowledged_by, notification_count"
            " from alerts.list_episodes(%s::interval, %s)", [since, rule]).fetchall()

    assert listed("1 day", None) == [
        (recent, "low_battery", "resolved", "bob, carol", 0),
        (other_rule, "stale_device", "firing", None, 0),
    ]
    assert listed("1 day", "low_battery") == [(recent, "low_battery", "resolved", "bob, carol", 0)]
    assert [r[0] for r in listed("30 minutes", None)] == []
    assert len(listed("3 days", "low_battery")) == 2
    firing = conn.execute("select firing_duration >= interval '3 hours' from"
                          " alerts.list_episodes(interval '1 day', 'stale_device')").fetchone()
    assert firing == (True,)


def test_rule_settings_show_the_rules_by_key(conn: psycopg.Connection) -> None:
    set_rule(conn, "low_battery", for_interval=timedelta(minutes=7), is_enabled=False)
    rows = conn.execute("select rule_key, for_interval, is_enabled from alerts.rule_settings"
                        ).fetchall()
    keys = [r[0] for r in rows]
    assert keys == sorted(keys) and "low_battery" in keys
    assert rows[keys.index("low_battery")][1:] == (timedelta(minutes=7), False)
    columns = [c.name for c in conn.execute("select * from alerts.rule_settings limit 0"
                                            ).description]
    assert columns == ["rule_key", "condition_kind", "scope_kind", "scope_key", "severity",
                       "for_interval", "keep_firing_for", "is_enabled", "params"]


@pytest.mark.parametrize(("role", "query", "allowed"), [
    ("tsfleet_grafana", "select * from alerts.open_alert_summaries", True),
    ("tsfleet_grafana", "select * from alerts.list_episodes(interval '1 day')", True),
    ("tsfleet_grafana", "select * from alerts.rule_settings", False),
    ("tsfleet_analyst", "select * from alerts.rule_settings", True),
    ("tsfleet_ingest", "select * from alerts.list_episodes(interval '1 day', 'x')", True),
])
def test_listings_are_readable_by_whoever_reads_what_they_show(
        conn: psycopg.Connection, role: str, query: str, allowed: bool) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute(f"set local role {role}")
        if allowed:
            conn.execute(query).fetchall()
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query)


def test_cli_list_history_and_rules_print_the_listings(db_url: str,
                                                       conn: psycopg.Connection) -> None:
    firing = episode(conn, "low_battery", "d-1", "firing", timedelta(hours=1))
    env = {"DATABASE_URL": db_url}
    listed = CliRunner().invoke(main, ["alerts", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert list(row) == ["episode_id", "rule", "severity", "state", "subject", "metric",
                         "tenant", "value", "started_at", "fired_at", "acknowledged_by",
                         "is_silenced"]
    assert (row["episode_id"], row["subject"]) == (firing, "d-1")
    history = CliRunner().invoke(main, ["alerts", "history", "--json", "--since", "2h",
                                        "--rule", "low_battery"], env=env)
    assert history.exit_code == 0, history.output
    [row] = json.loads(history.output)
    assert list(row) == ["episode_id", "rule", "severity", "subject", "metric", "state",
                         "started_at", "fired_at", "ended_at", "firing_duration",
                         "acknowledged_by", "notification_count"]
    assert row["episode_id"] == firing
    rules = CliRunner().invoke(main, ["alerts", "rules"], env=env)
    assert rules.exit_code == 0, rules.output
    assert rules.output.splitlines()[0].split()[:3] == ["rule_key", "condition_kind",
                                                        "scope_kind"]
    assert "low_battery" in rules.output
