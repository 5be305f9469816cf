"""`tsfleet alerts ...`: run, evaluate once, backtest, list, acknowledge, silence."""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta, timezone

import click
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from loader.alerts.durations import parse_duration
from loader.alerts.matchers import parse_matcher, render_matcher
from loader.alerts.runner import Runner, RunnerConfig
from loader.alerts.sinks import AlertmanagerSink, Sink, StdoutSink, WebhookSink
from loader.commands.alert_backtest import backtest
from loader.commands.alert_delivery import deliveries
from loader.commands.alert_silences import silences
from loader.db import connect, resolve_url
from loader.options import database_url_option, json_option
from loader.tables import render


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


def _fail(action: str, exc: Exception) -> click.ClickException:
    diag = getattr(exc, "diag", None)
    if diag is not None and diag.sqlstate == "22023":  # tsfleet refused an argument: say why
        hint = f" ({diag.message_hint})" if diag.message_hint else ""
        return click.ClickException(f"{action} failed: {diag.message_primary}{hint}")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return click.ClickException(
        f"{action} failed: {first}; is the database reachable and migrated (`tsfleet migrate`)?")


@click.group()
def alerts() -> None:
    """Alert rules, evaluation, notification delivery, acknowledgements and silences.

    Example:

        tsfleet alerts run --interval 10s --webhook https://hooks.example.com/tsfleet
    """


alerts.add_command(backtest)
alerts.add_command(deliveries)
alerts.add_command(silences)


@alerts.command()
@database_url_option
@click.option("--interval", type=DURATION, default="10s", show_default=True,
              help="Time between cycles.")
@click.option("--once", is_flag=True, help="Run one cycle and exit (for cron).")
@click.option("--stdout/--no-stdout", "use_stdout", default=None,
              help="Print notifications as JSON lines (default when no other sink is given).")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL",
              help="POST each notification as JSON to URL (repeatable).")
@click.option("--webhook-format", type=click.Choice(["tsfleet", "alertmanager"]),
              default="tsfleet", show_default=True,
              help="Body of webhook POSTs: tsfleet's own, or Alertmanager's webhook payload "
                   "(version 4) for receivers written for Alertmanager.")
@click.option("--external-url", default="", metavar="URL",
              help="externalURL of Alertmanager-format webhooks (where people see alerts).")
@click.option("--generator-url", default="", metavar="TEMPLATE",
              help="generatorURL of each alert (a link back to where it is seen); "
                   "{episode_id}, {rule} and {alertname} are filled in, e.g. "
                   "http://localhost:3000/d/tsfleet-fleet.")
@click.option("--alertmanager", "alertmanagers", multiple=True, metavar="URL",
              help="Alertmanager base URL, e.g. http://alertmanager:9093 (repeatable).")
@click.option("--resend-interval", type=DURATION, default="1m", show_default=True,
              help="How often firing alerts are re-sent to Alertmanager.")
@click.option("--timeout", type=DURATION, default="10s", show_default=True,
              help="HTTP timeout of webhook and Alertmanager calls.")
@click.option("--retry-base", type=DURATION, default="1s", show_default=True,
              help="First retry delay of a failed delivery (doubles each attempt).")
@click.option("--retry-max", type=DURATION, default="5m", show_default=True,
              help="Longest retry delay.")
@click.option("--retry-max-age", type=DURATION, default="1h", show_default=True,
              help="Retry a failing delivery this long after it was queued, then give up "
                   "(dead letter; see `tsfleet alerts deliveries --failed`).")
@click.option("--lease", type=DURATION, default="2m", show_default=True,
              help="Lease of a claimed batch, renewed while sending (at least 3 x --timeout).")
@click.option("--lock-timeout", type=DURATION, default="5s", show_default=True,
              help="A step waiting longer for a lock is skipped this cycle (logged).")
@click.option("--no-resolved", is_flag=True,
              help="Do not send resolved notifications to these sinks (rules decide too).")
@click.option("--refresh-window", type=DURATION, default="1h", show_default=True,
              help="Recent window of rollups refreshed before each evaluation.")
@click.option("--no-refresh", is_flag=True,
              help="Do not call rollups.refresh() before evaluating.")
def run(database_url: str | None, interval: timedelta, once: bool, use_stdout: bool | None,
        webhooks: tuple[str, ...], webhook_format: str, external_url: str, generator_url: str,
        alertmanagers: tuple[str, ...], resend_interval: timedelta,
        timeout: timedelta, retry_base: timedelta, retry_max: timedelta,
        retry_max_age: timedelta, lease: timedelta, lock_timeout: timedelta,
        no_resolved: bool, refresh_window: timedelta, no_refresh: bool) -> None:
    """Evaluate alerts every --interval and deliver notifications to the sinks.

    Each cycle refreshes rollups when the edition needs it, calls alerts.evaluate(now()),
    then delivers the outbox: at least once, marked delivered only after the sink confirmed;
    408/429/5xx/timeouts retried with jittered exponential backoff up to --retry-max-age,
    other 4xx dead-lettered at once. Several runners may run at once; none double-sends.
    Stops cleanly on SIGTERM or Ctrl-C. Logs JSON lines on stderr.

    Example:

        tsfleet alerts run --interval 10s --alertmanager http://localhost:9093

        tsfleet alerts run --once --stdout    # from cron
    """
    url = resolve_url(database_url)
    sinks: list[Sink] = []
    if use_stdout or (use_stdout is None and not webhooks and not alertmanagers):
        sinks.append(StdoutSink())
    seconds = timeout.total_seconds()
    sinks += [WebhookSink(u, timeout=seconds, format=webhook_format,  # type: ignore[arg-type]
                          external_url=external_url, generator_url=generator_url)
              for u in webhooks]
    sinks += [AlertmanagerSink(u, timeout=seconds, resend_interval=resend_interval,
                               generator_url=generator_url)
              for u in alertmanagers]
    try:
        config = RunnerConfig(database_url=url, sinks=sinks, interval=interval,
                              retry_base=retry_base, retry_max=retry_max,
                              retry_max_age=retry_max_age, lease=lease,
                              lock_timeout=lock_timeout, refresh=not no_refresh,
                              refresh_window=refresh_window, send_resolved=not no_resolved)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    runner = Runner(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda num, _frame: runner.stop(signal.Signals(num).name))
    code = runner.run(once=once)
    if code:
        raise click.exceptions.Exit(code)


@alerts.command()
@database_url_option
@click.option("--at", "at", metavar="TIME|data",
              help="Evaluate at this ISO time, or `data` for the newest reading's time "
                   "(default: now).")
@click.option("--no-refresh", is_flag=True,
              help="Do not refresh the rollups (2 hours before --at) first.")
@json_option
def evaluate(database_url: str | None, at: str | None, no_refresh: bool, as_json: bool) -> None:
    """Evaluate every rule once and print the transitions (queues notifications too).

    Example:

        tsfleet alerts evaluate --at data    # on historical sample data
    """
    url = resolve_url(database_url)
    try:
        with connect(url, autocommit=True) as conn:
            when = _evaluation_time(conn, at)
            refreshable = conn.execute(
                "select to_regprocedure('rollups.refresh(timestamptz,timestamptz)') is not null"
            ).fetchone()
            if not no_refresh and refreshable and refreshable[0]:
                conn.execute("call rollups.refresh(%s, %s)",
                             [when - timedelta(hours=2), when + timedelta(seconds=1)])
            with conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute("select * from alerts.evaluate(%s)", [when]).fetchall()
    except psycopg.Error as exc:
        raise _fail("alert evaluation", exc) from exc
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    click.echo(f"evaluated at {when.isoformat()}: {len(rows)} transition(s)")
    if rows:
        click.echo(render(["episode", "rule", "transition", "subject", "metric", "value"], [
            (r["episode_id"], r["rule"], r["transition"],
             r["labels"].get("device") or r["labels"].get("asset"), r["labels"].get("metric"),
             r["value"]) for r in rows]))


def _evaluation_time(conn: psycopg.Connection, at: str | None) -> datetime:
    if at is None:
        return datetime.now(timezone.utc)
    if at == "data":
        row = conn.execute("select max(last_reading_at) from telemetry.devices").fetchone()
        if not row or row[0] is None:
            raise click.ClickException("--at data: no device has readings yet; load data first")
        return row[0]
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError as exc:
        raise click.BadParameter(f"{at!r} is not an ISO time (e.g. 2026-03-01T12:00:00Z) "
                                 "or `data`", param_hint="--at") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@alerts.command(name="list")
@database_url_option
@json_option
def list_alerts(database_url: str | None, as_json: bool) -> None:
    """List open alerts (pending and firing), newest first.

    Example:

        tsfleet alerts list
    """
    url = resolve_url(database_url)
    try:
        with connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute("select * from alerts.open_alert_summaries").fetchall()
    except psycopg.Error as exc:
        raise _fail("listing alerts", exc) from exc
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    if not rows:
        click.echo("no open alerts")
        return
    headers = list(rows[0])
    click.echo(render(headers, [list(r.values()) for r in rows]))


@alerts.command()
@database_url_option
@click.option("--since", type=DURATION, default="1d", show_default=True,
              help="Episodes that started this long ago or later.")
@click.option("--rule", "rule_key", help="Only this rule.")
@json_option
def history(database_url: str | None, since: timedelta, rule_key: str | None,
            as_json: bool) -> None:
    """Alert episodes: what fired, when, for how long, who acknowledged it.

    Example:

        tsfleet alerts history --since 7d --rule low_battery
    """
    url = resolve_url(database_url)
    try:
        with connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute("select * from alerts.list_episodes(%s, %s)",
                               [since, rule_key]).fetchall()
    except psycopg.Error as exc:
        raise _fail("reading the alert history", exc) from exc
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    if not rows:
        click.echo("no alert episodes in that period")
        return
    click.echo(render(list(rows[0]), [list(r.values()) for r in rows]))


@alerts.command()
@database_url_option
@click.argument("episode_id", type=int)
@click.option("--by", "by", required=True, help="Who acknowledges (name or e-mail).")
@click.option("--comment", help="Why, or what is being done.")
def ack(database_url: str | None, episode_id: int, by: str, comment: str | None) -> None:
    """Acknowledge an open alert: it gets no more repeat notifications.

    Example:

        tsfleet alerts ack 42 --by alice --comment "replacing the battery"
    """
    url = resolve_url(database_url)
    try:
        with connect(url, autocommit=True) as conn:
            conn.execute("select alerts.acknowledge(%s, %s, %s)", [episode_id, by, comment])
    except psycopg.errors.RaiseException as exc:
        raise click.ClickException(
            f"cannot acknowledge episode {episode_id}: it is not open; "
            "see `tsfleet alerts list`") from exc
    except psycopg.Error as exc:
        raise _fail("acknowledging", exc) from exc
    click.echo(f"acknowledged episode {episode_id}")


@alerts.command()
@database_url_option
@click.option("--match", "matchers", multiple=True, required=True, metavar="MATCHER",
              help="LABEL=VALUE, LABEL!=VALUE, LABEL=~REGEX or LABEL!~REGEX (repeatable; all "
                   "must match), e.g. device=gh-01 or rule=~'low_.*'.")
@click.option("--for", "duration", type=DURATION, required=True, help="How long, e.g. 2h.")
@click.option("--by", "by", required=True, help="Who silences.")
@click.option("--comment", help="Why.")
def silence(database_url: str | None, matchers: tuple[str, ...], duration: timedelta, by: str,
            comment: str | None) -> None:
    """Silence notifications of alerts whose labels match, starting now.

    Matchers work as Alertmanager's: a missing label is the empty string, a regular
    expression must match the whole value. `tsfleet alerts silences` lists them.

    Example:

        tsfleet alerts silence --match device=gh-01 --match severity!=info --for 2h --by bob
    """
    try:
        parsed = [parse_matcher(item) for item in matchers]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--match") from exc
    url = resolve_url(database_url)
    try:
        with connect(url, autocommit=True) as conn:
            row = conn.execute("select alerts.silence(%s, now() + %s, %s, %s)",
                               [Jsonb(parsed), duration, by, comment]).fetchone()
    except psycopg.errors.RaiseException as exc:
        raise click.BadParameter(str(exc).strip().splitlines()[0],
                                 param_hint="--match") from exc
    except psycopg.errors.InvalidRegularExpression as exc:
        raise click.BadParameter(f"invalid regular expression: {str(exc).strip()}",
                                 param_hint="--match") from exc
    except psycopg.Error as exc:
        raise _fail("silencing", exc) from exc
    assert row is not None
    click.echo(f"silence {row[0]} until now + {duration}: "
               + ", ".join(render_matcher(m) for m in parsed))


@alerts.command()
@database_url_option
@click.argument("silence_id", type=int)
def unsilence(database_url: str | None, silence_id: int) -> None:
    """End a silence now.

    Example:

        tsfleet alerts unsilence 7
    """
    url = resolve_url(database_url)
    try:
        with connect(url, autocommit=True) as conn:
            row = conn.execute("select alerts.expire_silence(%s)", [silence_id]).fetchone()
    except psycopg.Error as exc:
        raise _fail("ending the silence", exc) from exc
    if not row or not row[0]:
        raise click.ClickException(f"silence {silence_id} does not exist or has already ended")
    click.echo(f"silence {silence_id} ended")


@alerts.command()
@database_url_option
@json_option
def rules(database_url: str | None, as_json: bool) -> None:
    """Show the alert rules (change them with UPDATE alerts.rules ...).

    Example:

        tsfleet alerts rules
    """
    url = resolve_url(database_url)
    try:
        with connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute("select * from alerts.rule_settings").fetchall()
    except psycopg.Error as exc:
        raise _fail("reading rules", exc) from exc
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    click.echo(render(list(rows[0]) if rows else ["rule_key"],
                      [[json.dumps(v) if isinstance(v, dict) else v for v in r.values()]
                       for r in rows]))


@alerts.command(name="grafana-login")
@database_url_option
@click.option("--user", "user", default="tsfleet_grafana_login", show_default=True,
              help="Login role to create or update.")
@click.option("--password-env", default="TSFLEET_GRAFANA_DB_PASSWORD", show_default=True,
              metavar="VAR", help="Environment variable holding its password.")
def grafana_login(database_url: str | None, user: str, password_env: str) -> None:
    """Create (or update) the login Grafana's data source uses: a member of tsfleet_grafana.

    tsfleet_grafana can only SELECT the alert and dashboard views. docker-compose runs this
    before the runner; the password comes from an environment variable, never an argument.

    Example:

        TSFLEET_GRAFANA_DB_PASSWORD=s3cret tsfleet alerts grafana-login
    """
    import os

    from psycopg import sql

    password = os.environ.get(password_env)
    if not password:
        raise click.UsageError(f"set {password_env} to the password of {user}")
    url = resolve_url(database_url)
    try:
        with connect(url, autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_roles where rolname = %s", [user]).fetchone()
            verb = sql.SQL("alter role" if exists else "create role")
            conn.execute(sql.SQL("{} {} login password {}").format(
                verb, sql.Identifier(user), sql.Literal(password)))
            conn.execute(sql.SQL("grant tsfleet_grafana to {}").format(sql.Identifier(user)))
            # Grafana's queries are short; JIT compilation of the condition views would cost
            # far more (hundreds of ms) than it saves.
            conn.execute(sql.SQL("alter role {} set jit = off").format(sql.Identifier(user)))
    except psycopg.Error as exc:
        raise _fail(f"creating login {user}", exc) from exc
    click.echo(f"login {user} can read the Grafana views (member of tsfleet_grafana)")

