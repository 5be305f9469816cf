"""Test data for rollup, quality, ops and export tests: direct SQL inserts, small and exact."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

UTC = timezone.utc


def day(text: str) -> datetime:
    """A UTC midnight from 'YYYY-MM-DD'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def add_device(conn: psycopg.Connection, key: str, nominal_interval: str | None = None) -> int:
    row = conn.execute(
        "insert into telemetry.devices (tenant_id, device_key, nominal_interval)"
        " values (1, %s, %s::interval) returning device_id",
        [key, nominal_interval],
    ).fetchone()
    assert row is not None
    return row[0]


def add_metric(conn: psycopg.Connection, name: str, valid_min: float | None = None,
               valid_max: float | None = None) -> int:
    row = conn.execute(
        "insert into telemetry.metrics (metric_name, valid_min, valid_max) values (%s, %s, %s)"
        " on conflict (metric_name) do update set valid_min = excluded.valid_min,"
        " valid_max = excluded.valid_max returning metric_id",
        [name, valid_min, valid_max],
    ).fetchone()
    assert row is not None
    return row[0]


def add_batch(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "insert into ingest.batches (source_kind, source_name, status)"
        " values ('test', 'tests', 'committed') returning batch_id"
    ).fetchone()
    assert row is not None
    return row[0]


def close_batch(conn: psycopg.Connection, batch_id: int) -> None:
    """Record the batch's time range the way the loaders do after their COPY."""
    conn.execute(
        "update ingest.batches as b set min_recorded_at = r.lo, max_recorded_at = r.hi,"
        " finished_at = now()"
        " from (select min(recorded_at) as lo, max(recorded_at) as hi from telemetry.readings"
        "       where batch_id = %(b)s) as r where b.batch_id = %(b)s",
        {"b": batch_id},
    )


def insert_series(conn: psycopg.Connection, device_id: int, metric_id: int,
                  start: datetime, end: datetime, step: str, value_sql: str = "20.0",
                  quality_sql: str = "'good'", batch_id: int | None = None) -> int:
    """Readings every `step` in [start, end); value_sql/quality_sql may use t (timestamptz)
    and n (0-based index). Test-owned literals only. Returns the batch id used."""
    batch = batch_id or add_batch(conn)
    query = sql.SQL(
        "insert into telemetry.readings"
        " (recorded_at, device_id, metric_id, value, quality, batch_id)"
        " select t, %(d)s, %(m)s, {value}, {quality}, %(b)s"
        " from (select t, (row_number() over (order by t) - 1)::int as n"
        "       from generate_series(%(s)s::timestamptz, %(e)s::timestamptz - interval '1 us',"
        "                            %(step)s::interval) as t) as g"
    ).format(value=sql.SQL(value_sql), quality=sql.SQL(quality_sql))  # test-owned expressions
    conn.execute(
        query, {"d": device_id, "m": metric_id, "b": batch, "s": start, "e": end, "step": step}
    )
    close_batch(conn, batch)
    return batch


def insert_reading(conn: psycopg.Connection, device_id: int, metric_id: int, at: datetime,
                   value: float, quality: str = "good", batch_id: int | None = None) -> int:
    batch = batch_id or add_batch(conn)
    conn.execute(
        "insert into telemetry.readings"
        " (recorded_at, device_id, metric_id, value, quality, batch_id)"
        " values (%s, %s, %s, %s, %s, %s)",
        [at, device_id, metric_id, value, quality, batch],
    )
    close_batch(conn, batch)
    return batch


def refresh(conn: psycopg.Connection, start: datetime | None = None,
            end: datetime | None = None) -> None:
    conn.execute("call rollups.refresh(%s, %s)", [start, end])


def one(conn: psycopg.Connection, query: str, params: object = None) -> object:
    row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return row[0]


def hours_ago(n: float) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=n)
