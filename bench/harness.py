"""Shared pieces for benchmarks: a throwaway server, fresh migrated databases, result rows."""

from __future__ import annotations

import os
import resource
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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

    @contextmanager
    def database(self, migrated: bool = True) -> Iterator[str]:
        """A fresh database (migrated unless told otherwise), dropped afterwards."""
        name = f"tsfleet_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        url = with_database(self.server_url, name)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("set client_min_messages = warning")
                conn.execute("create extension if not exists timescaledb")
            if migrated:
                migrate.apply(url)
            yield url
        finally:
            with psycopg.connect(self.server_url, autocommit=True) as conn:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                    sql.Identifier(name)))


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
