"""Grafana provisioning: the files parse, the contact point reaches a compose service, and the
dashboard's variables and per-device panel run against a real database as Grafana would run
them (macros and variables substituted, as the Grafana role)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from loader import simulate as sim
from loader.cli import main
from tests.grafana_support import (
    DATASOURCE_UID,
    GRAFANA,
    REPO,
    dashboard,
    datasource,
    expand,
    variables,
)

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
NOTIFICATIONS = GRAFANA / "provisioning/alerting/tsfleet-notifications.yaml"
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
UNTIL = T0 + timedelta(hours=27)


def device_panel() -> dict:
    panels = [p for p in dashboard()["panels"]
              if "rollups.device_metrics_hourly_named" in json.dumps(p.get("targets"))]
    assert len(panels) == 1, "one per-device metrics panel over the rollups"
    return panels[0]


def as_grafana(conn: psycopg.Connection, query: str) -> list[tuple]:
    with conn.transaction(force_rollback=True):
        conn.execute("set local role tsfleet_grafana")
        try:
            return conn.execute(query).fetchall()
        except psycopg.Error as exc:
            raise AssertionError(f"{exc}\n{query}") from exc


@pytest.fixture(scope="module")
def fleet_db(server, template_db):
    """A database holding 27 hours of the simulated fleet (written once for the module)."""
    from loader.db import with_database
    from tests.conftest import drop_database, unique_name

    name = unique_name("tsfleet_grafana")
    server.janitor(name, template=template_db).init()
    url = with_database(server.url, name)
    result = CliRunner().invoke(main, ["simulate", "--start", sim.iso(T0), "--until",
                                       sim.iso(UNTIL)], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn
    drop_database(server, name)


# -- the files ------------------------------------------------------------------------------------

def test_every_provisioning_file_parses_and_names_the_provisioned_data_source() -> None:
    files = sorted((GRAFANA / "provisioning").rglob("*.y*ml"))
    assert {f.parent.name for f in files} >= {"datasources", "dashboards", "alerting"}
    for path in files:
        document = yaml.safe_load(path.read_text())
        assert document["apiVersion"] == 1, path
    assert datasource()["uid"] == DATASOURCE_UID
    used = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict):
                used.add(node["datasource"]["uid"])
            if "datasourceUid" in node:
                used.add(node["datasourceUid"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in (GRAFANA / "dashboards").glob("*.json"):
        walk(json.loads(path.read_text()))
    for path in files:
        walk(yaml.safe_load(path.read_text()))
    assert used - {"__expr__"} == {DATASOURCE_UID}


def test_the_contact_point_posts_to_a_compose_service_that_serves_the_alertmanager_api() -> None:
    document = yaml.safe_load(NOTIFICATIONS.read_text())
    points = {p["name"]: p for p in document["contactPoints"]}
    receivers = [r for p in points.values() for r in p["receivers"]]
    assert receivers, "no contact point"
    for receiver in receivers:
        url = urlsplit(receiver["settings"]["url"])
        assert url.scheme == "http" and url.hostname in COMPOSE["services"], url.geturl()
        service = COMPOSE["services"][url.hostname]
        container_ports = {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}
        assert url.port in container_ports, f"{url.hostname} does not listen on {url.port}"
        if receiver["type"] == "prometheus-alertmanager":
            assert service["image"].startswith("prom/alertmanager:")
            mounts = " ".join(service["volumes"])
            assert "./alertmanager/alertmanager.yml:" in mounts
    grafana = COMPOSE["services"]["grafana"]
    assert grafana["depends_on"][urlsplit(receivers[0]["settings"]["url"]).hostname][
        "condition"] == "service_healthy"


def test_the_notification_policy_routes_everything_to_a_provisioned_contact_point() -> None:
    document = yaml.safe_load(NOTIFICATIONS.read_text())
    names = {p["name"] for p in document["contactPoints"]}
    (root,) = [p for p in document["policies"] if p.get("orgId", 1) == 1]

    def receivers(policy: dict) -> set[str]:
        found = {policy["receiver"]} if "receiver" in policy else set()
        for child in policy.get("routes", []):
            found |= receivers(child)
        return found

    assert root["receiver"] in names
    assert receivers(root) <= names
    assert "alertname" in root["group_by"]
    rules = yaml.safe_load((GRAFANA / "provisioning/alerting/tsfleet-alerts.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            contact = (rule.get("notification_settings") or {}).get("receiver")
            assert contact in (None, *names), rule["uid"]


def test_the_dashboard_has_chained_tenant_device_type_and_device_variables() -> None:
    found = variables()
    assert list(found) == ["tenant", "device_type", "device"]
    for variable in found.values():
        assert variable["type"] == "query" and variable["datasource"]["uid"] == DATASOURCE_UID
        assert variable["multi"] and variable["includeAll"]
    assert "$tenant" in found["device_type"]["query"]
    assert "$tenant" in found["device"]["query"] and "$device_type" in found["device"]["query"]
    panel = device_panel()
    assert panel["repeat"] == "device"
    sql_text = panel["targets"][0]["rawSql"]
    assert "$__timeGroup(" in sql_text and "$__timeFilter(" in sql_text
    for name in found:
        assert f"${name}" in sql_text, f"the panel ignores ${name}"


# -- against a database ---------------------------------------------------------------------------

def test_the_variable_queries_list_the_fleet_as_the_grafana_role(fleet_db) -> None:
    found = variables()
    tenants = {r[0] for r in as_grafana(fleet_db, expand(found["tenant"]["query"]))}
    fleet = sim.FLEET
    assert tenants == {d.tenant_key for d in fleet}
    for tenant in sorted(tenants):
        types = {r[0] for r in as_grafana(
            fleet_db, expand(found["device_type"]["query"], {"tenant": [tenant]}))}
        assert types == {d.device_type for d in fleet if d.tenant_key == tenant}
        devices = [r[0] for r in as_grafana(fleet_db, expand(
            found["device"]["query"], {"tenant": [tenant], "device_type": sorted(types)}))]
        assert devices == sorted(d.device_key for d in fleet if d.tenant_key == tenant)
    everything = [r[0] for r in as_grafana(fleet_db, expand(found["device"]["query"], {
        "tenant": sorted(tenants), "device_type": ["battery-pack"]}))]
    assert everything == sorted(d.device_key for d in fleet if d.device_type == "battery-pack")


@pytest.mark.parametrize("interval", ["1h", "3h"])
def test_the_device_panel_gives_each_metrics_mean_per_time_group(fleet_db, interval: str) -> None:
    """The panel's SQL, expanded as Grafana expands it, run as the Grafana role: one series per
    metric of the chosen device, each point the mean of the raw readings in its group."""
    device = next(d for d in sim.FLEET if d.device_key == "bat-02")
    start, end = T0 + timedelta(hours=20), T0 + timedelta(hours=26)
    query = expand(device_panel()["targets"][0]["rawSql"], {
        "tenant": [device.tenant_key], "device_type": [device.device_type],
        "device": [device.device_key]}, start=start, end=end, interval=interval)
    rows = as_grafana(fleet_db, query)
    assert {metric for _, metric, _ in rows} == set(device.metrics)
    step = timedelta(hours=int(interval[:-1]))
    expected = fleet_db.execute(
        "select public.time_bucket(%s, bucket_start) as t, metric_name, avg(value)"
        " from (select public.time_bucket('1 hour', recorded_at) as bucket_start,"
        "  metric_name, value from telemetry.readings_named where device_key = %s) as r"
        " where bucket_start between %s and %s group by 1, 2 order by 1, 2",
        [step, device.device_key, start, end]).fetchall()
    assert len(rows) == len(expected) >= 2 * len(device.metrics)
    for (at, metric, value), (want_at, want_metric, want) in zip(
            sorted(rows, key=lambda r: (r[0], r[1])), expected, strict=True):
        assert (at, metric) == (want_at, want_metric)
        assert value == pytest.approx(want, rel=1e-9)


def test_the_device_panel_shows_nothing_of_other_devices_or_tenants(fleet_db) -> None:
    query = expand(device_panel()["targets"][0]["rawSql"], {
        "tenant": ["demo-greenhouses"], "device_type": ["battery-pack"], "device": ["bat-02"]},
        start=T0, end=UNTIL)
    assert as_grafana(fleet_db, query) == []  # bat-02 is in demo-energy
