"""The `tsfleet` command: a thin click group; each command lives in loader/commands/.

Commands are imported when they run (or when --help lists them), so that `tsfleet load` does
not pay for importing the alert runner, the NATS client or the capture code: a load's start-up
time is part of what `python -m bench --only ingest` measures.
"""

from __future__ import annotations

import importlib
import sys

import click

from loader import __version__

# name: (module in loader.commands, attribute); in the order --help lists them.
COMMANDS = {
    "migrate": ("migrate", "migrate"),
    "rollback": ("migrate", "rollback"),
    "logins": ("logins", "logins"),
    "health": ("health", "health"),
    "status": ("status", "status"),
    "consume": ("consume", "consume"),
    "capture": ("capture", "capture"),
    "bundle": ("bundle", "bundle"),
    "load": ("load", "load"),
    "alerts": ("alerts", "alerts"),
    "refresh": ("refresh", "refresh"),
    "export": ("export", "export"),
    "simulate": ("simulate", "simulate"),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            module, attribute = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"loader.commands.{module}"), attribute)
            self.add_command(command, cmd_name)
        return self.commands[cmd_name]

    @property
    def all_commands(self) -> dict[str, click.Command]:
        """Every command, imported (for tests and documentation tools)."""
        for name in COMMANDS:
            self.get_command(click.Context(self), name)
        return self.commands


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tsfleet")
def main() -> None:
    """tsfleet: fleet telemetry on PostgreSQL + TimescaleDB.

    Every command reads the database URL from --database-url or $DATABASE_URL.

    Example:

        export DATABASE_URL=postgresql://tsfleet@localhost:5432/tsfleet
        tsfleet migrate && tsfleet status
    """
    from loader.logs import configure

    configure()  # the consumer's and the runner's events: JSON lines on stderr


def run() -> None:
    """The `tsfleet` console script: the group, with its output flushed and a closed pipe
    (`tsfleet ... | head`) turned into exit code 1 instead of a traceback. A normal
    interpreter exit: a library must not cut the process's teardown short for everyone."""
    try:
        main()
        code: int | str | None = 0
    except SystemExit as done:
        code = done.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            code = code or 1
    sys.exit(code or 0)
