"""`tsfleet simulate`: a deterministic demo fleet with planted anomalies (loader/simulate.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from datetime import datetime, timedelta, timezone

import click
import psycopg

from loader import simulate as sim
from loader.alerts.durations import parse_duration
from loader.db import connect, redacted, resolve_url
from loader.ingest.rollup_refresh import call_refresh
from loader.options import database_url_option, json_option
from loader.stream.settings import DEFAULT_SUBJECT
from loader.tables import render


class _Duration(click.ParamType):
    """The operators' duration grammar (loader/alerts/durations.py): 30s, 5m, 26h, 1d."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            duration = parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if duration <= timedelta(0):
            self.fail(f"{value!r} must be more than zero", param, ctx)
        return duration


class _Time(click.ParamType):
    """An ISO time (UTC when it has no offset), or `now`."""

    name = "time"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text == "now":
            return datetime.now(timezone.utc)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is not an ISO time (e.g. 2026-03-01T12:00:00Z) or now",
                      param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


DURATION = _Duration()
TIME = _Time()


@click.command()
@database_url_option
@click.option("--seed", type=int, default=1, show_default=True,
              help="Same seed and same start: the same readings, byte for byte.")
@click.option("--start", type=TIME, metavar="TIME",
              help="First reading time, the anchor of the anomaly timeline "
                   "[default: --until minus --backfill].")
@click.option("--until", type=TIME, metavar="TIME",
              help="Last reading time [default: now]; not with --follow.")
@click.option("--backfill", type=DURATION, default="27h", show_default=True,
              metavar="DURATION",
              help="History before --until when --start is not given (27h: a day of "
                   "baseline for the drift rule, then three hours in which every anomaly is "
                   "caught: the drift rule needs up to 2.5 h, judging complete hours).")
@click.option("--interval", type=DURATION, default="1m", show_default=True, metavar="DURATION",
              help="Time between a device's readings (the grid they lie on).")
@click.option("--follow", is_flag=True,
              help="After the range, keep writing each interval's readings at now() until "
                   "SIGTERM or Ctrl-C (the compose demo).")
@click.option("--nats", "nats_servers", metavar="URLS",
              help="Publish to NATS JetStream (comma-separated URLs) instead of writing to "
                   "the database; `tsfleet consume nats` loads them.")
@click.option("--subject", default=DEFAULT_SUBJECT, show_default=True,
              help="Subject to publish to (with --nats).")
@click.option("--out", "out", type=click.File("wb"), metavar="FILE",
              help="Write the messages (JSON Lines, then the flagged readings as CSV) to FILE "
                   "or - instead of loading them.")
@click.option("--report", is_flag=True,
              help="After writing, backtest each planted anomaly's rules over the range and "
                   "print which alert caught it, on which device, when (exit 1 if one was "
                   "missed).")
@json_option
def simulate(database_url: str | None, seed: int, start: datetime | None,
             until: datetime | None, backfill: timedelta, interval: timedelta, follow: bool,
             nats_servers: str | None, subject: str, out, report: bool,
             as_json: bool) -> None:
    """Generate a demo fleet's readings, with planted anomalies, into tsfleet.

    Eight devices in two tenants: greenhouse sensors gh-01..gh-05 (temperature_c,
    humidity_pct) and battery packs bat-01..bat-03 (StateOfChargePercentage, voltage_v),
    one reading per metric every --interval. Planted, from the start (t0) on:

    \b
      t0+24h      bat-02 drains below 20 %            -> low_battery
      t0+25h30m   gh-02 at 45 C for 45 min, every 6h  -> temperature_out_of_range
      t0+24h      gh-03 humidity drifts +25 points    -> humidity_drift
      t0+24h      gh-04 goes silent                   -> stale_device
      t0+24h      gh-05 humidity flagged `suspect`    -> repeated_quality_anomalies

    Readings are written as `tsfleet load messages` writes them (flagged ones as `tsfleet
    load csv`), or published to NATS with --nats (where flags cannot be carried), or printed
    with --out. Message ids are fixed by seed, device and time: writing a range again changes
    nothing. The default (27 h of backfill ending now) shows every anomaly at once.

    Example:

    \b
        tsfleet simulate --report                      # the last 27 h, then where caught
        tsfleet simulate --follow                      # and keep going, every minute
        tsfleet simulate --start 2026-03-01T00:00Z --until 2026-03-02T03:00Z --seed 7
        tsfleet simulate --follow --nats nats://localhost:4222
    """
    if follow and until is not None:
        raise click.UsageError("--follow writes up to now and on: leave out --until")
    if out is not None and (follow or nats_servers or report):
        raise click.UsageError("--out prints the readings only: not with --follow, --nats "
                               "or --report")
    if report and nats_servers:
        raise click.UsageError("--report reads the database: not with --nats (the consumer "
                               "loads them later)")
    end = until or datetime.now(timezone.utc)
    first = start or end - backfill
    if first > end:
        raise click.UsageError(f"--start {sim.iso(first)} is after --until {sim.iso(end)}")
    try:
        simulation = sim.Simulation(seed=seed, t0=first, interval=interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    end = sim.align_down(end, interval)
    readings = sim.readings_between(simulation, None, end)
    if out is not None:
        out.write(sim.render(simulation, readings))
        return

    url = None if nats_servers else resolve_url(database_url)

    def write(batch: list[sim.Reading]) -> dict[str, int]:
        if nats_servers:
            try:
                count = asyncio.run(sim.publish_nats(nats_servers, subject, seed, batch))
            except Exception as exc:
                raise click.ClickException(
                    f"publishing to {nats_servers} ({subject}) failed: {exc!r}; is a JetStream "
                    "stream capturing the subject? (`tsfleet consume nats` creates TELEMETRY, "
                    "the compose stack's nats-streams too)") from exc
            return {"readings": len(batch), "published": count}
        assert url is not None
        try:
            written = sim.write_database(url, simulation, batch, connect)
        except psycopg.Error as exc:
            raise click.ClickException(f"writing to {redacted(url)} failed: {exc}") from exc
        if written.failed:
            raise click.ClickException("loading failed: " + "; ".join(written.failed))
        return {"readings": written.readings, "messages": written.messages,
                "rows_inserted": written.rows_inserted,
                "rows_duplicate": written.rows_duplicate,
                "rows_rejected": written.rows_rejected}

    counts = write(readings)
    summary = {"seed": seed, "start": sim.iso(simulation.t0), "until": sim.iso(end),
               "interval_s": interval.total_seconds(), **counts}
    if as_json and not report:
        click.echo(json.dumps(summary))
    elif not as_json:
        click.echo(f"simulate: seed {seed}, {sim.iso(simulation.t0)} .. {sim.iso(end)} every "
                   f"{_text(interval)}: " + ", ".join(f"{v} {k.replace('_', ' ')}"
                                                      for k, v in counts.items()))
    if report:
        assert url is not None
        _report(url, simulation, end, summary, as_json)
    if follow:
        _follow(simulation, end, write, as_json)


def _report(url: str, simulation: sim.Simulation, end: datetime, summary: dict[str, object],
            as_json: bool) -> None:
    try:
        with connect(url, autocommit=True) as conn:
            # The range's rollups first, policy window included: a range ending now lies in
            # it, where the load leaves the refresh to the policies, and a rule that reads
            # rollups (humidity drift) would see none. The runner refreshes before it
            # evaluates, so the backtest then sees what the runner sees.
            row = conn.execute("select _tsfleet.can_refresh_rollups()").fetchone()
            refreshed = bool(row and row[0])
            if refreshed:
                call_refresh(conn, "call rollups.refresh(%s, %s)", [simulation.t0, end])
            found = sim.caught(conn, simulation, end)
    except psycopg.Error as exc:
        raise click.ClickException(f"backtesting the planted anomalies failed: {exc}") from exc
    if as_json:
        click.echo(json.dumps({**summary, "caught": [c.as_dict() for c in found]}, indent=2))
    else:
        click.echo("planted anomalies, and where the alert rules caught them (alerts.backtest "
                   "every 5m):")
        click.echo(render(
            ["anomaly", "device", "metric", "from", "caught by", "fired at", "peak", "others"],
            [(c.anomaly.name, c.anomaly.device_key, c.anomaly.metric,
              sim.iso(simulation.anomaly_start(c.anomaly)),
              c.rule_key or "(missed)", sim.iso(c.fired_at) if c.fired_at else "-",
              None if c.peak_value is None else round(c.peak_value, 1),
              ",".join(c.other_devices) or "-") for c in found]))
    missed = [c.anomaly.name for c in found if c.fired_at is None]
    if missed:
        raise click.ClickException(
            f"not caught: {', '.join(missed)} (is the range long enough? the anomalies start "
            "24 h after --start; are the rules enabled? `tsfleet alerts rules`"
            + ("" if refreshed else "; this role cannot refresh the rollups,"
               " so rules that read them see only what the refresh policies materialized:"
               " run --report as the owner") + ")")


def _follow(simulation: sim.Simulation, written_until: datetime, write, as_json: bool) -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _num, _frame: stop.set())
    step = simulation.interval
    while not stop.is_set():
        next_tick = written_until + step
        wait = (next_tick - datetime.now(timezone.utc)).total_seconds()
        if wait > 0 and stop.wait(wait):
            break
        now = sim.align_down(datetime.now(timezone.utc), step)
        batch = sim.readings_between(simulation, written_until, now)
        if not batch:
            continue
        try:
            counts = write(batch)
        except click.ClickException as exc:  # a live demo outlives a database restart
            click.echo(f"simulate: {exc.message}; retrying at the next interval", err=True)
            continue
        written_until = now
        if as_json:
            click.echo(json.dumps({"until": sim.iso(now), **counts}))
        else:
            click.echo(f"simulate: {sim.iso(now)}: " + ", ".join(
                f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
        sys.stdout.flush()


def _text(interval: timedelta) -> str:
    seconds = interval.total_seconds()
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
