"""Options shared by several commands, as decorators."""

from __future__ import annotations

import click

database_url_option = click.option(
    "--database-url",
    envvar="DATABASE_URL",
    metavar="URL",
    help="PostgreSQL URL (default: $DATABASE_URL), e.g. postgresql://tsfleet@localhost/tsfleet.",
)

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print machine-readable JSON instead of text.")
