"""The rollup refresh after committed batches: one batch's, shared by several connections when
it is large, and the drain of everything committed batches queued.

ingest.commit_batch queues, in the batch's transaction, the ranges its rollups need
(sql/functions/42_rollups_queue.sql); rollups.refresh_after_load(batch) refreshes and takes off
that batch's ranges, rollups.refresh_queued() all of them (what a killed load left too).
rollups.refresh_after_load(batch, part, parts) refreshes, on the Apache edition, one slice of
the batch's time range, cut at whole hours (sql/functions/40_rollups_refresh.sql), so `parts`
connections refresh one batch at once, each in its own transaction; the rebuild locks buckets,
not whole rollups, so the slices run side by side. On Community part 0 refreshes it all and
the others nothing. The data is committed already: a failed refresh is a warning, never an
undo.

Community: TimescaleDB (2.2x) refuses a continuous aggregate refresh whose window overlaps one
in progress (SQLSTATE 55P03) and expects the caller to try again. tsfleet's own refreshers
take turns instead (_tsfleet.begin_refresh_turn, a session advisory lock held around each
refresh CALL): two loaders finishing together queue, and the second starts the moment the
first ends. Refreshes that tsfleet does not start (policy jobs, a CALL in psql) can still
collide; those refusals are retried with jittered backoff. Apache needs no turn: the rebuild
locks the buckets it rewrites, so parts and disjoint loads refresh side by side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

# Below this many new rows a second connection costs more than it saves.
PARALLEL_REFRESH_ROWS = 100_000
PARTS_PROCEDURE = "rollups.refresh_after_load(bigint,integer,integer)"
DRAIN_PROCEDURE = "rollups.refresh_queued(integer)"
CONCURRENT_REFRESH_WAIT_S = 300  # how long a refresh waits out others' before it gives up


def _refused_for_a_concurrent_refresh(exc: BaseException) -> bool:
    return (isinstance(exc, psycopg.errors.LockNotAvailable)
            and "concurrent refresh" in (exc.diag.message_primary or ""))


def refresh_in_turn(conn: psycopg.Connection, statement: str,
                    params: list[object] | None = None) -> psycopg.Cursor:
    """CALL a refresh procedure in its turn (_tsfleet.begin_refresh_turn; autocommit: the turn
    outlives the commits inside). The wait for the turn obeys the session's lock_timeout."""
    turn = conn.execute("select _tsfleet.begin_refresh_turn()").fetchone()
    try:
        return conn.execute(statement, params)
    finally:
        if turn and turn[0] and not conn.broken:  # a lost connection took the lock with it
            conn.execute("select _tsfleet.end_refresh_turn()")


@retry(retry=retry_if_exception(_refused_for_a_concurrent_refresh),
       wait=wait_random_exponential(multiplier=0.2, max=5),
       stop=stop_after_delay(CONCURRENT_REFRESH_WAIT_S), reraise=True)
def call_refresh(conn: psycopg.Connection, statement: str,
                 params: list[object] | None = None) -> psycopg.Cursor:
    """refresh_in_turn, again while a refresh tsfleet did not start (a policy job, a CALL in
    psql) holds an overlapping window (a refused call leaves nothing open)."""
    return refresh_in_turn(conn, statement, params)


def drain_queue(conn: psycopg.Connection) -> tuple[int, float]:
    """Refresh what committed batches queued (a role that may not refresh leaves it to the
    owner); (ranges refreshed, seconds). psycopg.Error if the refresh failed."""
    started = time.perf_counter()
    installed = conn.execute("select to_regprocedure(%s) is not null",
                             [DRAIN_PROCEDURE]).fetchone()
    if not installed or not installed[0]:
        return 0, 0.0
    row = call_refresh(conn, "call rollups.refresh_queued()").fetchone()
    return int(row[0] or 0) if row else 0, time.perf_counter() - started


def refresh_batch(conn: psycopg.Connection, batch_id: int, rows: int, parts: int,
                  connect: Callable[[], psycopg.Connection] | None) -> float:
    """Refresh the rollups for the batch's time range; the seconds it took. psycopg.Error if
    any part failed (the parts that finished stay refreshed)."""
    started = time.perf_counter()
    installed = conn.execute(
        "select to_regprocedure('rollups.refresh_after_load(bigint)') is not null,"
        " to_regprocedure(%s) is not null and current_setting('timescaledb.license', true)"
        " is distinct from 'timescale'", [PARTS_PROCEDURE]).fetchone()
    if not installed or not installed[0]:
        return 0.0
    # Parts share a refresh on Apache only (a continuous aggregate refreshes a range in one go).
    if parts < 2 or rows < PARALLEL_REFRESH_ROWS or connect is None or not installed[1]:
        call_refresh(conn, "call rollups.refresh_after_load(%s)", [batch_id])
        return time.perf_counter() - started
    failures: list[BaseException] = []
    left_over: list[int] = []  # parts whose connection could not be opened: done here

    def other_part(part: int) -> None:
        try:
            other = connect()
        except Exception:  # noqa: BLE001 - no connection left: this connection does it
            left_over.append(part)
            return
        try:
            with other:
                call_refresh(other, "call rollups.refresh_after_load(%s, %s, %s)",
                             [batch_id, part, parts])
        except BaseException as exc:  # handed to the caller below
            failures.append(exc)

    helpers = [threading.Thread(target=other_part, args=(part,), daemon=True,
                                name=f"tsfleet-refresh-{part}") for part in range(1, parts)]
    for helper in helpers:
        helper.start()
    call_refresh(conn, "call rollups.refresh_after_load(%s, %s, %s)", [batch_id, 0, parts])
    for helper in helpers:
        helper.join()
    for part in sorted(left_over):
        call_refresh(conn, "call rollups.refresh_after_load(%s, %s, %s)", [batch_id, part, parts])
    if failures:
        raise failures[0]
    return time.perf_counter() - started
