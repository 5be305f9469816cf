"""Companion series views: the readings a condition watches, with names, and nothing else."""

from __future__ import annotations

import psycopg


def seed(conn: psycopg.Connection) -> None:
    conn.execute("""
        insert into telemetry.tenants (tenant_key) values ('org-s');
        insert into telemetry.devices (tenant_id, device_key)
        select tenant_id, 'bat-1' from telemetry.tenants where tenant_key = 'org-s';
        insert into telemetry.metrics (metric_name)
        values ('StateOfChargePercentage'), ('BatteryPowerW'), ('soc_alt');
        insert into ingest.batches (source_kind, source_name) values ('test', 't');
        insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
        select '2026-01-01 00:00+00'::timestamptz + n * interval '1 minute', d.device_id,
               m.metric_id, n, 1
        from telemetry.devices as d
        cross join telemetry.metrics as m
        cross join generate_series(1, 3) as n
        where d.device_key = 'bat-1';
    """)


def test_low_battery_series_holds_only_the_watched_metric_with_names(
    conn: psycopg.Connection,
) -> None:
    seed(conn)
    rows = conn.execute(
        "select device, metric, tenant, value from alerts.series_low_battery"
        " where device = 'bat-1' order by recorded_at").fetchall()
    assert rows == [("bat-1", "StateOfChargePercentage", "org-s", float(n)) for n in (1, 2, 3)]


def test_a_rule_naming_another_metric_adds_it_to_the_series(conn: psycopg.Connection) -> None:
    seed(conn)
    conn.execute("update alerts.rules set params = params || '{\"metric\": \"soc_alt\"}'"
                 " where condition_kind = 'low_battery'")
    metrics = {r[0] for r in conn.execute(
        "select distinct metric from alerts.series_low_battery where device = 'bat-1'")}
    assert metrics == {"soc_alt"}
