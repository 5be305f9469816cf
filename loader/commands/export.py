"""`tsfleet export rollups`: rollups as JSON documents for downstream tools."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
import psycopg

from loader.db import connect, resolve_url
from loader.export import ExportError, export_instrument_rollups
from loader.options import database_url_option
from loader.tables import render


@click.group()
def export() -> None:
    """Export summaries as files for downstream tools.

    Example:

        tsfleet export rollups --day 2026-03-01 --out exports/
    """


@export.command("rollups")
@database_url_option
@click.option("--day", "day_text", required=True, metavar="YYYY-MM-DD",
              help="UTC day to export.")
@click.option("--instrument", "instruments", multiple=True, metavar="ID",
              help="Only this instrument id (repeatable); default: every instrument that day.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write instrument_<ID>_<YYYYMMDD>.json files into.")
def export_rollups(database_url: str | None, day_text: str, instruments: tuple[str, ...],
                   out_dir: Path) -> None:
    """Write one JSON document per instrument and day from rollups.instrument_daily.

    Each document holds the instrument id, the day, per metric (temperature_c, humidity_pct)
    min/max/mean/count with good and non-good quality counts, and provenance (generator,
    source rollup, the ingest batches the readings came from). Keys are sorted and nothing
    time-dependent is written: the same data gives the same bytes. Run `tsfleet refresh`
    first if the day was loaded recently.

    Example:

        tsfleet export rollups --day 2026-03-01 --instrument 7 --out exports/
    """
    try:
        day = datetime.strptime(day_text, "%Y-%m-%d").date()
    except ValueError as exc:
        raise click.BadParameter(f"{day_text!r} is not a day like 2026-03-01",
                                 param_hint="--day") from exc
    url = resolve_url(database_url)
    try:
        with connect(url) as conn:
            written = export_instrument_rollups(conn, day, out_dir, list(instruments) or None)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.Error as exc:
        raise click.ClickException(
            f"export of {day.isoformat()} failed: {str(exc).strip()}; is the database "
            f"migrated (`tsfleet migrate`)?") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write to {out_dir}: {exc}") from exc
    click.echo(render(["instrument", "readings", "file"],
                      [(w.instrument_id, w.reading_count, str(w.path)) for w in written]))

