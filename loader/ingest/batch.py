"""One source, one batch, one transaction: exactly once, all or nothing.

In one transaction: ingest.begin_batch (the ingest lock, the checksum registry, the batch
row), then per chunk of rows either the fast path (direct.py: ids resolved, binary COPY
straight into telemetry.readings in a savepoint, checked and booked by
ingest.record_copied_readings) or, when that chunk holds a stored key, a row to reject,
message ids or last-write-wins, a binary COPY into the session's staging table and
ingest.insert_staged_readings (register, reject, insert, count duplicates and conflicts)
(staging.py), then ingest.process_batch (asset readings, when installed) and
ingest.commit_batch. A killed loader leaves nothing: the batch row is part of the
rolled-back transaction. A failure rolls everything back and then records a failed batch row
with the error in its own transaction. After the commit, rollups.refresh_after_load (when
installed) refreshes the affected range, on several connections for a large batch
(rollup_refresh.py); its failure is a warning, never an undo.

Two threads share the work: this one parses and prepares chunk N+1 (facts and COPY data,
built a column at a time) while the writer thread COPYs chunk N, so the loader's Python work
and the server's insert work overlap.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from loader import __version__
from loader.formats.records import (
    Device,
    FileStart,
    FormatError,
    Reading,
    ReadingBlock,
    Reject,
    Source,
)
from loader.ingest.direct import KeyIds, Prepared, StampCache, can_copy, copy_block, prepare
from loader.ingest.rollup_refresh import refresh_batch
from loader.ingest.staging import RejectBuffer, StagingEncoder, copy_staged

DEFAULT_CHUNK_ROWS = 50_000


@dataclass
class LoadOptions:
    strict: bool = False  # any rejected row fails the whole batch
    last_write_wins: bool = False  # a conflicting reading replaces the stored value
    force: bool = False  # load even if this content was committed before (rows still dedupe)
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    progress: Callable[[int], None] | None = None  # called with bytes read so far
    refresh_rollups: bool = True  # False: the caller refreshes the range later (stream)
    # Connections that share the refresh of a large batch (rollup_refresh.py), and how to
    # open the extra ones (None: the refresh runs on the load's connection only).
    refresh_parts: int = 1
    connect: Callable[[], psycopg.Connection] | None = None


@dataclass
class BatchResult:
    source_kind: str
    source_name: str
    status: str = "running"
    batch_id: int | None = None
    rows_read: int = 0
    rows_inserted: int = 0
    rows_duplicate: int = 0
    rows_conflict: int = 0
    rows_rejected: int = 0
    messages_duplicate: int = 0
    asset_rows_inserted: int = 0
    seconds: float = 0.0  # the whole load, rollup refresh included
    refresh_seconds: float = 0.0  # of which rollups.refresh_after_load after the commit
    recorded_from: str | None = None  # the readings' time range (ISO-8601), once committed
    recorded_until: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = (f"{self.source_name}: {self.status}"
                + (f" (batch {self.batch_id})" if self.batch_id is not None else "")
                + f", read {self.rows_read}, inserted {self.rows_inserted},"
                f" duplicates {self.rows_duplicate}, conflicts {self.rows_conflict},"
                f" rejected {self.rows_rejected}, {self.seconds:.2f}s")
        if self.error:
            line += f"\n  error: {self.error}"
        for warning in self.warnings:
            line += f"\n  warning: {warning}"
        return line

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class BatchFailed(Exception):
    """The batch wrote nothing but its failed batch row; `result` says why."""

    def __init__(self, result: BatchResult) -> None:
        super().__init__(result.error)
        self.result = result


class StrictReject(Exception):
    """--strict and a row was rejected."""


class _AlreadyLoaded(Exception):
    pass


def load_source(conn: psycopg.Connection, source: Source,
                options: LoadOptions | None = None) -> BatchResult:
    """Load one source as one batch. `conn` must be in autocommit mode (batches are explicit
    transactions). Returns the result; raises BatchFailed after recording a failed batch."""
    options = options or LoadOptions()
    if not conn.autocommit:
        raise ValueError("load_source needs an autocommit connection (it runs its own transaction)")
    started = time.perf_counter()
    result = BatchResult(source.kind, source.name)
    checksum = None if options.force else source.checksum
    try:
        with conn.transaction(), conn.cursor() as cur:
            # One round trip: the batch, and whether asset processing is installed.
            row = cur.execute(
                "select ingest.begin_batch(%s, %s, %s, %s),"
                " to_regprocedure('ingest.process_batch(bigint)') is not null",
                [source.kind, source.name, checksum, __version__]).fetchone()
            if row is None or row[0] is None:
                raise _AlreadyLoaded
            result.batch_id = row[0]
            parse_rejected = _write(cur, source, options, result)
            if row[1]:
                _process(cur, result)
            _commit(cur, result, parse_rejected)
    except _AlreadyLoaded:
        result.status = "skipped"
        result.batch_id = _record_outcome(conn, source, "skipped", None, 0)
        result.seconds = time.perf_counter() - started
        return result
    except Exception as exc:
        result.status = "failed"
        result.error = describe(exc)
        try:
            result.batch_id = _record_outcome(conn, source, "failed", result.error,
                                              result.rows_read)
        except psycopg.Error as record_exc:
            result.batch_id = None
            result.warnings.append(f"could not record the failed batch: {describe(record_exc)}")
        result.seconds = time.perf_counter() - started
        result.rows_inserted = result.rows_duplicate = result.rows_conflict = 0
        raise BatchFailed(result) from exc
    result.status = "committed"
    if options.refresh_rollups:
        _refresh_rollups(conn, result, options)
    result.seconds = time.perf_counter() - started
    return result


def record_unreadable(conn: psycopg.Connection, kind: str, name: str,
                      error: FormatError) -> BatchResult:
    """A source that could not even be opened as its format: a failed batch row, no data."""
    result = BatchResult(kind, name, status="failed", error=str(error))
    source = Source(kind=kind, name=name, checksum=None, items=lambda: iter(()))
    result.batch_id = _record_outcome(conn, source, "failed", result.error, 0)
    return result


def describe(exc: BaseException) -> str:
    if isinstance(exc, (FormatError, StrictReject)):
        return str(exc)
    if isinstance(exc, psycopg.Error):
        diag = exc.diag
        text = diag.message_primary or str(exc)
        if diag.context:
            text += f" (in {diag.context.splitlines()[0]})"
        if isinstance(exc, (psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedTable,
                            psycopg.errors.InvalidSchemaName)):
            text += "; is the database migrated? run `tsfleet migrate`"
        return f"database error: {text}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Chunk:
    """What the parser hands the writer: readings, or a block of them prepared for the fast
    path (the staging COPY is encoded by the writer, once it knows which path the chunk
    takes, unless the parser did already), reject COPY text and the devices to register."""

    readings: list[Reading]
    prepared: Prepared | None
    segments: list[tuple[int, int]]  # (index of the first reading, source_no) per file
    staged: bytes | None  # the staging COPY of the readings, if the parser encoded it already
    rejects: list[str]
    devices: list[dict[str, str]]
    names: list[str]


def _write(cur: psycopg.Cursor, source: Source, options: LoadOptions,
           result: BatchResult) -> int:
    """Parse in this thread while a writer thread COPYs and inserts the previous chunk.

    The database works on chunk N while Python parses chunk N+1 (psycopg releases the GIL
    while it waits); at most one chunk is queued, so memory stays bounded.
    """
    assert result.batch_id is not None
    batch_id = result.batch_id
    rejects = RejectBuffer()
    encoder = StagingEncoder()  # this thread's: the writer has its own
    readings: list[Reading] = []
    segments: list[tuple[int, int]] = [(0, 1)]
    names = [source.name]
    registered: dict[str, Device] = {}
    source_no, current = 1, source.name
    chunk_rows = options.chunk_rows
    cur.execute("select ingest.create_staging()")
    chunks: queue.Queue[_Chunk | None] = queue.Queue(maxsize=1)
    failure: list[BaseException] = []
    # Set by the writer when a chunk took the staging path (a reload, messages): the parser
    # then encodes the next chunks' staging COPY itself, overlapping the database's work.
    staging_hint = [False]
    ids = KeyIds()  # filled by the writer; read here to encode chunks ahead
    stamps = StampCache()
    writer = threading.Thread(target=_writer, name="tsfleet-ingest-writer",
                              args=(cur, chunks, failure, source, options, result,
                                    staging_hint, ids), daemon=True)
    writer.start()

    def hand_over(block: ReadingBlock | None = None) -> None:
        nonlocal readings, segments
        if failure:
            raise _WriterStopped
        changed = [d for k, d in source.devices.items() if registered.get(k) != d]
        registered.update((d.device_key, Device(**d.__dict__)) for d in changed)
        if block is None and readings and all(r[6] is None for r in readings):
            block = ReadingBlock.of(readings)  # no message ids to dedupe: may take the fast path
        prepared = None
        if not can_copy(block, options.last_write_wins):
            if block is not None and not readings:
                readings = block.readings()  # a block for the staging path
        else:
            # Encoded here while the writer COPYs the previous chunk; not when the last chunk
            # took staging (a reload), where it would most likely be wasted.
            prepared = prepare(block, batch_id, ids, stamps,  # type: ignore[arg-type]
                               encode_now=not staging_hint[0])
        staged = None
        if staging_hint[0] and (readings or block is not None):
            staged = encoder.encode(readings or block, segments)  # type: ignore[arg-type]
        chunks.put(_Chunk(readings, prepared, segments, staged, rejects.rejects,
                          [d.as_json() for d in changed], list(names)))
        readings, segments, rejects.rejects = [], [(0, source_no)], []
        if options.progress is not None and source.position is not None:
            with contextlib.suppress(OSError, ValueError):  # cosmetic: never fails a batch
                options.progress(source.position())

    parse_rejected = 0
    try:
        for item in source.items():
            kind = type(item)
            if kind is Reading:
                readings.append(item)  # type: ignore[arg-type]
                result.rows_read += 1
                if len(readings) >= chunk_rows:
                    hand_over()
            elif kind is ReadingBlock:
                block: ReadingBlock = item  # type: ignore[assignment]
                result.rows_read += len(block)
                if readings:
                    hand_over()
                if len(block) <= chunk_rows:
                    hand_over(block)
                else:
                    for start in range(0, len(block), chunk_rows):
                        hand_over(block.slice(start, start + chunk_rows))
                del item, block  # not alive while the parser builds the next one
            elif kind is Reject:
                reject: Reject = item  # type: ignore[assignment]
                result.rows_read += 1
                parse_rejected += 1
                if options.strict:
                    raise StrictReject(_strict_message(current, reject.line, reject.field,
                                                       reject.reason))
                rejects.reject(batch_id, current, reject)
            elif kind is FileStart:
                names.append(item.name)  # type: ignore[union-attr]
                source_no, current = len(names), item.name  # type: ignore[union-attr]
                segments.append((len(readings), source_no))
        hand_over()
    except _WriterStopped:
        pass
    finally:
        _stop(chunks, writer)
        result.rows_rejected += parse_rejected
    if failure:
        raise failure[0]
    return parse_rejected


class _WriterStopped(Exception):
    pass


def _stop(chunks: queue.Queue[_Chunk | None], writer: threading.Thread) -> None:
    """End the writer: it exits at the None (after its current chunk, or at once if failed)."""
    while writer.is_alive():
        try:
            chunks.put(None, timeout=0.1)
            break
        except queue.Full:
            continue
    writer.join()


def _writer(cur: psycopg.Cursor, chunks: queue.Queue[_Chunk | None],
            failure: list[BaseException], source: Source, options: LoadOptions,
            result: BatchResult, staging_hint: list[bool], ids: KeyIds) -> None:
    encoder = StagingEncoder()  # this thread's own: the parser thread has another
    while True:
        chunk = chunks.get()
        if chunk is None:
            if not failure:
                try:
                    ids.book_devices(cur)
                except BaseException as exc:  # handed to the parser thread
                    failure.append(exc)
            return
        if failure:
            continue  # drain until the parser stops
        try:
            _write_chunk(cur, chunk, encoder, ids, source, options, result, staging_hint)
        except BaseException as exc:  # handed to the parser thread, which re-raises it
            failure.append(exc)
        del chunk  # not alive while waiting for the next one


def _write_chunk(cur: psycopg.Cursor, chunk: _Chunk, encoder: StagingEncoder, ids: KeyIds,
                 source: Source, options: LoadOptions, result: BatchResult,
                 staging_hint: list[bool]) -> None:
    """One chunk: its devices and rejects, then its readings by the fast path or staging."""
    assert result.batch_id is not None
    if chunk.devices:
        cur.execute("select ingest.register_devices(%s, %s)",
                    [Jsonb(chunk.devices), source.tenant_key])
    rejects = RejectBuffer()
    rejects.rejects = chunk.rejects
    rejects.flush(cur)
    prepared = chunk.prepared
    if prepared is None and not chunk.readings:
        return
    if prepared is not None and copy_block(cur, result.batch_id, source.tenant_key,
                                           prepared, ids):
        result.rows_inserted += len(prepared.block)
        staging_hint[0] = False
        return
    staging_hint[0] = True
    staged = chunk.staged
    if staged is None:
        staged = encoder.encode(chunk.readings or prepared.block,  # type: ignore[union-attr]
                                chunk.segments)
    copy_staged(cur, staged)
    counts = cur.execute(
        "select * from ingest.insert_staged_readings(%s, %s, %s, %s)",
        [result.batch_id, source.tenant_key, chunk.names, options.last_write_wins],
    ).fetchone()
    assert counts is not None
    result.rows_inserted += counts[1]
    result.rows_duplicate += counts[2]
    result.rows_conflict += counts[3]
    result.rows_rejected += counts[4]
    result.messages_duplicate += counts[5]
    if options.strict and counts[4]:
        first = cur.execute(
            "select source_name, line_number, field_name, reason"
            " from ingest.rejects where batch_id = %s order by reject_id limit 1",
            [result.batch_id]).fetchone()
        raise StrictReject(_strict_message(*first) if first else "rows were rejected")


def _strict_message(name: str, line: int | None, field_name: str | None, reason: str) -> str:
    where = name + (f":{line}" if line is not None else "") + (
        f":{field_name}" if field_name else "")
    return (f"{where}: {reason} (--strict: any rejected row fails the batch; nothing was "
            "loaded; fix the row or load without --strict to keep the good rows)")


def _process(cur: psycopg.Cursor, result: BatchResult) -> None:
    """The asset processing contract: same transaction, right after the readings."""
    with cur.connection.cursor(row_factory=dict_row) as dict_cur:
        row = dict_cur.execute("select * from ingest.process_batch(%s)",
                               [result.batch_id]).fetchone()
    if row is not None:
        result.asset_rows_inserted = int(row.get("asset_rows_inserted") or 0)


def _commit(cur: psycopg.Cursor, result: BatchResult, parse_rejected: int) -> None:
    """Mark the batch committed, adding the rows the parser rejected to those SQL rejected."""
    with cur.connection.cursor(row_factory=dict_row) as dict_cur:
        row = dict_cur.execute("select * from ingest.commit_batch(%s, %s, %s)",
                               [result.batch_id, result.rows_read, parse_rejected]).fetchone()
    assert row is not None
    for name in ("rows_read", "rows_inserted", "rows_duplicate", "rows_conflict",
                 "rows_rejected"):
        setattr(result, name, int(row[name]))
    if row["min_recorded_at"] is not None and row["max_recorded_at"] is not None:
        result.recorded_from = row["min_recorded_at"].isoformat()
        result.recorded_until = row["max_recorded_at"].isoformat()


def _record_outcome(conn: psycopg.Connection, source: Source, status: str, error: str | None,
                    rows_read: int) -> int | None:
    row = conn.execute(
        "select ingest.record_batch_outcome(%s, %s, %s, %s, %s, %s, %s)",
        [source.kind, source.name, source.checksum, status, error, rows_read, __version__],
    ).fetchone()
    return row[0] if row else None


def _refresh_rollups(conn: psycopg.Connection, result: BatchResult,
                     options: LoadOptions) -> None:
    """Late data: refresh exactly the affected rollup range; a failure is only a warning."""
    assert result.batch_id is not None
    started = time.perf_counter()
    try:
        refresh_batch(conn, result.batch_id, result.rows_inserted, options.refresh_parts,
                      options.connect)
    except psycopg.Error as exc:
        result.warnings.append(
            f"batch {result.batch_id} is committed, but refreshing its rollups failed: "
            f"{describe(exc)}; run `tsfleet refresh` for its time range")
    finally:
        result.refresh_seconds = time.perf_counter() - started
