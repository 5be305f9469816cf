"""Shared pieces for benchmarks: a throwaway server, fresh migrated databases, result rows."""

from __future__ import annotations

import os
import resource
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from loader import migrate
from loader.db import plain_url, with_database


@dataclass
class Result:
    """One line of a benchmark table: a figure, its baseline from the same run, and a target."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


@dataclass
class BenchContext:
    server_url: str
    scale: float

    def scaled(self, n: int, minimum: int = 1) -> int:
        return max(minimum, int(n * self.scale))

    template: str | None = field(default=None, repr=False)

    def _migrated_template(self) -> str:
        """A migrated database, made once per run, that migrated bench databases are copied
        from (a copy takes a second; migrating takes ten on a busy machine)."""
        if self.template is None:
            name = f"tsfleet_bench_tpl_{uuid.uuid4().hex[:8]}"
            url = self._create(name)
            migrate.apply(url)
            with psycopg.connect(url, autocommit=True) as conn:
                # Benchmarks time their own work: policies paused, this database's scheduler
                # stopped so that the template can be copied (as tests/conftest.py does).
                conn.execute("select public.alter_job(j.job_id, scheduled => false)"
                             " from timescaledb_information.jobs as j where j.job_id >= 1000")
                conn.execute("select _timescaledb_functions.stop_background_workers()")
            with psycopg.connect(self.server_url, autocommit=True) as conn:
                conn.execute(sql.SQL("alter database {} with allow_connections false").format(
                    sql.Identifier(name)))
                # A scheduler that was starting, or our closed sessions still exiting, would
                # make the copy fail: end this template's own sessions and wait for them.
                for _ in range(100):
                    row = conn.execute(
                        "select count(pg_catalog.pg_terminate_backend(pid))"
                        " from pg_catalog.pg_stat_activity where datname = %s", [name]
                    ).fetchone()
                    if not row or row[0] == 0:
                        break
                    time.sleep(0.1)
            self.template = name
        return self.template

    def _create(self, name: str, template: str | None = None) -> str:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            if template:
                conn.execute(sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(template)))
            else:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        url = with_database(self.server_url, name)
        if not template:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("set client_min_messages = warning")
                conn.execute("create extension if not exists timescaledb")
        return url

    def _drop(self, name: str) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(name)))

    @contextmanager
    def database(self, migrated: bool = True) -> Iterator[str]:
        """A fresh database (migrated unless told otherwise), dropped afterwards."""
        name = f"tsfleet_bench_{uuid.uuid4().hex[:8]}"
        template = self._migrated_template() if migrated else None
        try:
            yield self._create(name, template)
        finally:
            self._drop(name)

    def close(self) -> None:
        """Drop the template of migrated databases, if one was made."""
        if self.template is not None:
            self._drop(self.template)
            self.template = None


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def peak_rss_mb_of_children() -> float:
    """Peak RSS of waited-for child processes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def bench_server_url() -> str | None:
    url = os.environ.get("BENCH_DATABASE_URL")
    return plain_url(url) if url else None


def timed_ms(action: Callable[[], object]) -> float:
    """Wall-clock milliseconds of one call."""
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def interleaved_medians(runs: int, *actions: Callable[[], object]) -> list[float]:
    """Median milliseconds of each action over `runs` rounds, taken in turn within each round so
    that the machine's load (2 cores shared) hits every action alike."""
    samples: list[list[float]] = [[] for _ in actions]
    for _ in range(runs):
        for box, action in zip(samples, actions, strict=True):
            box.append(timed_ms(action))
    return [statistics.median(box) for box in samples]
