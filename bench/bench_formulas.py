"""Formulas: 20 nested calls and a chain of 20 derived metrics vs their one-level versions."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from statistics import median

import psycopg
from psycopg.types.json import Jsonb

from bench.harness import BenchContext, Result

RUNS = 5
AT = datetime(2026, 1, 28, 14, 30, tzinfo=timezone.utc)


def nested(function: str, levels: int) -> str:
    formula = "x"
    for _ in range(levels):
        formula = f"{function}({formula})"
    return formula


def chain(length: int) -> dict[str, object]:
    """d1 = x + x, d2 = d1 + d1, ...: each step uses the previous one twice."""
    derived = [{"name": "d1", "formula": "x + x", "unit": None}]
    derived += [{"name": f"d{n}", "formula": f"d{n - 1} + d{n - 1}", "unit": None}
                for n in range(2, length + 1)]
    return {"metrics": ["x"], "derived_metrics": derived}


def evaluate_ms(conn: psycopg.Connection, formula: str) -> float:
    """Median ms of telemetry.evaluate_formula (compile and evaluate, as the analyst calls it)."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        conn.execute("select telemetry.evaluate_formula(%s, %s)",
                     [formula, Jsonb({"x": 2.0})]).fetchone()
        times.append((time.perf_counter() - start) * 1000)
    return median(times)


def one_reading_load_ms(conn: psycopg.Connection, key: str, length: int) -> float:
    """Median ms of ingest.process_batch for one reading of a device linked to an asset whose
    type has a chain of `length` derived metrics."""
    conn.execute("insert into telemetry.asset_types (asset_type_key, telemetry_schema)"
                 " values (%s, %s)", [key, Jsonb(chain(length))])
    device = conn.execute("insert into telemetry.devices (tenant_id, device_key)"
                          " values (1, %s) returning device_id", [key]).fetchone()[0]
    asset = conn.execute("insert into telemetry.assets (tenant_id, asset_key, asset_type_id)"
                         " select 1, %s, asset_type_id from telemetry.asset_types"
                         " where asset_type_key = %s returning asset_id", [key, key]
                         ).fetchone()[0]
    conn.execute("insert into telemetry.device_asset_links (tenant_id, device_id, asset_id,"
                 " metrics_mapping, link_role) values (1, %s, %s, '{}', 'primary')",
                 [device, asset])
    metric = conn.execute("insert into telemetry.metrics (metric_name) values ('x')"
                          " on conflict (metric_name) do update set metric_name = 'x'"
                          " returning metric_id").fetchone()[0]
    times = []
    for run in range(RUNS):
        batch = conn.execute("insert into ingest.batches (source_kind, source_name, status)"
                             " values ('bench', 'formulas', 'running') returning batch_id"
                             ).fetchone()[0]
        conn.execute("insert into telemetry.readings (recorded_at, device_id, metric_id,"
                     " value, batch_id) values (%s::timestamptz + %s * interval '1 s', %s, %s,"
                     " 1.5, %s)", [AT, run, device, metric, batch])
        start = time.perf_counter()
        conn.execute("select * from ingest.process_batch(%s)", [batch]).fetchone()
        times.append((time.perf_counter() - start) * 1000)
    return median(times)


def run(ctx: BenchContext) -> list[Result]:
    with ctx.database() as url, psycopg.connect(url, autocommit=True) as conn:
        deep, shallow = evaluate_ms(conn, nested("sqrt", 20)), evaluate_ms(conn, nested("sqrt", 1))
        mixed = evaluate_ms(conn, "least(greatest(x, 1), 3)")
        long_chain = one_reading_load_ms(conn, "chain20", 20)
        short_chain = one_reading_load_ms(conn, "chain1", 1)
    return [
        Result("evaluate_formula, 20 nested sqrt()", deep, "ms", shallow, "one sqrt()",
               "milliseconds (was 45.9 s)"),
        Result("evaluate_formula, least(greatest(x, 1), 3)", mixed, "ms", shallow, "one sqrt()"),
        Result("process a one-reading batch, chain of 20 derived", long_chain, "ms",
               short_chain, "a chain of 1", "milliseconds (was 57 s)"),
    ]
