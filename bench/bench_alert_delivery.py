"""Alert delivery: notifications/s of one and two runners to a receiver answering in 0 and 50 ms,
and draining a backlog of 10,000 with 10 % permanently refused."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg

from bench.harness import BenchContext, Result
from loader.alerts.runner import Runner, RunnerConfig
from loader.alerts.sinks import WebhookSink
from tests.alerts_support import Receiver

# Resolved episodes with one resolved notification each: what a busy evaluation leaves in the
# outbox. Closed episodes keep alerts.evaluate() (which every cycle runs) from touching them.
BACKLOG_SQL = """
with
rule as (select rule_id from alerts.rules where rule_key = 'low_battery'),
new_episodes as (
    insert into alerts.episodes (rule_id, identity_hash, labels, state, value, started_at,
                                 fired_at, cleared_at, ended_at, last_held_at,
                                 last_evaluated_at)
    select r.rule_id, md5(%(tag)s || g), jsonb_build_object(
               'rule', 'low_battery', 'device', %(tag)s || '-' || g, 'tenant', 'default',
               'severity', 'warning', 'metric', 'StateOfChargePercentage', 'n', g),
           'resolved', 10, now() - interval '10 minutes', now() - interval '10 minutes',
           now() - interval '1 minute', now(), now() - interval '1 minute', now()
    from rule as r cross join generate_series(1, %(count)s) as g
    returning episode_id, rule_id, labels, fired_at, ended_at
)
insert into alerts.notifications (episode_id, rule_id, transition, payload, created_at)
select e.episode_id, e.rule_id, 'resolved', jsonb_build_object(
           'status', 'resolved', 'transition', 'resolved', 'episode_id', e.episode_id,
           'labels', e.labels || '{"alertname": "low_battery"}',
           'annotations', jsonb_build_object('summary', 'Battery ' || (e.labels ->> 'device')),
           'value', 10, 'startsAt', e.fired_at, 'endsAt', e.ended_at, 'evaluatedAt', e.ended_at),
       e.ended_at
from new_episodes as e
"""


def quiet(*_args: object, **_fields: object) -> None:
    pass


def _deliver(url: str, count: int, runners: int, delay_s: float = 0.0,
             refuse_every: int = 0) -> tuple[float, int, int, int]:
    """Queue `count` notifications for a new receiver and let `runners` runners deliver them
    (one cycle each, at once, claiming 25 at a time).
    Returns (seconds, posts received, duplicates, dead letters)."""

    def answer(body: dict) -> tuple[int, str]:
        if refuse_every and body["labels"]["n"] % refuse_every == 0:
            return 422, '{"error": "rejected by the benchmark"}'
        return 200, "{}"

    with Receiver(delay_s=delay_s, answer=answer) as receiver:
        sink = WebhookSink(receiver.url, timeout=5)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("select alerts.register_sink(%s, 'webhook')", [sink.name])
            conn.execute(BACKLOG_SQL, {"tag": f"b{time.monotonic_ns()}", "count": count})
        config = {"database_url": url, "sinks": [sink], "refresh": False,
                  "lease": timedelta(seconds=30), "batch_size": 25}
        workers = [Runner(RunnerConfig(**config), log=quiet)  # type: ignore[arg-type]
                   for _ in range(runners)]
        threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
        ids = [b["notification_id"] for b in receiver.received]
        with psycopg.connect(url, autocommit=True) as conn:
            dead, pending = conn.execute(
                "select count(*) filter (where state = 'dead'),"
                " count(*) filter (where state not in ('dead', 'delivered'))"
                " from alerts.delivery_status where sink_name = %s", [sink.name]).fetchone()
    assert pending == 0, f"{pending} deliveries left undelivered"
    return seconds, len(ids), len(ids) - len(set(ids)), int(dead)


def run(ctx: BenchContext) -> list[Result]:
    fast_count = ctx.scaled(2000, minimum=50)
    slow_count = ctx.scaled(400, minimum=20)
    backlog = ctx.scaled(10_000, minimum=100)
    results: list[Result] = []
    with ctx.database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            # Nothing to evaluate: every cycle's alerts.evaluate() stays cheap and constant.
            conn.execute("update alerts.rules set is_enabled = false")
        for delay_ms, count in ((0, fast_count), (50, slow_count)):
            one_s, one_posts, one_dup, _ = _deliver(url, count, 1, delay_ms / 1000)
            two_s, two_posts, two_dup, _ = _deliver(url, count, 2, delay_ms / 1000)
            one_rate, two_rate = one_posts / one_s, two_posts / two_s
            results += [
                Result(f"1 runner, receiver {delay_ms} ms ({count} notif.)", one_rate,
                       "notif/s"),
                Result(f"2 runners, receiver {delay_ms} ms", two_rate, "notif/s",
                       baseline=one_rate, baseline_name=f"1 runner, {delay_ms} ms, same run",
                       target="ratio >= 1 (no slower)" if delay_ms == 0 else "ratio ~ 2"),
                Result(f"duplicates, 1 / 2 runners, {delay_ms} ms", float(one_dup + two_dup),
                       "sends", target="0"),
            ]
        clean_s, _, _, _ = _deliver(url, backlog, 1)
        mixed_s, _, dup, dead = _deliver(url, backlog, 1, refuse_every=10)
        results += [
            Result(f"drain {backlog:,}, 10 % refused (422)", mixed_s, "s", baseline=clean_s,
                   baseline_name=f"drain {backlog:,}, none refused, same run",
                   target="ratio <= 1.1"),
            Result("dead-lettered of them", float(dead), "deliveries",
                   target=f"= {backlog // 10:,}"),
            Result("duplicates while draining", float(dup), "sends", target="0"),
        ]
    return results
