"""Helpers for the alert tests: a tiny fleet written straight into the tables, and evaluate."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.types.json import Jsonb

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def batch(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "insert into ingest.batches (source_kind, source_name, status)"
        " values ('test', 'alerts', 'committed') returning batch_id").fetchone()
    assert row is not None
    return int(row[0])


def device(conn: psycopg.Connection, key: str, device_type: str | None = None,
           nominal_interval: str | None = None, tenant: str = "default") -> int:
    conn.execute("insert into telemetry.tenants (tenant_key) values (%s)"
                 " on conflict (tenant_key) do nothing", [tenant])
    row = conn.execute(
        "insert into telemetry.devices (tenant_id, device_key, device_type, nominal_interval)"
        " select tenant_id, %s, %s, %s::interval from telemetry.tenants where tenant_key = %s"
        " returning device_id", [key, device_type, nominal_interval, tenant]).fetchone()
    assert row is not None
    return int(row[0])


def metric(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute(
        "insert into telemetry.metrics (metric_name) values (%s) on conflict (metric_name)"
        " do update set metric_name = excluded.metric_name returning metric_id", [name]
    ).fetchone()
    assert row is not None
    return int(row[0])


def reading(conn: psycopg.Connection, device_key: str, metric_name: str, at: datetime,
            value: float, quality: str = "good") -> None:
    """One reading, and last_reading_at kept as ingest keeps it."""
    metric_id = metric(conn, metric_name)
    conn.execute(
        "insert into telemetry.readings (recorded_at, device_id, metric_id, value, quality,"
        " batch_id) select %s, d.device_id, %s, %s, %s, %s from telemetry.devices as d"
        " where d.device_key = %s",
        [at, metric_id, value, quality, _batch_id(conn), device_key])
    conn.execute(
        "update telemetry.devices set last_reading_at = greatest(last_reading_at, %s)"
        " where device_key = %s", [at, device_key])


def series(conn: psycopg.Connection, device_key: str, metric_name: str, start: datetime,
           count: int, step: timedelta, value: float, quality: str = "good") -> None:
    """`count` readings of one value every `step` from `start`."""
    metric_id = metric(conn, metric_name)
    conn.execute(
        "insert into telemetry.readings (recorded_at, device_id, metric_id, value, quality,"
        " batch_id) select %(start)s + g * %(step)s, d.device_id, %(metric)s, %(value)s,"
        " %(quality)s, %(batch)s from telemetry.devices as d"
        " cross join generate_series(0, %(count)s - 1) as g where d.device_key = %(key)s",
        {"start": start, "step": step, "metric": metric_id, "value": value, "quality": quality,
         "batch": _batch_id(conn), "count": count, "key": device_key})
    conn.execute(
        "update telemetry.devices set last_reading_at = greatest(last_reading_at, %s)"
        " where device_key = %s", [start + step * (count - 1), device_key])


def _batch_id(conn: psycopg.Connection) -> int:
    row = conn.execute("select max(batch_id) from ingest.batches").fetchone()
    return int(row[0]) if row and row[0] is not None else batch(conn)


def only_rules(conn: psycopg.Connection, *rule_keys: str) -> None:
    """Disable every seeded rule but these, so a test sees only what it is about."""
    conn.execute("update alerts.rules set is_enabled = rule_key = any(%s)", [list(rule_keys)])


def set_rule(conn: psycopg.Connection, rule_key: str, **fields: object) -> None:
    for name, value in fields.items():
        if isinstance(value, dict):
            value = Jsonb(value)
        conn.execute(
            psycopg.sql.SQL("update alerts.rules set {} = %s where rule_key = %s").format(
                psycopg.sql.Identifier(name)), [value, rule_key])


def add_rule(conn: psycopg.Connection, rule_key: str, condition_kind: str, params: dict,
             **fields: object) -> None:
    values: dict[str, object] = {"rule_key": rule_key, "condition_kind": condition_kind,
                                 "params": params, **fields}
    columns = list(values)
    conn.execute(
        psycopg.sql.SQL("insert into alerts.rules ({}) values ({})").format(
            psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, columns)),
            psycopg.sql.SQL(", ").join(psycopg.sql.Placeholder() * len(columns))),
        [Jsonb(v) if isinstance(v, dict) else v for v in values.values()])


def refresh_rollups(conn: psycopg.Connection) -> None:
    """What the runner does before each evaluation (issue 5's procedure, when present)."""
    row = conn.execute("select to_regprocedure('rollups.refresh(timestamptz,timestamptz)')"
                       " is not null").fetchone()
    if row and row[0]:
        conn.execute("call rollups.refresh()")


def condition(conn: psycopg.Connection, view: str, at: datetime) -> list[tuple]:
    """Rows of alerts.condition_<view> as seen at `at` (labels..., value), sorted.

    Rollups are refreshed first, as the runner does before each evaluation.
    """
    refresh_rollups(conn)
    with conn.transaction():
        conn.execute("select set_config('tsfleet.alerts_now', %s, true)", [at.isoformat()])
        rows = conn.execute(
            psycopg.sql.SQL("select * from alerts.{} order by 1, 2, 3").format(
                psycopg.sql.Identifier(f"condition_{view}"))).fetchall()
    return rows


def evaluate(conn: psycopg.Connection, at: datetime) -> list[tuple[str, str, str]]:
    """alerts.evaluate(at) after a rollup refresh: [(rule, subject, transition)] sorted."""
    refresh_rollups(conn)
    rows = conn.execute("select rule, labels, transition from alerts.evaluate(%s)", [at]).fetchall()
    return sorted((r[0], r[1].get("device") or r[1].get("asset"), r[2]) for r in rows)


def states(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "select r.rule_key, e.state from alerts.episodes as e"
        " inner join alerts.rules as r using (rule_id) order by e.episode_id").fetchall()
    return [(r[0], r[1]) for r in rows]


def notifications(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "select payload -> 'labels' ->> 'rule', transition from alerts.notifications"
        " order by notification_id").fetchall()
    return [(r[0], r[1]) for r in rows]


class Receiver:
    """A real local HTTP server that records JSON POSTs; it can fail the first N requests,
    take `delay_s` per answer, or answer each body with `answer(body) -> (status, text)`.
    Every request is counted in `received`; only 2xx bodies are kept in posts()."""

    def __init__(self, fail_first: int = 0, status_on_failure: int = 503,
                 delay_s: float = 0.0, answer=None) -> None:
        import http.server
        import json
        import threading
        import time

        self.bodies: list[tuple[str, object]] = []
        self.received: list[object] = []
        self.failures_left = fail_first
        self.failed = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                if delay_s:
                    time.sleep(delay_s)
                status, text = 200, b"{}"
                with receiver.lock:
                    receiver.received.append(body)
                    if receiver.failures_left > 0:
                        receiver.failures_left -= 1
                        status, text = status_on_failure, b""
                    elif answer is not None:
                        status, reply = answer(body)
                        text = reply.encode()
                    if status >= 300:
                        receiver.failed += 1
                    else:
                        receiver.bodies.append((self.path, body))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: object) -> None:
                pass

        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def posts(self, path: str | None = None) -> list:
        with self.lock:
            return [b for p, b in self.bodies if path is None or p == path]


def wait_until(predicate, timeout: float = 60.0, step: float = 0.1) -> bool:
    """Poll until predicate() is true; False after timeout (a liveness guard, not a timing)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
