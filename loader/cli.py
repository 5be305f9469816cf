"""The `tsfleet` command: a thin click group; each command lives in loader/commands/."""

from __future__ import annotations

import click

from loader import __version__
from loader.commands.alerts import alerts
from loader.commands.bundle import bundle
from loader.commands.capture import capture
from loader.commands.consume import consume
from loader.commands.export import export
from loader.commands.load import load
from loader.commands.migrate import migrate, rollback
from loader.commands.refresh import refresh
from loader.commands.status import status


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tsfleet")
def main() -> None:
    """tsfleet: fleet telemetry on PostgreSQL + TimescaleDB.

    Every command reads the database URL from --database-url or $DATABASE_URL.

    Example:

        export DATABASE_URL=postgresql://tsfleet@localhost:5432/tsfleet
        tsfleet migrate && tsfleet status
    """


main.add_command(migrate)
main.add_command(rollback)
main.add_command(status)
main.add_command(consume)
main.add_command(capture)
main.add_command(bundle)
main.add_command(load)
main.add_command(alerts)
main.add_command(refresh)
main.add_command(export)
