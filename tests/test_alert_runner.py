"""The runner delivers the outbox: real HTTP receivers, retries, two runners, a DB restart."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from loader import migrate
from loader.alerts.runner import Runner, RunnerConfig
from loader.alerts.sinks import AlertmanagerSink, StdoutSink, WebhookSink
from loader.cli import main
from tests.alerts_support import (
    T0,
    Receiver,
    device,
    minutes,
    only_rules,
    reading,
    refresh_rollups,
    set_rule,
    wait_until,
)

REPO = Path(__file__).resolve().parent.parent
SOC = "StateOfChargePercentage"


def quiet(*_args: object, **_fields: object) -> None:
    pass


def battery_rule(conn: psycopg.Connection) -> None:
    only_rules(conn, "low_battery")
    set_rule(conn, "low_battery", for_interval=timedelta(0), keep_firing_for=timedelta(0))
    device(conn, "bat-1", "battery")


def runner(url: str, sinks: list, at: datetime, **config: object) -> Runner:
    """A runner evaluating at `at`; rollups are refreshed here (whole), as a cycle would."""
    with psycopg.connect(url, autocommit=True) as conn:
        refresh_rollups(conn)
    cfg = RunnerConfig(database_url=url, sinks=sinks, retry_base=timedelta(0),
                       refresh=False, **config)  # type: ignore[arg-type]
    return Runner(cfg, log=quiet, clock=lambda: at)


def test_webhook_gets_exactly_one_post_per_transition(db_url: str,
                                                      conn: psycopg.Connection) -> None:
    battery_rule(conn)
    with Receiver() as receiver:
        sinks = [WebhookSink(receiver.url + "/hook")]
        reading(conn, "bat-1", SOC, T0, 10)
        assert runner(db_url, sinks, T0).run(once=True) == 0
        assert runner(db_url, sinks, T0 + minutes(1)).run(once=True) == 0
        reading(conn, "bat-1", SOC, T0 + minutes(2), 90)
        assert runner(db_url, sinks, T0 + minutes(2)).run(once=True) == 0
        assert runner(db_url, sinks, T0 + minutes(3)).run(once=True) == 0
        posts = receiver.posts("/hook")
    assert [(p["status"], p["labels"]["device"]) for p in posts] == [
        ("firing", "bat-1"), ("resolved", "bat-1")]
    assert posts[1]["endsAt"].startswith("2026-03-01T12:02")
    delivered = conn.execute("select count(*) from alerts.deliveries"
                             " where delivered_at is not null").fetchone()[0]
    assert delivered == 2


def test_a_failing_webhook_is_retried_until_it_recovers(db_url: str,
                                                        conn: psycopg.Connection) -> None:
    battery_rule(conn)
    reading(conn, "bat-1", SOC, T0, 10)
    with Receiver(fail_first=2) as receiver:
        sinks = [WebhookSink(receiver.url)]
        assert runner(db_url, sinks, T0).run(once=True) == 1
        row = conn.execute("select attempts, delivered_at, last_error from alerts.deliveries"
                           ).fetchone()
        assert row[0] == 1 and row[1] is None and "HTTP 503" in row[2]
        assert runner(db_url, sinks, T0).run(once=True) == 1
        assert runner(db_url, sinks, T0).run(once=True) == 0
        assert receiver.failed == 2
        assert len(receiver.posts()) == 1
    row = conn.execute("select attempts, delivered_at is not null from alerts.deliveries"
                       ).fetchone()
    assert row == (3, True)


def test_retry_delays_grow_exponentially_up_to_the_maximum_with_jitter(
    conn: psycopg.Connection,
) -> None:
    battery_rule(conn)
    reading(conn, "bat-1", SOC, T0, 10)
    refresh_rollups(conn)
    conn.execute("select alerts.evaluate(%s)", [T0])
    conn.execute("select alerts.register_sink('s', 'webhook')")
    conn.execute("update alerts.sinks set first_notification_id = 1, enqueued_through = 0")
    delays = []
    for _ in range(6):
        [(token,)] = conn.execute("select lease_token from alerts.claim_deliveries('s', 'r1')"
                                  ).fetchall()
        assert conn.execute(
            "select alerts.record_delivery('s', n.notification_id, %s, 'retry', 503, 'x',"
            " null, interval '10 seconds', interval '60 seconds', interval '1 day')"
            " from alerts.notifications as n", [token]).fetchone() == ("retrying",)
        delays.append(conn.execute(
            "select extract(epoch from next_attempt_at - clock_timestamp())"
            " from alerts.deliveries").fetchone()[0])
        conn.execute("update alerts.deliveries set next_attempt_at = clock_timestamp()"
                     " - interval '1 second'")
    # Equal jitter: each delay lies in [half, all] of 10 s x 2^(attempt-1), at most 60 s.
    for delay, full in zip(delays, [10, 20, 40, 60, 60, 60], strict=True):
        assert full / 2 - 0.5 <= float(delay) <= full + 0.5, (delays, full)


def test_alertmanager_gets_v2_alerts_and_firing_ones_are_resent(
    db_url: str, conn: psycopg.Connection,
) -> None:
    battery_rule(conn)
    reading(conn, "bat-1", SOC, T0, 10)
    with Receiver() as receiver:
        sink = AlertmanagerSink(receiver.url, resend_interval=timedelta(0))
        assert runner(db_url, [sink], T0).run(once=True) == 0
        reading(conn, "bat-1", SOC, T0 + minutes(1), 90)
        assert runner(db_url, [sink], T0 + minutes(1)).run(once=True) == 0
        posts = receiver.posts("/api/v2/alerts")
    first = posts[0][0]
    assert first["labels"]["alertname"] == "low_battery"
    assert first["labels"]["device"] == "bat-1"
    assert first["annotations"]["summary"].startswith("Battery bat-1")
    assert first["startsAt"].startswith("2026-03-01T12:00")
    # The periodic re-send of firing alerts follows the transition in the first cycle.
    assert posts[1] == [first | {"endsAt": posts[1][0]["endsAt"]}]
    resolved = [p[0] for p in posts if p and p[0]["endsAt"].startswith("2026-03-01T12:01")]
    assert len(resolved) == 1


def test_two_runners_at_once_never_double_send(db_url: str, conn: psycopg.Connection) -> None:
    only_rules(conn, "low_battery")
    set_rule(conn, "low_battery", for_interval=timedelta(0), keep_firing_for=timedelta(0))
    for i in range(40):
        device(conn, f"bat-{i}")
        reading(conn, f"bat-{i}", SOC, T0, 10)
    with Receiver() as receiver:
        sinks = [WebhookSink(receiver.url)]
        runners = [runner(db_url, sinks, T0, batch_size=3) for _ in range(2)]
        threads = [threading.Thread(target=r.run, kwargs={"once": True}) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert wait_until(lambda: len(receiver.posts()) >= 40, timeout=30)
        ids = [p["notification_id"] for p in receiver.posts()]
    assert len(ids) == 40 and len(set(ids)) == 40


def test_stdout_sink_prints_one_json_line_per_notification(db_url: str,
                                                           conn: psycopg.Connection) -> None:
    battery_rule(conn)
    reading(conn, "bat-1", SOC, T0, 10)
    out = io.StringIO()
    assert runner(db_url, [StdoutSink(out)], T0).run(once=True) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["status"], x["labels"]["rule"]) for x in lines] == [("firing", "low_battery")]


def test_cli_evaluate_list_ack_and_silence(db_url: str, conn: psycopg.Connection) -> None:
    battery_rule(conn)
    reading(conn, "bat-1", SOC, T0, 10)
    cli = CliRunner()
    env = {"DATABASE_URL": db_url}
    result = cli.invoke(main, ["alerts", "evaluate", "--at", "data"], env=env)
    assert result.exit_code == 0, result.output
    assert "low_battery" in result.output and "firing" in result.output
    result = cli.invoke(main, ["alerts", "list", "--json"], env=env)
    episode = json.loads(result.output)[0]
    assert episode["subject"] == "bat-1" and episode["state"] == "firing"
    result = cli.invoke(main, ["alerts", "ack", str(episode["episode_id"]), "--by", "alice"],
                        env=env)
    assert result.exit_code == 0, result.output
    result = cli.invoke(main, ["alerts", "ack", "999", "--by", "alice"], env=env)
    assert result.exit_code == 1 and "not open" in result.output
    result = cli.invoke(main, ["alerts", "silence", "--match", "device=bat-1", "--for", "2h",
                               "--by", "bob"], env=env)
    assert result.exit_code == 0, result.output
    result = cli.invoke(main, ["alerts", "silence", "--match", "nonsense", "--for", "2h",
                               "--by", "bob"], env=env)
    assert result.exit_code == 2
    assert conn.execute("select is_silenced, acknowledged_by from alerts.active_alerts"
                        ).fetchone() == (True, "alice")


def test_sigterm_stops_the_runner_cleanly(db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "tsfleet"), "alerts", "run", "--interval", "1s",
         "--no-refresh"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        events = []
        for line in process.stderr:
            events.append(json.loads(line)["event"])
            if events[-1] == "cycle":
                break
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    events += [json.loads(line)["event"] for line in err.splitlines()]
    assert process.returncode == 0
    # The signal may land mid-cycle: that cycle finishes (and logs) before the runner stops.
    assert events[-1] == "stopped"
    assert "stopping" in events[events.index("cycle") + 1:]


def test_a_database_restart_loses_no_transition_and_duplicates_no_notification() -> None:
    from loader.devdb.cluster import start_local_cluster

    cluster = start_local_cluster(log=quiet)
    try:
        with psycopg.connect(cluster.url, autocommit=True) as admin:
            admin.execute("create database tsfleet")
        url = cluster.url.rsplit("/", 1)[0] + "/tsfleet"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("set client_min_messages = warning")
            conn.execute("create extension if not exists timescaledb")
        migrate.apply(url)
        with Receiver() as receiver:
            cfg = RunnerConfig(database_url=url, sinks=[WebhookSink(receiver.url)],
                               interval=timedelta(seconds=0.2), retry_base=timedelta(0),
                               reconnect_max=timedelta(seconds=1))
            logged: list[str] = []
            the_runner = Runner(cfg, log=lambda event, **_f: logged.append(event))
            thread = threading.Thread(target=the_runner.run, daemon=True)
            with psycopg.connect(url, autocommit=True) as conn:
                battery_rule(conn)
                reading(conn, "bat-1", SOC, datetime.now(timezone.utc), 10)
            thread.start()
            assert wait_until(lambda: len(receiver.posts()) == 1)
            cluster.restart(downtime_s=1.5)
            assert wait_until(lambda: "database_unavailable" in logged)
            with psycopg.connect(url, autocommit=True) as conn:
                reading(conn, "bat-1", SOC, datetime.now(timezone.utc), 90)
            assert wait_until(lambda: len(receiver.posts()) >= 2)
            cluster.restart(downtime_s=0.5)
            with psycopg.connect(url, autocommit=True) as conn:
                reading(conn, "bat-1", SOC, datetime.now(timezone.utc), 5)
            assert wait_until(lambda: len(receiver.posts()) >= 3)
            assert wait_until(lambda: logged.count("cycle") > 3 + logged.count("connected"))
            the_runner.stop()
            thread.join(30)
            statuses = [p["status"] for p in receiver.posts()]
            ids = [p["notification_id"] for p in receiver.posts()]
        assert statuses == ["firing", "resolved", "firing"]
        assert len(set(ids)) == 3
        with psycopg.connect(url, autocommit=True) as conn:
            undelivered = conn.execute("select count(*) from alerts.deliveries"
                                       " where delivered_at is null").fetchone()[0]
        assert undelivered == 0
        assert "connected" in logged[logged.index("database_unavailable"):]
    finally:
        cluster.stop()


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


def test_a_runner_may_leave_resolved_notifications_out(db_url: str,
                                                       conn: psycopg.Connection) -> None:
    battery_rule(conn)
    reading(conn, "bat-1", SOC, T0, 10)
    with Receiver() as receiver:
        sinks = [WebhookSink(receiver.url)]
        assert runner(db_url, sinks, T0, send_resolved=False).run(once=True) == 0
        reading(conn, "bat-1", SOC, T0 + minutes(1), 90)
        assert runner(db_url, sinks, T0 + minutes(1), send_resolved=False).run(once=True) == 0
        assert [p["status"] for p in receiver.posts()] == ["firing"]
    assert conn.execute("select count(*) from alerts.deliveries where delivered_at is null"
                        ).fetchone()[0] == 0


def test_cli_history_shows_who_what_when_and_how_long(db_url: str,
                                                      conn: psycopg.Connection) -> None:
    battery_rule(conn)
    now = datetime.now(timezone.utc)
    reading(conn, "bat-1", SOC, now - minutes(10), 10)
    refresh_rollups(conn)
    conn.execute("select alerts.evaluate(%s)", [now - minutes(10)])
    reading(conn, "bat-1", SOC, now - minutes(4), 90)
    refresh_rollups(conn)
    conn.execute("select alerts.evaluate(%s)", [now - minutes(4)])
    result = CliRunner().invoke(main, ["alerts", "history", "--json", "--rule", "low_battery"],
                                env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    [episode] = json.loads(result.output)
    assert episode["state"] == "resolved" and episode["subject"] == "bat-1"
    assert episode["firing_duration"] == "0:06:00"
    assert episode["notification_count"] == 2
