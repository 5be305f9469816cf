"""`tsfleet capture`: a deterministic, gap-aware bundle of telemetry files with a manifest."""

from __future__ import annotations

from pathlib import Path

import click
import psycopg

from loader.capture import bundle, gaps
from loader.capture.grid import UnknownSeriesError
from loader.capture.request import AGGREGATES, FILLS, CaptureArgumentError, CaptureRequest
from loader.db import redacted, resolve_url
from loader.options import database_url_option
from loader.tables import render


@click.command()
@database_url_option
@click.option("--devices", multiple=True, metavar="KEY[,KEY...]",
              help="Device keys to capture (repeatable, comma-separated).")
@click.option("--assets", multiple=True, metavar="KEY[,KEY...]",
              help="Asset keys to capture instead of devices (asset readings).")
@click.option("--metrics", multiple=True, required=True, metavar="NAME[,NAME...]",
              help="Metric names; every key x metric pair becomes one CSV.")
@click.option("--start", required=True, metavar="T0",
              help="Window start, ISO-8601 (no offset = UTC); the first bin starts here.")
@click.option("--end", required=True, metavar="T1",
              help="Window end, exclusive; end - start must be a whole number of bins.")
@click.option("--bin", "bin_text", default="5m", show_default=True, metavar="SIZE",
              help="Bin size: a number and s, m, h or d.")
@click.option("--aggregate", type=click.Choice(AGGREGATES), default="mean", show_default=True,
              help="How the readings of one bin become its value.")
@click.option("--fill", type=click.Choice(FILLS), default="nan", show_default=True,
              help="Bins without readings: nan, zero, hold (last value), none (no row).")
@click.option("--gaps", "gaps_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML/JSON file of gaps to inject (remove, nan or zero listed bins).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Bundle folder to write (new or empty).")
@click.option("--force", is_flag=True, help="Replace --out if it holds a previous bundle.")
@click.option("--dry-run", is_flag=True,
              help="Print the planned files, bin counts, gaps and sizes; write nothing.")
def capture(
    database_url: str | None, devices: tuple[str, ...], assets: tuple[str, ...],
    metrics: tuple[str, ...], start: str, end: str, bin_text: str, aggregate: str, fill: str,
    gaps_file: Path | None, out: Path | None, force: bool, dry_run: bool,
) -> None:
    """Capture readings on a fixed time grid: one CSV per series and a manifest.json.

    Binning and gap filling run in SQL (telemetry.bin_readings). The same database contents
    and arguments always give byte-identical files; the manifest lists every file with its
    sha256, the warnings (data_gap, nan_fill, zero_fill, hold_fill, partial_bin,
    out_of_range, gap_injected_*) and the provenance. See docs/capture.md.

    Example:

    \b
        tsfleet capture --devices pump-01,pump-02 --metrics power_w,temperature_c \\
            --start 2026-01-01T00:00:00Z --end 2026-01-02T00:00:00Z --bin 5m \\
            --fill hold --out captures/2026-01-01
    """
    url = resolve_url(database_url)
    if out is None and not dry_run:
        raise click.UsageError("give --out DIR (or --dry-run to only see the plan)")
    try:
        request = CaptureRequest.build(devices=devices, assets=assets, metrics=metrics,
                                       start=start, end=end, bin_text=bin_text,
                                       aggregate=aggregate, fill=fill)
        injections = gaps.read_injections(gaps_file, request) if gaps_file else []
    except CaptureArgumentError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        result = bundle.capture(url, request, injections)
    except UnknownSeriesError as exc:
        raise click.UsageError(str(exc)) from None
    except psycopg.Error as exc:
        raise click.ClickException(
            f"capture failed on {redacted(url)}: {exc}; is the database migrated "
            "(`tsfleet migrate`)?"
        ) from exc
    if dry_run:
        _print_plan(result, request)
        return
    assert out is not None
    try:
        bundle.write(result, out, replace=force)
    except (bundle.BundleWriteError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    warnings = result.manifest["warnings"]
    click.echo(
        f"wrote {len(result.files)} file(s) and manifest.json to {out} "
        f"({request.bin_count} bins each, {len(warnings)} warning(s); "  # type: ignore[arg-type]
        f"bundle sha256 {result.manifest['provenance']['bundle_sha256']})"  # type: ignore[index]
    )


def _print_plan(result: bundle.Bundle, request: CaptureRequest) -> None:
    plan = result.plan()
    click.echo(render(["file", "rows", "gap bins", "bytes"],
                      [[p["path"], p["rows"], p["gap_bins"], p["bytes"]] for p in plan]))
    total = sum(int(p["bytes"]) for p in plan) + len(result.manifest_bytes)
    codes: dict[str, int] = {}
    for entry in result.manifest["warnings"]:  # type: ignore[union-attr]
        codes[entry["code"]] = codes.get(entry["code"], 0) + int(entry["count"])
    click.echo(f"\n{len(plan)} file(s) x {request.bin_count} bins of {request.bin_seconds} s, "
               f"{total} bytes with manifest.json")
    if codes:
        click.echo("warnings (bins): " + ", ".join(f"{c} {n}" for c, n in sorted(codes.items())))
    click.echo("dry run: nothing written")
