"""`tsfleet simulate`: deterministic output, written through the load path, and every planted
anomaly caught by the rule that should catch it (live evaluation and backtest)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from click.testing import CliRunner

from loader import simulate as sim
from loader.cli import main
from tests import nats_support
from tests.consume_support import STREAM, SUBJECT, running_consumer
from tests.nats_support import NatsServer, add_stream, stream_messages

nats_binary = nats_support.nats_binary
nats_server = nats_support.nats_server

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)
UNTIL = T0 + timedelta(hours=27)  # a day of baseline, then three hours of anomalies
# The rule (seeded in 0061) that must catch each planted anomaly.
EXPECTED_RULE = {
    "battery drain": "low_battery",
    "temperature spike": "temperature_out_of_range",
    "humidity drift": "humidity_drift",
    "silent device": "stale_device",
    "bad quality flags": "repeated_quality_anomalies",
}


def run(*args: str, url: str | None = None) -> tuple[int, str, bytes]:
    env = {"DATABASE_URL": url} if url else {}
    result = CliRunner().invoke(main, ["simulate", *args], env=env)
    return result.exit_code, result.output, result.stdout_bytes


def printed(*args: str) -> bytes:
    code, output, data = run(*args, "--out", "-")
    assert code == 0, output
    return data


@pytest.fixture(scope="module")
def simulated_db(server, template_db):
    """One database holding the simulated range (module scope: the write takes seconds)."""
    from loader.db import with_database
    from tests.conftest import drop_database, unique_name

    name = unique_name("tsfleet_sim")
    server.janitor(name, template=template_db).init()
    url = with_database(server.url, name)
    code, output, _ = run("--start", sim.iso(T0), "--until", sim.iso(UNTIL), "--json", url=url)
    assert code == 0, output
    yield url, json.loads(output)
    drop_database(server, name)


# -- determinism ------------------------------------------------------------------------------

def test_same_seed_and_start_give_identical_bytes_and_another_seed_does_not() -> None:
    args = ("--start", "2026-03-01T00:00:00Z", "--until", "2026-03-01T02:00:00Z")
    first = printed(*args, "--seed", "7")
    assert first == printed(*args, "--seed", "7")
    assert first != printed(*args, "--seed", "8")
    lines = first.decode().splitlines()
    assert len(lines) == 121 * len(sim.FLEET)  # every device, every minute, both ends included
    assert len({json.loads(line)["messageId"] for line in lines}) == len(lines)


def test_the_range_may_be_cut_anywhere_and_the_start_off_the_grid() -> None:
    """Readings depend on (seed, device, time) and the anchor alone, not on batch bounds."""
    simulation = sim.Simulation(seed=3, t0=T0 - timedelta(seconds=17))
    assert simulation.t0 == T0  # the first grid point at or after the start
    end = T0 + timedelta(hours=26)
    whole = sim.readings_between(simulation, None, end)
    middle = T0 + timedelta(hours=25, minutes=7, seconds=30)
    parts = (sim.readings_between(simulation, None, middle)
             + sim.readings_between(simulation, middle, end))
    assert parts == whole
    later_start = sim.Simulation(seed=3, t0=T0 + timedelta(hours=1))
    assert sim.readings_between(later_start, None, end) != whole[len(sim.FLEET) * 60 * 2:]


def test_anomalies_are_where_the_timeline_says_and_nowhere_else() -> None:
    simulation = sim.Simulation(seed=1, t0=T0)
    readings = sim.readings_between(simulation, None, UNTIL)
    onset = T0 + sim.ONSET

    def series(device: str, metric: str, after: datetime | None = None) -> list[float]:
        return [r.value for r in readings if r.device.device_key == device and r.metric == metric
                and (after is None or r.recorded_at >= after)]

    normal = [r for r in readings if r.recorded_at < onset]
    assert all(5 < r.value < 35 for r in normal if r.metric == "temperature_c")
    assert all(r.value > 25 for r in normal if r.metric == "StateOfChargePercentage")
    assert all(r.quality is None for r in normal)
    assert min(series("bat-02", "StateOfChargePercentage", onset)) < 20
    assert min(series("bat-01", "StateOfChargePercentage")) > 25
    assert max(series("gh-02", "temperature_c", T0 + sim.SPIKE_AT)) > 40
    assert max(series("gh-01", "temperature_c")) < 30
    assert not [r for r in readings if r.device.device_key == "gh-04" and r.recorded_at >= onset]
    flagged = {(r.device.device_key, r.metric) for r in readings if r.quality is not None}
    assert flagged == {("gh-05", "humidity_pct")}


def test_out_prints_the_flagged_readings_as_csv_after_the_messages() -> None:
    data = printed("--start", "2026-03-01T00:00:00Z", "--until", "2026-03-02T00:05:00Z")
    messages, _, flagged = data.decode().partition("# flagged readings (tsfleet load csv)\n")
    rows = flagged.splitlines()
    assert rows[0] == "time,device,metric,value,quality"
    assert len(rows) == 1 + 6 and all(",gh-05,humidity_pct," in r for r in rows[1:])
    last = [json.loads(line) for line in messages.splitlines()][-len(sim.FLEET) + 1:]
    assert {m["deviceId"] for m in last} == {"gh-01", "gh-02", "gh-03", "gh-05", "bat-01",
                                             "bat-02", "bat-03"}  # gh-04 is silent
    assert next(m for m in last if m["deviceId"] == "gh-05")["metrics"].keys() == {
        "temperature_c"}


def test_usage_errors_exit_2() -> None:
    assert run("--follow", "--until", "2026-03-01T00:00Z")[0] == 2
    assert run("--start", "2026-03-02T00:00Z", "--until", "2026-03-01T00:00Z", "--out", "-")[
        0] == 2
    assert run("--interval", "0s", "--out", "-")[0] == 2
    assert run("--start", "yesterday", "--out", "-")[0] == 2


# -- the database ------------------------------------------------------------------------------

def test_written_through_the_load_path_once(simulated_db) -> None:
    url, summary = simulated_db
    simulation = sim.Simulation(seed=1, t0=T0)
    expected = sim.readings_between(simulation, None, UNTIL)
    assert summary["rows_inserted"] == summary["readings"] == len(expected)
    with psycopg.connect(url) as conn:
        stored = conn.execute(
            "select count(*), count(*) filter (where quality = 'suspect'),"
            " count(distinct device_id) from telemetry.readings").fetchone()
        batches = conn.execute(
            "select source_kind, status from ingest.batches order by batch_id").fetchall()
        devices = conn.execute(
            "select d.device_key, d.device_type, t.tenant_key from telemetry.devices as d"
            " inner join telemetry.tenants as t using (tenant_id) order by 1").fetchall()
        hourly = conn.execute(
            "select sum(reading_count) from rollups.device_metrics_hourly").fetchone()
    assert stored == (len(expected), sum(r.quality is not None for r in expected), 8)
    assert batches == [("messages_jsonl", "committed"), ("generic_csv", "committed")]
    assert ("gh-05", "greenhouse-sensor", "demo-greenhouses") in devices
    assert ("bat-02", "battery-pack", "demo-energy") in devices
    assert hourly == (len(expected),)  # the rollups were refreshed by the load

    code, output, _ = run("--start", sim.iso(T0), "--until", sim.iso(UNTIL), "--json", url=url)
    assert code == 0, output
    again = json.loads(output)
    assert again["rows_inserted"] == 0 and again["rows_rejected"] == 0


def test_backtest_catches_each_planted_anomaly_on_its_device_only(simulated_db) -> None:
    url, _ = simulated_db
    code, output, _ = run("--start", sim.iso(T0), "--until", sim.iso(UNTIL), "--report",
                          "--json", url=url)
    assert code == 0, output
    caught = {c["anomaly"]: c for c in json.loads(output)["caught"]}
    assert set(caught) == set(EXPECTED_RULE)
    for anomaly in sim.ANOMALIES:
        found = caught[anomaly.name]
        assert found["rule"] == EXPECTED_RULE[anomaly.name], found
        assert found["device"] == anomaly.device_key
        fired = datetime.fromisoformat(found["fired_at"].replace("Z", "+00:00"))
        assert T0 + anomaly.starts_after <= fired <= UNTIL, found
        assert found["other_devices"] == [], found


def test_stepping_evaluate_live_raises_the_five_alerts(simulated_db) -> None:
    """The runner's path: alerts.evaluate every 5 minutes across the anomalies' onset."""
    url, _ = simulated_db
    with psycopg.connect(url, autocommit=True) as conn:
        at = T0 + sim.ONSET - timedelta(minutes=30)
        while at <= UNTIL:
            conn.execute("select * from alerts.evaluate(%s)", [at])
            at += timedelta(minutes=5)
        fired = conn.execute(
            "select r.rule_key, e.labels ->> 'device', min(e.fired_at)"
            " from alerts.episodes as e inner join alerts.rules as r using (rule_id)"
            " where e.fired_at is not null group by 1, 2 order by 1, 2").fetchall()
    by_rule: dict[str, set[str]] = {}
    for rule, device, _ in fired:
        by_rule.setdefault(rule, set()).add(device)
    for anomaly in sim.ANOMALIES:
        assert by_rule.get(EXPECTED_RULE[anomaly.name]) == {anomaly.device_key}, fired
    assert set(by_rule) == set(EXPECTED_RULE.values()), fired  # nothing else fired


def test_report_fails_when_the_range_is_too_short_to_plant_anything(db_url: str) -> None:
    code, output, _ = run("--start", "2026-03-01T00:00Z", "--until", "2026-03-01T02:00Z",
                          "--report", url=db_url)
    assert code == 1
    assert "(missed)" in output and "not caught: battery drain" in output


@pytest.mark.parametrize("minute", [1, 27, 58])
def test_the_default_backfill_catches_every_anomaly_whatever_the_minute_of_now(
        db_url: str, minute: int) -> None:
    """The drift rule judges complete hours and then waits its `for`: an anomaly begun less
    than 2.5 hours before --until can be missed, depending on the minute (seen at :27)."""
    until = T0 + timedelta(days=3, hours=5, minutes=minute)
    code, output, _ = run("--until", sim.iso(until), "--report", url=db_url)
    assert code == 0, output
    assert "(missed)" not in output


def test_now_relative_by_default(db_url: str) -> None:
    code, output, _ = run("--backfill", "30m", "--json", url=db_url)
    assert code == 0, output
    summary = json.loads(output)
    until = datetime.fromisoformat(summary["until"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - until).total_seconds()) < 120
    with psycopg.connect(db_url) as conn:
        newest = conn.execute("select max(recorded_at) from telemetry.readings").fetchone()[0]
    assert newest == until


# -- NATS ----------------------------------------------------------------------------------------

def test_nats_publishes_the_same_messages_and_the_consumer_loads_them(
        nats_server: NatsServer, db_url: str) -> None:
    add_stream(nats_server.url, STREAM, [SUBJECT])
    args = ("--start", "2026-03-01T00:00Z", "--until", "2026-03-01T00:30Z", "--seed", "5")
    code, output, _ = run(*args, "--nats", nats_server.url)
    assert code == 0, output
    stored = stream_messages(nats_server.url, SUBJECT)
    expected = [json.loads(line) for line in printed(*args).decode().splitlines()]
    assert [json.loads(data) for _, data in stored] == expected
    assert [h.get("Nats-Msg-Id") for h, _ in stored] == [m["messageId"] for m in expected]

    with running_consumer(nats_server.url, db_url, "--stop-when-drained", "--max-wait",
                          "100ms") as consumer:
        assert consumer.wait() == 0, consumer.output()
    with psycopg.connect(db_url) as conn:
        count = conn.execute("select count(*) from telemetry.readings").fetchone()[0]
    assert count == sum(len(m["metrics"]) for m in expected)


@pytest.mark.community
def test_report_of_a_range_ending_now_sees_rollups_inside_the_policy_window(
        db_url: str) -> None:
    """`make demo`'s case on Community: a range ending now lies in the rollups' refresh-policy
    window, so the load's queue leaves it to the policies; --report refreshes the range first
    (as the runner refreshes before it evaluates), or the drift rule, which reads complete
    hours of rollups, sees none."""
    with psycopg.connect(db_url, autocommit=True) as conn:  # the template pauses policies
        conn.execute("select public.alter_job(j.job_id, scheduled => true)"
                     " from timescaledb_information.jobs as j"
                     " where j.proc_name = 'policy_refresh_continuous_aggregate'")
    code, output, _ = run("--report", "--json", url=db_url)
    assert code == 0, output
    caught = {c["anomaly"]: c for c in json.loads(output)["caught"]}
    assert {name: c["rule"] for name, c in caught.items()} == EXPECTED_RULE, caught
