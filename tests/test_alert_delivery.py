"""Delivery semantics: no double send past a lease, fenced outcomes, dead letters, retries up
to a maximum age, no head-of-line blocking, and lock timeouts as skipped steps."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import psycopg
import pytest
from click.testing import CliRunner

from loader.alerts.runner import Runner, RunnerConfig
from loader.alerts.sinks import WebhookSink, is_retryable
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

SOC = "StateOfChargePercentage"


class Log:
    """Collects the runner's log events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __call__(self, event: str, level: str = "info", **fields: object) -> None:
        self.events.append((event, fields))

    def names(self) -> list[str]:
        return [e for e, _ in self.events]


def batteries(conn: psycopg.Connection, count: int, value: float = 10) -> None:
    only_rules(conn, "low_battery")
    set_rule(conn, "low_battery", for_interval=timedelta(0), keep_firing_for=timedelta(0))
    for i in range(count):
        device(conn, f"bat-{i}", "battery")
        reading(conn, f"bat-{i}", SOC, T0, value)
    refresh_rollups(conn)


def make_runner(url: str, sink, at=T0, log=None, **config: object) -> Runner:
    config.setdefault("retry_base", timedelta(0))
    cfg = RunnerConfig(database_url=url, sinks=[sink], refresh=False,
                       **config)  # type: ignore[arg-type]
    return Runner(cfg, log=log or Log(), clock=lambda: at)


def states(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("select transition, state, last_status, dead_reason"
                        " from alerts.delivery_status order by notification_id").fetchall()


def test_status_classes() -> None:
    assert [is_retryable(s) for s in (None, 408, 429, 500, 502, 503)] == [True] * 6
    assert [is_retryable(s) for s in (400, 401, 403, 404, 409, 410, 413, 422)] == [False] * 8


def test_a_slow_receiver_and_a_short_lease_never_make_a_second_runner_send_again(
    db_url: str, conn: psycopg.Connection,
) -> None:
    batteries(conn, 6)
    # 6 x 1 s = 6 s for a batch, lease 5 s: without renewal the lease would run out mid-batch
    # and the other runner, cycling every 0.3 s, would claim and send the rest again.
    with Receiver(delay_s=1.0) as receiver:
        sink = WebhookSink(receiver.url, timeout=1.6)
        runners = [make_runner(db_url, sink, lease=timedelta(seconds=5),
                               interval=timedelta(seconds=0.3)) for _ in range(2)]
        threads = [threading.Thread(target=r.run, daemon=True) for r in runners]
        for t in threads:
            t.start()
        assert wait_until(lambda: len(receiver.received) >= 6, timeout=60)
        threading.Event().wait(5.5)  # past another lease: nothing more may come
        for r in runners:
            r.stop()
        for t in threads:
            t.join(30)
        ids = [b["notification_id"] for b in receiver.received]
    assert sorted(ids) == [1, 2, 3, 4, 5, 6]
    assert conn.execute("select count(*) from alerts.delivery_status where state = 'delivered'"
                        ).fetchone()[0] == 6


def test_an_outcome_is_recorded_only_by_the_claim_that_holds_the_lease(
    conn: psycopg.Connection,
) -> None:
    batteries(conn, 1)
    conn.execute("select alerts.evaluate(%s)", [T0])
    conn.execute("select alerts.register_sink('s', 'webhook')")
    conn.execute("update alerts.sinks set first_notification_id = 1, enqueued_through = 0")
    [(nid, old)] = conn.execute("select notification_id, lease_token"
                                " from alerts.claim_deliveries('s', 'r1', 10, '1 minute')")
    conn.execute("update alerts.deliveries set lease_until = clock_timestamp() - interval '1s'")
    assert conn.execute("select alerts.renew_deliveries('s', %s, '1 minute')", [old]
                        ).fetchone()[0] == nid  # expired but not taken over: renewable
    conn.execute("update alerts.deliveries set lease_until = clock_timestamp() - interval '1s'")
    [(_, new)] = conn.execute("select notification_id, lease_token"
                              " from alerts.claim_deliveries('s', 'r2', 10, '1 minute')")
    assert new != old
    assert conn.execute("select alerts.renew_deliveries('s', %s, '1 minute')", [old]
                        ).fetchall() == []
    assert conn.execute("select alerts.record_delivery('s', %s, %s, 'permanent', 400)",
                        [nid, old]).fetchone() == (None,)
    assert conn.execute("select alerts.record_delivery('s', %s, %s, 'delivered')",
                        [nid, new]).fetchone() == ("delivered",)
    assert conn.execute("select leased_by, dead_at from alerts.deliveries").fetchone() == (
        None, None)


def test_a_4xx_is_dead_lettered_at_once_with_status_and_answer(
    db_url: str, conn: psycopg.Connection,
) -> None:
    batteries(conn, 1)
    answer = lambda _body: (422, '{"error": "field severity is not allowed here"}')  # noqa: E731
    log = Log()
    with Receiver(answer=answer) as receiver:
        sink = WebhookSink(receiver.url)
        assert make_runner(db_url, sink, log=log).run(once=True) == 1
        assert make_runner(db_url, sink).run(once=True) == 0
        assert len(receiver.received) == 1  # never sent again
    assert "dead_lettered" in log.names()
    row = conn.execute("select state, dead_reason, last_status, last_response, attempts"
                       " from alerts.delivery_status").fetchone()
    assert row[:3] == ("dead", "permanent", 422)
    assert "severity is not allowed" in row[3] and row[4] == 1
    result = CliRunner().invoke(main, ["alerts", "deliveries", "--failed", "--json"],
                                env={"DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    [dead] = json.loads(result.output)
    assert dead["last_status"] == 422 and dead["state"] == "dead"
    text = CliRunner().invoke(main, ["alerts", "deliveries", "--failed"],
                              env={"DATABASE_URL": db_url})
    assert "422" in text.output and "permanent" in text.output


def test_408_429_5xx_and_timeouts_are_retried_then_dead_after_the_maximum_age(
    db_url: str, conn: psycopg.Connection,
) -> None:
    batteries(conn, 1)
    statuses = iter([408, 429, 503])
    with Receiver(answer=lambda _b: (next(statuses), "busy")) as receiver:
        sink = WebhookSink(receiver.url)
        for expected in (408, 429, 503):
            assert make_runner(db_url, sink).run(once=True) == 1
            assert states(conn) == [("firing", "retrying", expected, None)]
    with Receiver(delay_s=1.5) as slow:
        sink = WebhookSink(slow.url, timeout=0.3)
        conn.execute("select alerts.register_sink(%s, 'webhook')", [sink.name])
        conn.execute("update alerts.sinks set first_notification_id = 1, enqueued_through = 0"
                     " where sink_name = %s", [sink.name])
        assert make_runner(db_url, sink).run(once=True) == 1
        error = conn.execute("select last_error from alerts.delivery_status where sink_name"
                             " = %s", [sink.name]).fetchone()[0]
        assert "timed out" in error
        # Past the maximum age, the next retryable failure gives up.
        assert make_runner(db_url, sink, retry_max_age=timedelta(0)).run(once=True) == 1
        row = conn.execute("select state, dead_reason, attempts from alerts.delivery_status"
                           " where sink_name = %s", [sink.name]).fetchone()
    assert row == ("dead", "max_age", 2)


def test_a_resolution_goes_out_even_when_the_firing_notification_is_dead(
    db_url: str, conn: psycopg.Connection,
) -> None:
    batteries(conn, 1)
    answer = lambda body: (400, "no") if body["status"] == "firing" else (200, "{}")  # noqa: E731
    with Receiver(answer=answer) as receiver:
        sink = WebhookSink(receiver.url)
        assert make_runner(db_url, sink).run(once=True) == 1
        reading(conn, "bat-0", SOC, T0 + minutes(1), 90)
        refresh_rollups(conn)
        assert make_runner(db_url, sink, at=T0 + minutes(1)).run(once=True) == 0
        assert [p["status"] for p in receiver.posts()] == ["resolved"]
    assert states(conn) == [("firing", "dead", 400, "permanent"),
                            ("resolved", "delivered", None, None)]


def test_a_retrying_firing_never_holds_back_its_resolution_and_is_superseded_by_it(
    db_url: str, conn: psycopg.Connection,
) -> None:
    batteries(conn, 1)
    answer = lambda body: (503, "") if body["status"] == "firing" else (200, "{}")  # noqa: E731
    with Receiver(answer=answer) as receiver:
        sink = WebhookSink(receiver.url)
        # a long first retry delay: the firing one waits while the resolution is due
        slow_retry = {"retry_base": timedelta(hours=1)}
        make_runner(db_url, sink, **slow_retry).run(once=True)
        reading(conn, "bat-0", SOC, T0 + minutes(1), 90)
        refresh_rollups(conn)
        make_runner(db_url, sink, at=T0 + minutes(1), **slow_retry).run(once=True)
        conn.execute("update alerts.deliveries set next_attempt_at = now()")
        make_runner(db_url, sink, at=T0 + minutes(2)).run(once=True)
        assert len(receiver.received) == 2  # the stale firing one is not sent after it
    assert [s[:2] for s in states(conn)] == [("firing", "superseded"),
                                              ("resolved", "delivered")]


def test_a_lock_timeout_is_a_skipped_step_not_a_database_outage(
    db_url: str, conn: psycopg.Connection,
) -> None:
    batteries(conn, 1)
    log = Log()
    with Receiver() as receiver:
        sink = WebhookSink(receiver.url)
        the_runner = Runner(RunnerConfig(database_url=db_url, sinks=[sink], refresh=True,
                                         lock_timeout=timedelta(milliseconds=200)),
                            log=log, clock=lambda: T0)
        # A concurrent refresh or evaluation holds what the runner needs.
        with psycopg.connect(db_url) as other:
            other.execute("lock table telemetry.readings in access exclusive mode")
            other.execute("select pg_advisory_xact_lock(7461, 1)")
            stats = the_runner.cycle()
            other.rollback()
        assert "refresh" in stats.skipped and "evaluation" in stats.skipped
        assert "delivery" in stats.skipped
        assert receiver.posts() == []
        stats = the_runner.cycle()  # same connection, nothing skipped now
        the_runner.close()
        assert stats.skipped == [] and stats.delivered == 1
    names = log.names()
    assert {"refresh_skipped", "evaluation_skipped", "delivery_skipped"} <= set(names)
    assert "database_unavailable" not in names and names.count("connected") == 1
    skipped = dict(log.events)["evaluation_skipped"]
    assert skipped["reason"] == "LockNotAvailable" and skipped["sqlstate"] == "55P03"


def test_a_lease_shorter_than_three_timeouts_is_refused() -> None:
    sink = WebhookSink("http://127.0.0.1:9/", timeout=10)
    try:
        RunnerConfig(database_url="postgresql://x", sinks=[sink], lease=timedelta(seconds=20))
    except ValueError as exc:
        assert "3 x the HTTP timeout" in str(exc)
    else:
        raise AssertionError("a 20 s lease with a 10 s timeout was accepted")
    result = CliRunner().invoke(main, ["alerts", "run", "--once", "--webhook", "http://x/",
                                       "--lease", "20s", "--timeout", "10s"],
                                env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/x"})
    assert result.exit_code == 2 and "--lease" in result.output


@pytest.mark.community
def test_the_runner_waits_its_refresh_turn_behind_a_load_then_skips(
    db_url: str, conn: psycopg.Connection,
) -> None:
    """Community: a load's refresh holds the turn; the runner's refresh waits for it (no
    refused refresh, no warning) up to its lock_timeout, then that step is skipped."""
    batteries(conn, 1)
    log = Log()
    the_runner = Runner(RunnerConfig(database_url=db_url, sinks=[], refresh=True,
                                     lock_timeout=timedelta(milliseconds=300)),
                        log=log, clock=lambda: T0)
    with psycopg.connect(db_url, autocommit=True) as other:
        assert other.execute("select _tsfleet.begin_refresh_turn()").fetchone() == (True,)
        stats = the_runner.cycle()
        other.execute("select _tsfleet.end_refresh_turn()")
    assert stats.skipped == ["refresh"]
    assert the_runner.cycle().skipped == []  # the turn is free again
    the_runner.close()
    skipped = dict(log.events)["refresh_skipped"]
    assert skipped["reason"] == "LockNotAvailable" and skipped["sqlstate"] == "55P03"
    assert "refresh_failed" not in log.names()
