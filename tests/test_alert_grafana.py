"""The Grafana contract of the alert views, and the provisioning files that rely on it."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import psycopg
import yaml
from click.testing import CliRunner
from psycopg import sql

from loader.cli import main
from tests.alerts_support import T0, add_rule, condition, device, minutes, reading, series
from tests.grafana_support import expand, variables

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "grafana"
LABELS = {"rule", "device", "asset", "metric", "severity", "tenant"}
NUMERIC = {"double precision", "numeric", "integer", "bigint", "real", "smallint"}


def condition_views(conn: psycopg.Connection) -> dict[str, list[tuple[str, str]]]:
    rows = conn.execute(
        "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
        " from pg_class as c join pg_namespace as n on c.relnamespace = n.oid"
        " join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
        " where n.nspname = 'alerts' and c.relkind = 'v' and c.relname like 'condition\\_%'"
        " order by c.relname, a.attnum").fetchall()
    views: dict[str, list[tuple[str, str]]] = {}
    for view, column, type_name in rows:
        views.setdefault(view, []).append((column, type_name))
    return views


def condition_kinds(conn: psycopg.Connection) -> set[str]:
    definition = conn.execute(
        "select pg_get_constraintdef(oid) from pg_constraint"
        " where conname = 'rules_condition_kind_check'").fetchone()[0]
    return set(re.findall(r"'(\w+)'::text", definition))


def test_every_condition_view_has_the_numeric_table_shape(conn: psycopg.Connection) -> None:
    views = condition_views(conn)
    assert len(views) == 9
    for view, columns in views.items():
        numeric = [c for c, t in columns if t in NUMERIC]
        text = [c for c, t in columns if t == "text"]
        assert numeric == ["value"], f"{view}: exactly one numeric column, named value"
        assert len(text) + 1 == len(columns), f"{view}: only text labels besides value"
        assert set(text) <= LABELS, f"{view}: unexpected label columns {set(text) - LABELS}"
        assert {"rule", "metric", "severity", "tenant"} <= set(text), view
        assert len({"device", "asset"} & set(text)) == 1, f"{view}: one subject label"


def test_every_condition_kind_has_a_condition_view_and_a_series_view(
    conn: psycopg.Connection,
) -> None:
    kinds = condition_kinds(conn)
    kind_views = {"temperature_range": "temperature_range"}
    views = {v[len("condition_"):] for v in condition_views(conn)}
    assert {kind_views.get(k, k) for k in kinds} == views
    series_views = {r[0] for r in conn.execute(
        "select table_name from information_schema.views"
        " where table_schema = 'alerts' and table_name like 'series\\_%'")}
    assert {f"series_{v}" for v in views} == series_views


def test_a_condition_view_returns_one_row_per_label_set(conn: psycopg.Connection) -> None:
    add_rule(conn, "critical_battery", "low_battery",
             {"metric": "StateOfChargePercentage", "threshold": 10}, severity="critical")
    for i in range(5):
        device(conn, f"bat-{i}")
        series(conn, f"bat-{i}", "StateOfChargePercentage", T0 - minutes(30), 30, minutes(1), 5)
    rows = condition(conn, "low_battery", T0)
    labels = [r[:5] for r in rows]
    assert len(rows) == 10 and len(set(labels)) == 10


def test_the_views_answer_for_grafana_with_nothing_to_evaluate_them(
    conn: psycopg.Connection,
) -> None:
    device(conn, "bat-1")
    reading(conn, "bat-1", "StateOfChargePercentage", T0, 5)
    conn.execute("update telemetry.devices set last_reading_at = now()")
    # Grafana's session sets nothing: the views evaluate at now(), where this reading is old.
    with conn.transaction(force_rollback=True):
        conn.execute("set local role tsfleet_grafana")
        for view in condition_views(conn):
            conn.execute(sql.SQL("select * from alerts.{}").format(sql.Identifier(view)))
        assert conn.execute("select count(*) from alerts.condition_low_battery"
                            ).fetchone()[0] == 0


def grafana_queries() -> list[tuple[str, str]]:
    queries = []
    rules = yaml.safe_load((GRAFANA / "provisioning/alerting/tsfleet-alerts.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for step in rule["data"]:
                if "rawSql" in step["model"]:
                    assert step["datasourceUid"] == "tsfleet-timescaledb", rule["uid"]
                    queries.append((rule["uid"], step["model"]["rawSql"]))
    for path in (GRAFANA / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "tsfleet-timescaledb", panel["title"]
            for target in panel["targets"]:
                queries.append((f"{path.name}: {panel['title']}", target["rawSql"]))
    return queries


def test_every_provisioned_query_runs_as_the_grafana_role(conn: psycopg.Connection) -> None:
    queries = grafana_queries()
    assert len(queries) >= 14
    for origin, raw in queries:
        query = expand(raw, {name: ["x"] for name in variables()})
        with conn.transaction(force_rollback=True):
            conn.execute("set local role tsfleet_grafana")
            try:
                conn.execute(query)
            except psycopg.Error as exc:
                raise AssertionError(f"{origin}: {exc}\n{raw}") from exc


def test_every_referenced_view_and_column_exists(conn: psycopg.Connection) -> None:
    columns = {(r[0], r[1], r[2]) for r in conn.execute(
        "select table_schema, table_name, column_name from information_schema.columns"
        " where table_schema in ('alerts', 'rollups')")}
    views = {(s, v) for s, v, _ in columns}
    for origin, raw in grafana_queries():
        raw = expand(raw, {name: ["x"] for name in variables()})
        referenced = re.findall(r"\bfrom\s+(\w+)\.(\w+)", raw)
        assert referenced, origin
        for schema, view in referenced:
            assert (schema, view) in views, f"{origin}: {schema}.{view} does not exist"
            select_list = re.search(r"select\s+(.*?)\s+from\s", raw, re.S).group(1)
            select_list = re.sub(r'\bas\s+("[^"]*"|\w+)', "", select_list)
            for name in re.findall(r"\b[a-z_][a-z0-9_]*\b", select_list):
                if name not in SQL_WORDS:
                    assert (schema, view, name) in columns, f"{origin}: no column {name}"


SQL_WORDS = {"round", "numeric", "sum", "count", "avg", "min", "max", "distinct", "time_bucket"}


def test_there_is_a_grafana_alert_rule_for_every_condition_view(
    conn: psycopg.Connection,
) -> None:
    referenced = {m for _, raw in grafana_queries()
                  for m in re.findall(r"alerts\.(condition_\w+)", raw)}
    assert referenced == set(condition_views(conn))


def test_the_datasource_login_reads_alert_views_and_nothing_else(
    db_url: str, conn: psycopg.Connection,
) -> None:
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/tsfleet.yaml").read_text())["datasources"][0]
    assert datasource["uid"] == "tsfleet-timescaledb"
    assert datasource["user"] == "tsfleet_grafana_login"
    user = f"tsfleet_grafana_test_{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(
        main, ["alerts", "grafana-login", "--user", user, "--password-env", "PW"],
        env={"DATABASE_URL": db_url, "PW": "secret"})
    assert result.exit_code == 0, result.output
    try:
        settings = conn.execute("select rolconfig from pg_roles where rolname = %s", [user]
                                ).fetchone()[0]
        assert "jit=off" in settings
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(user)))
            conn.execute("select * from alerts.active_alerts")
            conn.execute("savepoint s")
            try:
                conn.execute("select * from telemetry.readings limit 1")
                raise AssertionError("the Grafana login can read raw readings")
            except psycopg.errors.InsufficientPrivilege:
                conn.execute("rollback to savepoint s")
    finally:
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(user)))


def test_compose_runs_the_alert_runner_and_a_pinned_grafana_with_the_provisioning() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    runner = services["alert-runner"]
    assert "tsfleet alerts run" in " ".join(runner["command"])
    assert runner["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    grafana = services["grafana"]
    assert re.match(r"grafana/grafana:\d+\.\d+\.\d+$", grafana["image"])
    mounts = " ".join(grafana["volumes"])
    assert "./grafana/provisioning:/etc/grafana/provisioning" in mounts
    assert "./grafana/dashboards:/var/lib/grafana/dashboards" in mounts
