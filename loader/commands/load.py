"""`tsfleet load <format> ...`: load files (or stdin) as exactly-once batches."""

from __future__ import annotations

import functools
import json
import sys
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import psycopg

from loader.db import connect, resolve_url
from loader.formats import battery_api, instrument_csv, messages_jsonl
from loader.formats.generic_csv import SOURCE_KIND as GENERIC_KIND
from loader.formats.generic_csv import CsvLayout, open_generic_csv
from loader.formats.records import FormatError, Source
from loader.ingest import BatchFailed, BatchResult, LoadOptions, load_source
from loader.ingest.batch import describe, record_unreadable
from loader.ingest.checksum import content_checksum
from loader.ingest.rollup_refresh import drain_queue
from loader.options import database_url_option, json_option

# (source kind, source name, a function that opens the source: it may raise FormatError)
Opener = tuple[str, str, Callable[[], Source]]


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options every `tsfleet load` format takes."""
    decorators = [
        database_url_option,
        json_option,
        click.option("--tenant", default="default", show_default=True, metavar="KEY",
                     help="Tenant of devices first seen in this load (messages carry their "
                          "own organizationId)."),
        click.option("--strict", is_flag=True,
                     help="Any rejected row fails the whole batch (nothing is loaded)."),
        click.option("--last-write-wins", is_flag=True,
                     help="A reading whose key exists with another value replaces it "
                          "(default: keep the stored value and count a conflict)."),
        click.option("--force", is_flag=True,
                     help="Load even if the same content was loaded before (rows are still "
                          "deduplicated by key)."),
        click.option("--refresh-connections", type=click.IntRange(1, 8), default=2,
                     show_default=True, metavar="N",
                     help="After a batch of 100,000 new readings or more, refresh its rollups "
                          "on N connections at once, each for a share of the devices "
                          "(Apache edition; 1: on the load's own connection)."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _zone(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value != "UTC":
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise click.BadParameter(f"unknown time zone {value!r}") from None
    return value


def timezone_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--timezone and --ambiguous: how local times (without an offset) are read."""
    command = click.option(
        "--ambiguous", type=click.Choice(["raise", "earliest", "latest"]), default="raise",
        show_default=True,
        help="A local time the clocks show twice (DST ends): reject it (raise), or take the "
             "earliest or latest instant. Nonexistent local times are always rejected.")(command)
    return click.option("--timezone", default="UTC", show_default=True, callback=_zone,
                        help="Time zone of timestamps written without an offset.")(command)


@click.group()
def load() -> None:
    """Load telemetry files as exactly-once batches (one batch per file or directory).

    \b
    Formats:
      instruments  ROOT/instrument_<ID>/instrument_<ID>_YYYYMMDD.csv (greenhouse instruments)
      battery      DIR with assets/assets.json and telemetry/<deviceId>.json (vendor API)
      messages     JSON Lines of normalized telemetry messages (a file or - for stdin)
      csv          generic CSV, narrow (time,device,metric,value[,quality]) or wide

    Loading the same content again is a no-op (status skipped); readings already stored
    are counted as duplicates, or as conflicts when the value differs (the stored value is
    kept unless --last-write-wins). Bad rows go to ingest.rejects with file, line, field and
    reason; a file that cannot be read as its format fails with nothing loaded. Prints one
    summary line per batch (--json: one JSON document). Exit status 1 if any batch failed.

    Example:

    \b
        tsfleet load instruments data/samples/instruments
        tsfleet load battery data/samples/battery --json
        cat data/samples/messages/messages.jsonl | tsfleet load messages -
        tsfleet load csv data/samples/generic/narrow.csv
    """


@load.command("instruments")
@click.argument("root", type=click.Path(exists=True, path_type=Path))
@click.option("--instrument", metavar="ID", help="Load only this instrument (folder id).")
@click.option("--day", metavar="YYYYMMDD", help="Load only this day's files.")
@timezone_options
@common_options
def instruments(root: Path, instrument: str | None, day: str | None, timezone: str,
                ambiguous: str, **common: Any) -> None:
    """Greenhouse instrument folders: one batch per daily file.

    Files are ROOT/instrument_<ID>/instrument_<ID>_YYYYMMDD.csv with the header
    timestamp,temperature_c,humidity_pct,quality_flag. The device is <ID>; a new folder is a
    new device. Columns become metrics (unit from the suffix: _c Celsius, _pct percent);
    quality_flag becomes the quality of the row's readings. ROOT may also be one folder or
    one file.

    Example:

    \b
        tsfleet load instruments data/samples/instruments --instrument GH1-03 --day 20260127
    """
    files = instrument_csv.discover(root, instrument, day)
    if not files:
        raise click.ClickException(
            f"{root}: no instrument files found"
            + (f" for instrument {instrument}" if instrument else "")
            + (f" on day {day}" if day else "")
            + "; expected ROOT/instrument_<ID>/instrument_<ID>_YYYYMMDD.csv")

    def opener(path: Path) -> Opener:
        def open_source() -> Source:
            checksum = content_checksum([path], options=_stored_by(
                instrument_csv.layout(path, timezone, ambiguous).describe(), common))
            return instrument_csv.open_instrument_file(path, checksum, common["tenant"],
                                                       timezone, ambiguous)
        return instrument_csv.SOURCE_KIND, str(path), open_source

    _run([opener(p) for p in files], sum(p.stat().st_size for p in files), **common)


@load.command("battery")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@common_options
def battery(directory: Path, **common: Any) -> None:
    """Battery vendor API responses: the whole directory is one batch.

    DIR/assets/assets.json = {"totalCount": N, "items": [{"deviceId", "description",
    "state"}]} (each asset becomes a device with its description and state) and
    DIR/telemetry/<deviceId>.json = {"series": [{"name", "data": [[epoch ms, value], ...]}]}
    (series names become metrics as given; an asset without a telemetry file is fine).

    Example:

    \b
        tsfleet load battery data/samples/battery
    """
    def open_source() -> Source:
        files = battery_api.files_of(directory)
        checksum = content_checksum(files, root=directory, options=_stored_by("", common))
        return battery_api.open_battery_dir(directory, checksum, common["tenant"])

    _run([(battery_api.SOURCE_KIND, str(directory), open_source)], 0, **common)


@load.command("messages")
@click.argument("path", type=click.Path(allow_dash=True, dir_okay=False))
@common_options
def messages(path: str, **common: Any) -> None:
    """Normalized telemetry messages, one JSON object per line (PATH or - for stdin).

    {"messageId", "deviceId", "organizationId", "timestamp", "receivedAt", "metrics":
    {"temperature": 25.5, ...}, "deviceMetadata": {"deviceType", "serialNumber",
    "firmwareVersion"}}. A message id loaded before is a duplicate and changes nothing;
    organizationId is the device's tenant; deviceMetadata updates the device record.

    Example:

    \b
        tsfleet load messages data/samples/messages/messages.jsonl
        producer | tsfleet load messages -
    """
    if path != "-" and not Path(path).is_file():
        raise click.UsageError(f"{path}: no such file (use - for stdin)")

    def open_source() -> Source:
        checksum = None if path == "-" else content_checksum([Path(path)],
                                                             options=_stored_by("", common))
        return messages_jsonl.open_jsonl(path, checksum, common["tenant"])

    size = 0 if path == "-" else Path(path).stat().st_size
    name = "<stdin>" if path == "-" else path
    _run([(messages_jsonl.SOURCE_KIND, name, open_source)], size, **common)


@load.command("csv")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layout", type=click.Choice(["narrow", "wide"]), default="narrow",
              show_default=True, help="narrow: one reading per row; wide: one column per metric.")
@click.option("--time-column", "time_columns", multiple=True, metavar="NAME",
              help="Column of the timestamp (default time); repeat it for a date and a time in "
                   "separate columns (joined by a space).")
@click.option("--device-column", default="device", show_default=True,
              help="Column naming the device (ignored with --device).")
@click.option("--device", "fixed_device", metavar="KEY",
              help="Every row belongs to this device (no device column).")
@click.option("--metric-column", default="metric", show_default=True, help="Narrow only.")
@click.option("--value-column", default="value", show_default=True, help="Narrow only.")
@click.option("--quality-column", default="quality", show_default=True,
              help="Optional quality column (used when present).")
@click.option("--columns", metavar="A,B", help="Wide only: load just these metric columns.")
@click.option("--exclude", metavar="A,B", help="Wide only: do not load these columns.")
@click.option("--time-format", default="iso", show_default=True, metavar="FORMAT",
              help="iso (offset, Z or --timezone), epoch_s, epoch_ms, or a strptime format "
                   "such as '%d/%m/%Y %H:%M:%S' (local times in --timezone).")
@timezone_options
@click.option("--delimiter", default=",", show_default=True, metavar="CHAR",
              help="Field delimiter, one character (';', or 'tab').")
@click.option("--decimal", type=click.Choice([".", ","]), default=".", show_default=True,
              help="Decimal mark of values (',' for European exports).")
@click.option("--na-value", "na_values", multiple=True, metavar="TEXT",
              help="A cell holding this text is missing: counted, neither stored nor "
                   "rejected (repeatable, e.g. --na-value -200).")
@common_options
def generic_csv(files: tuple[Path, ...], layout: str, time_columns: tuple[str, ...],
                device_column: str, fixed_device: str | None, metric_column: str,
                value_column: str, quality_column: str, columns: str | None,
                exclude: str | None, time_format: str, timezone: str, ambiguous: str,
                delimiter: str, decimal: str, na_values: tuple[str, ...],
                **common: Any) -> None:
    """Generic CSV files, narrow or wide: one batch per file.

    \b
    narrow: time,device,metric,value[,quality]   (column names set by options)
    wide:   time,device,<metric>,<metric>...      (or --device KEY and no device column)
    Empty cells in a wide file are "no reading", not errors.

    Example:

    \b
        tsfleet load csv readings.csv
        tsfleet load csv --layout wide --device pump-7 --time-format epoch_ms pump7.csv
        tsfleet load csv --layout wide --device air-1 --delimiter ';' --decimal , \\
            --time-column Date --time-column Time --time-format '%d/%m/%Y %H.%M.%S' \\
            --na-value -200 --exclude NMHC AirQuality.csv
    """
    delimiter = "\t" if delimiter in ("\\t", "tab") else delimiter
    if len(delimiter) != 1 or delimiter in '"\n\r':
        raise click.BadParameter("one character other than a quote or a line break",
                                 param_hint="--delimiter")
    if delimiter == decimal:
        raise click.BadParameter("the delimiter and the decimal mark must differ",
                                 param_hint="--decimal")
    spec = CsvLayout(layout=layout, time_columns=time_columns or ("time",),
                     device_column=None if fixed_device else device_column,
                     metric_column=metric_column, value_column=value_column,
                     quality_column=quality_column, device=fixed_device,
                     time_format=time_format, timezone=timezone, ambiguous=ambiguous,
                     delimiter=delimiter, decimal=decimal, na_values=na_values,
                     columns=_names(columns), exclude=_names(exclude))

    def opener(path: Path) -> Opener:
        def open_source() -> Source:
            checksum = content_checksum([path], options=_stored_by(spec.describe(), common))
            return open_generic_csv(path, spec, checksum, common["tenant"])
        return GENERIC_KIND, str(path), open_source

    _run([opener(p) for p in files], sum(p.stat().st_size for p in files), **common)


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip()) if text else ()


def _stored_by(reading: str, common: dict[str, Any]) -> str:
    """Every option that changes what a load stores, for the checksum: a load of the same
    file with another of them is a new batch, not 'skipped'."""
    return f"{reading}|tenant={common['tenant']}|lww={common['last_write_wins']}"


@contextmanager
def _progress(total_files: int, total_bytes: int, enabled: bool) -> Iterator[Any]:
    """A progress bar over bytes on a terminal for multi-file or large loads; else nothing."""
    if not enabled or not sys.stderr.isatty() or (total_files < 2 and total_bytes < 20 << 20):
        yield None
        return
    with click.progressbar(length=max(total_bytes, 1), label="loading",
                           file=sys.stderr) as bar:
        yield bar


def _run(openers: list[Opener], total_bytes: int, *, database_url: str | None,
         as_json: bool, tenant: str, strict: bool, last_write_wins: bool, force: bool,
         refresh_connections: int) -> None:
    url = resolve_url(database_url)
    results: list[BatchResult] = []
    try:
        conn = connect(url, autocommit=True)
    except Exception as exc:
        raise click.ClickException(f"cannot connect to the database: {exc}") from exc
    # Every committed batch queues the rollup refresh it needs (ingest.commit_batch). One file:
    # its batch is refreshed right after its commit. Several files: the batches skip that, and
    # the queue is drained once after the last one (a folder of daily files re-aggregated each
    # day's buckets once per file). Either way the drain at the end also refreshes what a load
    # killed earlier left queued.
    one_file = len(openers) == 1
    refresh: tuple[int, float, str | None] = (0, 0.0, None)
    with conn, _progress(len(openers), total_bytes, not as_json) as bar:
        done_before = 0
        for kind, name, open_source in openers:
            options = LoadOptions(strict=strict, last_write_wins=last_write_wins, force=force,
                                  refresh_rollups=one_file,
                                  refresh_parts=refresh_connections,
                                  connect=functools.partial(connect, url, autocommit=True))
            if bar is not None:
                options.progress = functools.partial(_advance, bar, done_before)
            size = 0
            try:
                source = open_source()
                size = source.size
                result = load_source(conn, source, options)
            except FormatError as exc:
                try:
                    result = record_unreadable(conn, kind, name, exc)
                except psycopg.Error as db_exc:
                    raise click.ClickException(
                        f"{exc}; and recording the failed batch failed: {describe(db_exc)}"
                    ) from db_exc
            except BatchFailed as failed:
                result = failed.result
            results.append(result)
            done_before += size
            if bar is not None:
                bar.update(max(0, done_before - bar.pos))
            if not as_json and bar is None:
                click.echo(result.summary(), err=result.status == "failed")
        refresh = _drain_refresh_queue(conn)
    if bar is not None:  # summaries after the bar, not through it
        for result in results:
            click.echo(result.summary(), err=result.status == "failed")
    ranges, seconds, warning = refresh
    if ranges and not as_json:
        click.echo(f"rollups refreshed for {ranges} time range(s), {seconds:.2f}s")
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        totals = {**_totals(results), "rollup_ranges_refreshed": ranges,
                  "refresh_seconds": round(seconds + sum(r.refresh_seconds for r in results),
                                           3)}
        click.echo(json.dumps({"batches": [r.as_dict() for r in results], "totals": totals},
                              indent=2))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(results)} batch(es) failed and loaded nothing; "
            "fix the input named above and run the same command again")


def _drain_refresh_queue(conn: psycopg.Connection) -> tuple[int, float, str | None]:
    """(ranges refreshed, seconds, warning): the committed data stays, whatever happens."""
    try:
        ranges, seconds = drain_queue(conn)
    except psycopg.Error as exc:
        return 0, 0.0, (
            f"the batches are committed, but refreshing their rollups failed: {describe(exc)};"
            " they stay queued: run `tsfleet refresh`")
    return ranges, seconds, None


def _advance(bar: Any, done_before: int, position: int) -> None:
    bar.update(max(0, done_before + position - bar.pos))


def _totals(results: list[BatchResult]) -> dict[str, int]:
    keys = ("rows_read", "rows_inserted", "rows_duplicate", "rows_conflict", "rows_rejected",
            "values_missing")
    totals = {k: sum(int(getattr(r, k)) for r in results) for k in keys}
    totals["batches"] = len(results)
    totals["failed"] = sum(r.status == "failed" for r in results)
    return totals

