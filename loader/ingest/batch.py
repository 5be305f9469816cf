"""One source, one batch, one transaction: exactly once, all or nothing.

In one transaction: ingest.begin_batch (the checksum registry), ingest.create_staging, the
source's bytes by COPY (copy.py), then ingest.write_batch, which parses and checks them,
writes rejects and collisions, registers devices and metrics, inserts the readings, runs the
asset processing and marks the batch committed (sql/functions/2x_ingest_*.sql). A killed
loader leaves nothing: the batch row is part of the rolled-back transaction. A failure rolls
everything back and then records a failed batch row with the error in its own transaction.
After the commit the rollups of the batch's range are refreshed (rollup_refresh.py); a
failure there is a warning, never an undo.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from loader import __version__
from loader.formats.records import FormatError, Source
from loader.ingest.rollup_refresh import refresh_batch

# SQLSTATEs of sql/functions/2x_ingest_*.sql: input error, --strict, every row rejected.
SHOWN_REJECTS = 3  # rejects named in a batch's summary
INPUT_STATES = ("TSF01", "TSF02", "TSF03", "TSF04")
_COPY_LINE = re.compile(r"COPY ingest_lines, line (\d+)")


@dataclass
class LoadOptions:
    strict: bool = False  # any rejected row or conflict fails the whole batch
    last_write_wins: bool = False  # a conflicting reading replaces the stored value
    force: bool = False  # load even if this content was committed before (rows still dedupe)
    allow_empty: bool = False  # a batch whose every row is rejected commits (the stream)
    progress: Callable[[int], None] | None = None  # called with bytes read so far
    refresh_rollups: bool = True  # False: the caller refreshes the range later
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
    values_missing: int = 0
    asset_rows_inserted: int = 0
    seconds: float = 0.0  # the whole load, rollup refresh included
    refresh_seconds: float = 0.0  # of which the rollup refresh after the commit
    recorded_from: str | None = None  # the readings' time range (ISO-8601), once committed
    recorded_until: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    # The first rejects (file:line:field: reason), to show where; all are in ingest.rejects.
    first_rejects: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = (f"{self.source_name}: {self.status}"
                + (f" (batch {self.batch_id})" if self.batch_id is not None else "")
                + f", read {self.rows_read}, inserted {self.rows_inserted},"
                f" duplicates {self.rows_duplicate}, conflicts {self.rows_conflict},"
                f" rejected {self.rows_rejected}"
                + (f", missing {self.values_missing}" if self.values_missing else "")
                + f", {self.seconds:.2f}s")
        if self.error:
            line += f"\n  error: {self.error}"
        for reject in self.first_rejects:
            line += f"\n  rejected {reject}"
        if self.rows_rejected > len(self.first_rejects):
            line += (f"\n  ... {self.rows_rejected - len(self.first_rejects)} more: select *"
                     f" from ingest.rejects where batch_id = {self.batch_id}")
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
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute("select ingest.begin_batch(%s, %s, %s, %s) as batch_id",
                              [source.kind, source.name, checksum, __version__]).fetchone()
            if row is None or row["batch_id"] is None:
                raise _AlreadyLoaded
            result.batch_id = row["batch_id"]
            cur.execute("select ingest.create_staging()")
            source.feed(cur, options.progress)
            _write(cur, source, options, result)
    except _AlreadyLoaded:
        result.status = "skipped"
        result.batch_id = _record_outcome(conn, source.kind, source.name, source.checksum,
                                          "skipped", None)
        result.seconds = time.perf_counter() - started
        return result
    except Exception as exc:
        if not isinstance(exc, (FormatError, psycopg.Error)):
            raise
        result.status = "failed"
        result.error = describe(exc, source)
        try:
            result.batch_id = _record_outcome(conn, source.kind, source.name, source.checksum,
                                              "failed", result.error)
        except psycopg.Error as record_exc:
            result.batch_id = None
            result.warnings.append(f"could not record the failed batch: {describe(record_exc)}")
        result.seconds = time.perf_counter() - started
        raise BatchFailed(result) from exc
    result.status = "committed"
    if options.refresh_rollups:
        _refresh_rollups(conn, result, options)
    result.seconds = time.perf_counter() - started
    return result


def _write(cur: psycopg.Cursor, source: Source, options: LoadOptions,
           result: BatchResult) -> None:
    settings = {**source.options, "tenant": source.tenant_key, "strict": options.strict,
                "last_write_wins": options.last_write_wins, "allow_empty": options.allow_empty}
    row = cur.execute("select * from ingest.write_batch(%s, %s, %s, %s)",
                      [result.batch_id, source.format, source.names or [source.name],
                       Jsonb(settings)]).fetchone()
    assert row is not None
    for name in ("rows_read", "rows_inserted", "rows_duplicate", "rows_conflict",
                 "rows_rejected", "messages_duplicate", "values_missing",
                 "asset_rows_inserted"):
        setattr(result, name, int(row[name] or 0))
    if row["min_recorded_at"] is not None and row["max_recorded_at"] is not None:
        result.recorded_from = row["min_recorded_at"].isoformat()
        result.recorded_until = row["max_recorded_at"].isoformat()
    if result.rows_rejected:
        result.first_rejects = [r["reject"] for r in cur.execute(
            "select concat_ws(':', source_name, line_number, field_name) || ': ' || reason"
            " as reject from ingest.rejects where batch_id = %s"
            " order by line_number, reject_id limit %s",
            [result.batch_id, SHOWN_REJECTS])]


def record_unreadable(conn: psycopg.Connection, kind: str, name: str,
                      error: FormatError) -> BatchResult:
    """A source that could not even be opened as its format: a failed batch row, no data."""
    result = BatchResult(kind, name, status="failed", error=str(error))
    result.batch_id = _record_outcome(conn, kind, name, None, "failed", result.error)
    return result


def describe(exc: BaseException, source: Source | None = None) -> str:
    """What went wrong, for the user: input errors as the SQL or the format says them."""
    if isinstance(exc, FormatError):
        return str(exc)
    if isinstance(exc, psycopg.Error):
        diag = exc.diag
        text = diag.message_primary or str(exc)
        if exc.sqlstate in INPUT_STATES:
            return text + (f" ({diag.message_hint})" if diag.message_hint else "")
        copied = _COPY_LINE.search(diag.context or "")
        if copied and source is not None:
            hint = ("re-encode the file as UTF-8" if exc.sqlstate == "22021"
                    else "use one line ending (LF or CRLF) throughout the file")
            what = "not UTF-8 text" if exc.sqlstate == "22021" else "unreadable text"
            return f"{source.name}:{copied.group(1)}: {what}: {text} ({hint})"
        if diag.context:
            text += f" (in {diag.context.splitlines()[0]})"
        if isinstance(exc, (psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedTable,
                            psycopg.errors.InvalidSchemaName)):
            text += "; is the database migrated? run `tsfleet migrate`"
        return f"database error: {text}"
    return str(exc)


def _record_outcome(conn: psycopg.Connection, kind: str, name: str, checksum: str | None,
                    status: str, error: str | None) -> int | None:
    """A batch row that wrote nothing (failed or skipped); its id."""
    row = conn.execute("select ingest.record_batch_outcome(%s, %s, %s, %s, %s, 0, %s)",
                       [kind, name, checksum, status, error, __version__]).fetchone()
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
