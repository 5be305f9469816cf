"""Every command teaches: --help works and shows an example."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from loader.cli import main


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(getattr(group, "all_commands", group.commands).items()):
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


COMMANDS = list(all_commands(main))


def test_the_tool_lists_its_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for path, _ in COMMANDS:
        if len(path) == 1:
            assert path[0] in result.output


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`tsfleet {' '.join(path)} --help` shows no example"


def test_a_command_without_a_database_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert "DATABASE_URL" in result.output
