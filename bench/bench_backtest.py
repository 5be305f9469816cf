"""tsfleet alerts backtest of one 5-minute series over 80 days vs stepping alerts.evaluate."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import psycopg

from bench.bench_ingest import TSFLEET, timed
from bench.harness import BenchContext, Result, timed_ms
from loader.commands.alerts import alerts as alerts_group

STEP = timedelta(minutes=5)
END = datetime(2026, 6, 1, tzinfo=timezone.utc)
RULE_KEY = "bench_backtest_hot"

# One device, one temperature every 5 minutes: a daily cycle peaking at 32 C, so a rule on
# "above 30" fires and resolves once a day.
LOAD_SQL = [
    "insert into telemetry.devices (tenant_id, device_key) values (1, 'bench-bt-0001')",
    "insert into telemetry.metrics (metric_name) values ('temperature_c')",
    """
insert into ingest.batches (batch_id, source_kind, source_name, status)
values (1, 'bench', 'backtest', 'committed')
""",
    """
insert into telemetry.readings (recorded_at, device_id, metric_id, value, quality, batch_id)
select
    %(start)s::timestamptz + g * interval '5 minutes',
    1,
    1,
    20 + 12 * sin(2 * pi() * g / 288.0),
    'good',
    1
from generate_series(0, %(steps)s - 1) as g
""",
]

# The generic threshold kind (issue 13 item 2) when this tree has it, else the seeded
# temperature range rule (max 35 would never fire: lowered to 30).
THRESHOLD_RULE_SQL = """
insert into alerts.rules (rule_key, condition_kind, params)
values (%(rule)s, 'threshold', '{"metric": "temperature_c", "above": 30}')
"""
RANGE_RULE_SQL = """
insert into alerts.rules (rule_key, condition_kind, params)
select %(rule)s, r.condition_kind, r.params || '{"max": 30, "clear_max": 30}'
from alerts.rules as r where r.rule_key = 'temperature_out_of_range'
"""


def _load(url: str, days: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select public.alter_job(j.job_id, scheduled => false)"
                     " from timescaledb_information.jobs as j where j.job_id >= 1000")
        for statement in LOAD_SQL:
            conn.execute(statement, {"start": END - timedelta(days=days), "steps": days * 288})
        try:
            with conn.transaction():
                conn.execute(THRESHOLD_RULE_SQL, {"rule": RULE_KEY})
        except psycopg.errors.CheckViolation:
            conn.execute(RANGE_RULE_SQL, {"rule": RULE_KEY})
        # Only this rule, so that the loop below evaluates what the backtest replays.
        conn.execute("update alerts.rules set is_enabled = (rule_key = %s)", [RULE_KEY])
        conn.execute("vacuum analyze telemetry.readings")
        conn.execute("call rollups.refresh()")


def run(ctx: BenchContext) -> list[Result]:
    if "backtest" not in alerts_group.commands:
        print("  skipped: `tsfleet alerts backtest` is not in this tree (issue 13 item 5);"
              " this benchmark runs once it is")
        return []
    days = ctx.scaled(80, minimum=4)
    start = END - timedelta(days=days)
    steps = days * 288
    loop_steps = min(steps, ctx.scaled(2000, minimum=200))
    with ctx.database() as backtest_url, ctx.database() as loop_url:
        _load(backtest_url, days)
        _load(loop_url, days)
        command = [TSFLEET, "alerts", "backtest", "--rule", RULE_KEY, "--from", start.isoformat(),
                   "--to", END.isoformat(), "--step", "5m", "--json"]
        seconds, _, output = timed(command, {**os.environ, "DATABASE_URL": backtest_url})
        episodes = json.loads(output[output.index("["):])
        with psycopg.connect(loop_url, autocommit=True) as conn:
            at = [start + n * STEP for n in range(1, loop_steps + 1)]
            loop_ms = sum(timed_ms(lambda t=t: conn.execute(
                "select count(*) from alerts.evaluate(%s)", [t]).fetchone()) for t in at)
    loop_seconds = loop_ms / 1000 * steps / loop_steps
    how = ("all steps" if loop_steps == steps
           else f"the first {loop_steps:,} steps timed, scaled to all {steps:,}")
    return [
        Result(f"backtest, {days} days of one 5-min series, --step 5m", seconds, "s",
               loop_seconds, f"alerts.evaluate stepped every 5 min over the same days ({how})",
               "well under 10 s for 80 days"),
        Result("episodes the backtest found", float(len(episodes)), "episodes",
               target=f"about {days} (one a day)"),
    ]
