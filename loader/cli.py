"""The `tsfleet` command: a thin click group; each command lives in loader/commands/."""

from __future__ import annotations

import click

from loader import __version__
from loader.commands.migrate import migrate, rollback
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
