"""The runner and a real Alertmanager (Debian's prometheus-alertmanager, amtool): alerts with
their labels, resolution, re-sends past resolve_timeout, grouped webhook notifications,
silences made with amtool, two runners, and the compose stack's configuration."""

from __future__ import annotations

import re
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
import yaml

from loader.alerts.alertmanager_format import fingerprint, webhook_v4
from loader.alerts.runner import Runner, RunnerConfig
from loader.alerts.sinks import AlertmanagerSink, WebhookSink
from tests import alertmanager_support
from tests.alertmanager_support import webhook_config
from tests.alerts_support import (
    Receiver,
    device,
    only_rules,
    reading,
    refresh_rollups,
    set_rule,
    wait_until,
)

alertmanager_binaries = alertmanager_support.alertmanager_binaries
start_alertmanager = alertmanager_support.start_alertmanager

REPO = Path(__file__).resolve().parent.parent
SOC = "StateOfChargePercentage"
GENERATOR = "http://grafana.example/d/tsfleet-fleet?var-episode={episode_id}"


def quiet(*_args: object, **_fields: object) -> None:
    pass


def same_time(text: str, expected: datetime) -> bool:
    """Alertmanager keeps times to the millisecond."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return abs(parsed - expected) < timedelta(milliseconds=1)


def low_batteries(conn: psycopg.Connection, devices: dict[str, str], at: datetime,
                  value: float = 10) -> None:
    """One device per key (tenant as value) with a state of charge `value` at `at`."""
    only_rules(conn, "low_battery")
    set_rule(conn, "low_battery", for_interval=timedelta(0), keep_firing_for=timedelta(0))
    for key, tenant in devices.items():
        if not conn.execute("select 1 from telemetry.devices where device_key = %s",
                            [key]).fetchone():
            device(conn, key, "battery", tenant=tenant)
        reading(conn, key, SOC, at, value)
    refresh_rollups(conn)


def runner(url: str, sink, **config: object) -> Runner:
    cfg = RunnerConfig(database_url=url, sinks=[sink], retry_base=timedelta(0), refresh=False,
                       **config)  # type: ignore[arg-type]
    return Runner(cfg, log=quiet)


def am_sink(am, resend: timedelta = timedelta(minutes=1)) -> AlertmanagerSink:
    return AlertmanagerSink(am.url, timeout=5, resend_interval=resend, generator_url=GENERATOR)


def test_alerts_reach_alertmanager_with_labels_annotations_start_and_generator_url(
    db_url: str, conn: psycopg.Connection, start_alertmanager,
) -> None:
    am = start_alertmanager(webhook_config(None))
    now = datetime.now(timezone.utc)
    low_batteries(conn, {"bat-1": "default"}, now)
    assert runner(db_url, am_sink(am)).run(once=True) == 0
    [alert] = am.alerts()
    episode_id, fired_at = conn.execute("select episode_id, fired_at from alerts.episodes"
                                        ).fetchone()
    assert alert["labels"]["alertname"] == "low_battery"
    assert alert["labels"]["device"] == "bat-1" and alert["labels"]["tenant"] == "default"
    assert alert["annotations"]["summary"].startswith("Battery bat-1")
    assert same_time(alert["startsAt"], fired_at)
    assert alert["generatorURL"] == GENERATOR.format(episode_id=episode_id)
    assert alert["status"]["state"] == "active"
    # Our webhook format computes Alertmanager's own fingerprint of the label set.
    assert alert["fingerprint"] == fingerprint(alert["labels"])


def test_resolving_sets_ends_at_and_alertmanager_notifies_it_resolved(
    db_url: str, conn: psycopg.Connection, start_alertmanager,
) -> None:
    with Receiver() as hook:
        am = start_alertmanager(webhook_config(hook.url + "/am"))
        now = datetime.now(timezone.utc)
        low_batteries(conn, {"bat-1": "default"}, now)
        assert runner(db_url, am_sink(am)).run(once=True) == 0
        assert wait_until(lambda: any(p["status"] == "firing" for p in hook.posts()), 30)
        later = now + timedelta(seconds=1)
        reading(conn, "bat-1", SOC, later, 90)
        refresh_rollups(conn)
        assert runner(db_url, am_sink(am)).run(once=True) == 0
        assert wait_until(lambda: any(p["status"] == "resolved" for p in hook.posts()), 30)
        resolved = next(p for p in hook.posts() if p["status"] == "resolved")
    ended_at = conn.execute("select ended_at from alerts.episodes").fetchone()[0]
    [alert] = resolved["alerts"]
    assert alert["status"] == "resolved"
    assert same_time(alert["endsAt"], ended_at)
    assert am.alerts() == []  # resolved: no longer among the active alerts


def test_resends_keep_a_firing_alert_alive_past_resolve_timeout(
    db_url: str, conn: psycopg.Connection, start_alertmanager,
) -> None:
    am = start_alertmanager(webhook_config(None, resolve_timeout="2s"))
    low_batteries(conn, {"bat-1": "default"}, datetime.now(timezone.utc))
    resend = timedelta(seconds=1)  # endsAt = now + 4 s, re-sent every second
    the_runner = runner(db_url, am_sink(am, resend), interval=timedelta(seconds=0.5),
                        lock_timeout=timedelta(seconds=5))
    thread = threading.Thread(target=the_runner.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(am.alerts()) == 1, 30)
        first_ends = am.alerts()[0]["endsAt"]
        # Three times resolve_timeout and past the first endsAt: still firing, endsAt moved on.
        threading.Event().wait(6)
        [alert] = am.alerts()
        assert alert["status"]["state"] == "active"
        assert alert["endsAt"] > first_ends
    finally:
        the_runner.stop()
        thread.join(30)
    # Without re-sends it expires at its last endsAt.
    assert wait_until(lambda: am.alerts() == [], 15)


def test_alertmanager_groups_notifications_by_rule_and_tenant(
    db_url: str, conn: psycopg.Connection, start_alertmanager,
) -> None:
    with Receiver() as hook:
        am = start_alertmanager(webhook_config(hook.url + "/am", group_wait="2s"))
        devices = {"a-1": "north", "a-2": "north", "a-3": "north", "b-1": "south",
                   "b-2": "south"}
        low_batteries(conn, devices, datetime.now(timezone.utc))
        assert runner(db_url, am_sink(am)).run(once=True) == 0
        assert wait_until(lambda: len(hook.posts()) >= 2, 30)
        threading.Event().wait(1.5)  # nothing else should arrive
        posts = hook.posts()
    groups = {p["groupLabels"]["tenant"]: p for p in posts}
    assert len(posts) == 2 and set(groups) == {"north", "south"}
    assert {p["groupLabels"]["rule"] for p in posts} == {"low_battery"}
    assert sorted(a["labels"]["device"] for a in groups["north"]["alerts"]) == [
        "a-1", "a-2", "a-3"]
    assert len(groups["south"]["alerts"]) == 2
    assert groups["north"]["commonLabels"]["tenant"] == "north"
    # --webhook-format alertmanager sends the same shape as Alertmanager's own webhook.
    payload = conn.execute(
        "select payload from alerts.notifications"
        " where payload -> 'labels' ->> 'tenant' = 'north' limit 1").fetchone()[0]
    ours = webhook_v4(payload, receiver="tsfleet", generator_template=GENERATOR)
    theirs = groups["north"]
    assert set(ours) == set(theirs) and ours["version"] == theirs["version"] == "4"
    assert set(ours["alerts"][0]) == set(theirs["alerts"][0])
    their_alert = next(a for a in theirs["alerts"]
                       if a["labels"]["device"] == payload["labels"]["device"])
    assert ours["alerts"][0]["fingerprint"] == their_alert["fingerprint"]
    assert ours["alerts"][0]["labels"] == their_alert["labels"]
    assert ours["alerts"][0]["endsAt"] == their_alert["endsAt"] == "0001-01-01T00:00:00Z"


def test_a_silence_made_with_amtool_suppresses_the_notifications(
    db_url: str, conn: psycopg.Connection, start_alertmanager,
) -> None:
    with Receiver() as hook:
        am = start_alertmanager(webhook_config(hook.url + "/am"))
        am.amtool_run("silence", "add", "rule=low_battery", "tenant=~so.*",
                      "--author=bob", "--comment=battery swap", "--duration=1h")
        low_batteries(conn, {"a-1": "north", "b-1": "south"}, datetime.now(timezone.utc))
        assert runner(db_url, am_sink(am)).run(once=True) == 0
        assert wait_until(lambda: len(hook.posts()) >= 1, 30)
        threading.Event().wait(2.5)  # two more group intervals: the silenced group stays quiet
        posts = hook.posts()
    assert [p["groupLabels"]["tenant"] for p in posts] == ["north"]
    states = {a["labels"]["device"]: a["status"] for a in am.alerts()}
    assert states["b-1"]["state"] == "suppressed" and states["b-1"]["silencedBy"]
    assert states["a-1"]["state"] == "active"


def test_two_runners_produce_one_alert_each_in_alertmanager(
    db_url: str, conn: psycopg.Connection, start_alertmanager,
) -> None:
    am = start_alertmanager(webhook_config(None))
    low_batteries(conn, {f"bat-{i}": "default" for i in range(12)}, datetime.now(timezone.utc))
    sink = am_sink(am)
    runners = [runner(db_url, sink, batch_size=2) for _ in range(2)]
    threads = [threading.Thread(target=r.run, kwargs={"once": True}) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    alerts = am.alerts()
    assert len(alerts) == 12
    assert len({a["fingerprint"] for a in alerts}) == 12
    delivered = conn.execute("select count(*), count(distinct notification_id)"
                             " from alerts.delivery_status where state = 'delivered'").fetchone()
    assert delivered == (12, 12)


def test_the_runner_posts_alertmanager_format_webhooks(db_url: str,
                                                       conn: psycopg.Connection) -> None:
    low_batteries(conn, {"bat-1": "default"}, datetime.now(timezone.utc))
    with Receiver() as hook:
        sink = WebhookSink(hook.url, format="alertmanager", external_url="http://tsfleet.example",
                           generator_url=GENERATOR)
        assert runner(db_url, sink).run(once=True) == 0
        [body] = hook.posts()
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["externalURL"] == "http://tsfleet.example" and body["receiver"] == "tsfleet"
    assert body["groupLabels"] == {"alertname": "low_battery", "rule": "low_battery",
                                   "tenant": "default"}
    [alert] = body["alerts"]
    assert alert["labels"]["device"] == "bat-1"
    assert alert["fingerprint"] == fingerprint(alert["labels"])
    assert alert["generatorURL"].startswith("http://grafana.example/")


def test_the_compose_alertmanager_config_is_valid_for_amtool(
    alertmanager_binaries: tuple[str, str],
) -> None:
    config = REPO / "alertmanager" / "alertmanager.yml"
    result = subprocess.run([alertmanager_binaries[1], "check-config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 inhibit rules" in result.stdout and "SUCCESS" in result.stdout


def test_fingerprint_of_no_labels_is_fnv1a_offset_basis() -> None:
    # prometheus/common: an empty label set's fingerprint is FNV-1a 64's offset basis.
    assert fingerprint({}) == "cbf29ce484222325"


def test_the_compose_stack_runs_alertmanager_and_the_runner_posts_to_it() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    am = services["alertmanager"]
    assert re.fullmatch(r"prom/alertmanager:v\d+\.\d+\.\d+", am["image"])
    # Published on this machine only, unless the operator sets TSFLEET_BIND_ADDRESS.
    assert all(port.startswith("${TSFLEET_BIND_ADDRESS:-127.0.0.1}:") for port in am["ports"])
    mounted = [v.split(":")[0] for v in am["volumes"]]
    assert "./alertmanager/alertmanager.yml" in mounted
    assert (REPO / "alertmanager" / "alertmanager.yml").exists()
    runner_command = " ".join(services["alert-runner"]["command"])
    assert "--alertmanager http://alertmanager:9093" in runner_command
    assert services["alert-runner"]["depends_on"]["alertmanager"]["condition"] == (
        "service_healthy")


@pytest.mark.parametrize(("labels", "receiver"), [
    (["via=grafana", "severity=critical", "rule=low_battery"], "grafana-copies"),
    (["via=grafana", "severity=warning"], "grafana-copies"),
    (["severity=critical", "rule=low_battery"], "on-call"),
    (["severity=warning", "rule=stale_device"], "team-chat"),
])
def test_a_condition_pages_once_grafanas_copies_of_the_runners_alerts_go_nowhere(
    alertmanager_binaries: tuple[str, str], labels: list[str], receiver: str,
) -> None:
    config = REPO / "alertmanager" / "alertmanager.yml"
    routed = subprocess.run([alertmanager_binaries[1], "config", "routes", "test",
                             f"--config.file={config}", *labels],
                            capture_output=True, text=True, timeout=30)
    assert routed.returncode == 0, routed.stdout + routed.stderr
    assert routed.stdout.strip() == receiver


def test_every_grafana_rule_is_marked_as_grafanas_copy() -> None:
    provisioned = yaml.safe_load(
        (REPO / "grafana" / "provisioning" / "alerting" / "tsfleet-alerts.yaml").read_text())
    rules = [rule for group in provisioned["groups"] for rule in group["rules"]]
    assert rules and all(rule["labels"].get("via") == "grafana" for rule in rules)
