"""`tsfleet bundle verify DIR` and `tsfleet bundle load DIR`: check and import capture bundles."""

from __future__ import annotations

from pathlib import Path

import click
import psycopg

from loader.capture.load import BundleLoadError, load
from loader.capture.verify import verify as verify_bundle
from loader.db import redacted, resolve_url
from loader.options import database_url_option

folder_argument = click.argument(
    "folder", metavar="DIR", type=click.Path(file_okay=False, path_type=Path)
)


@click.group()
def bundle() -> None:
    """Check and import capture bundles (written by `tsfleet capture`).

    Example:

    \b
        tsfleet bundle verify captures/2026-01-01 && tsfleet bundle load captures/2026-01-01
    """


@bundle.command()
@folder_argument
def verify(folder: Path) -> None:
    """Recompute every checksum of a bundle; exit 1 on any mismatch, missing or extra file.

    Example:

    \b
        tsfleet bundle verify captures/2026-01-01
    """
    result = verify_bundle(folder)
    if not result.ok:
        for problem in result.problems:
            click.echo(f"{folder}/{problem}", err=True)
        raise click.ClickException(
            f"{folder}: {len(result.problems)} problem(s); the bundle is not what was captured"
        )
    checksum = result.manifest["provenance"]["bundle_sha256"]  # type: ignore[index]
    click.echo(f"{folder}: ok, {result.files_checked} file(s), bundle sha256 {checksum}")


@bundle.command(name="load")
@database_url_option
@folder_argument
def load_command(database_url: str | None, folder: Path) -> None:
    """Import a bundle as readings, one ingest batch; loading it again changes nothing.

    Each CSV row becomes a reading at its bin start (gap-filled and injected bins and NaN
    values are skipped); devices, assets and metrics are registered if missing.

    Example:

    \b
        tsfleet bundle load captures/2026-01-01 --database-url postgresql://localhost/testbed
    """
    url = resolve_url(database_url)
    try:
        result = load(url, folder)
    except BundleLoadError as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.Error as exc:
        raise click.ClickException(
            f"loading {folder} into {redacted(url)} failed, nothing was written: {exc}"
        ) from exc
    if result.already_loaded:
        click.echo(f"{folder}: already loaded as batch {result.batch_id}; nothing to do")
        return
    click.echo(
        f"{folder}: batch {result.batch_id} committed: {result.rows_inserted} "
        f"{result.series_kind} reading(s) inserted, {result.rows_duplicate} duplicate, "
        f"{result.rows_conflict} conflict, {result.rows_rejected} rejected "
        f"(see ingest.rejects), {result.rows_skipped} gap row(s) skipped"
    )
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
