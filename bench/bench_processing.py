"""Batch processing (mapping + derived metric + health) vs a plain INSERT ... SELECT of its rows."""

from __future__ import annotations

import psycopg

from bench.harness import BenchContext, Result, stopwatch

METRICS = ("voltage", "current", "temperature", "vibration")
MAPPING = (
    '{"device.voltage": "asset.power_input", "device.current": "asset.power_current",'
    ' "device.temperature": "asset.motor_temperature"}'
)

SETUP_SQL = """
insert into telemetry.metrics (metric_name)
select unnest(%(metrics)s::text[]);

insert into telemetry.devices (tenant_id, device_key)
select 1, 'bench-dev-' || i from generate_series(1, %(devices)s) as i;

-- Every device feeds pump A; every other device also feeds pump B.
insert into telemetry.assets (tenant_id, asset_key, asset_type_id)
select 1, 'bench-pump-' || s.suffix || '-' || d.device_id, aty.asset_type_id
from telemetry.devices as d
cross join (values ('a'), ('b')) as s (suffix)
cross join telemetry.asset_types as aty
where aty.asset_type_key = 'pump' and (s.suffix = 'a' or d.device_id %% 2 = 0);

insert into telemetry.device_asset_links (tenant_id, device_id, asset_id, metrics_mapping)
select 1, d.device_id, a.asset_id, %(mapping)s::jsonb
from telemetry.devices as d
inner join telemetry.assets as a on a.asset_key like 'bench-pump-_-' || d.device_id;

insert into ingest.batches (source_kind, source_name, status, min_recorded_at, max_recorded_at)
values ('bench', 'bench_processing', 'committed', timestamptz '2026-01-01',
        timestamptz '2026-01-01' + (%(steps)s - 1) * interval '1 minute');

-- One reading per device, metric and minute; values move so that some health rules fire.
insert into telemetry.readings (recorded_at, device_id, metric_id, value, batch_id)
select
    timestamptz '2026-01-01' + t * interval '1 minute',
    d.device_id,
    m.metric_id,
    case m.metric_name
        when 'voltage' then 10 + (t + d.device_id) %% 5
        when 'current' then 0.5 + ((t * 7 + d.device_id) %% 10) / 2.0
        when 'temperature' then 50 + (t * 13 + d.device_id) %% 40
        else ((t * 3 + d.device_id) %% 70) / 10.0
    end,
    1
from generate_series(0, %(steps)s - 1) as t
cross join telemetry.devices as d
cross join telemetry.metrics as m
where m.metric_name = any(%(metrics)s::text[]);
"""


def _timed(url: str, statement: str, params: object = None) -> tuple[float, tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("checkpoint")
    with psycopg.connect(url) as conn, stopwatch() as watch:
        cur = conn.execute(statement, params)  # type: ignore[arg-type]
        row = cur.fetchone() if cur.description else (cur.rowcount,)
        conn.commit()
    return watch["seconds"], tuple(row or ())


def run(ctx: BenchContext) -> list[Result]:
    devices = ctx.scaled(1000, minimum=20)
    readings_wanted = ctx.scaled(1_000_000, minimum=20_000)
    steps = max(1, readings_wanted // (devices * len(METRICS)))
    readings = steps * devices * len(METRICS)
    with ctx.database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            params = {"metrics": list(METRICS), "devices": devices, "mapping": MAPPING,
                      "steps": steps}
            for statement in SETUP_SQL.split(";\n\n"):
                conn.execute(statement, params)
            conn.execute("vacuum analyze telemetry.readings")
        seconds, row = _timed(
            url, "select asset_rows_inserted, health_rows_inserted from ingest.process_batch(1)")
        asset_rows = int(row[0])  # type: ignore[call-overload]
        again_seconds, again = _timed(url, "select asset_rows_inserted"
                                           " from ingest.process_batch(1)")
        assert again == (0,), again
        # Baseline: the very same rows, inserted plainly into an emptied table.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create unlogged table public.bench_asset_rows as"
                         " select * from telemetry.asset_readings")
            conn.execute("truncate telemetry.asset_readings")
            conn.execute("vacuum analyze public.bench_asset_rows")
        baseline_seconds, inserted = _timed(
            url, "insert into telemetry.asset_readings select * from public.bench_asset_rows")
        assert inserted == (asset_rows,), inserted
    rate = asset_rows / seconds
    baseline = asset_rows / baseline_seconds
    return [
        Result(f"asset rows written ({asset_rows:,} from {readings:,} readings)", rate, "rows/s",
               baseline=baseline,
               baseline_name="plain INSERT ... SELECT of the same rows into asset_readings",
               target=">= 0.3 of baseline"),
        Result("device readings processed", readings / seconds, "readings/s"),
        Result("re-processing the same batch (no-op)", again_seconds, "s",
               target="writes nothing"),
    ]
