"""Every command teaches: --help works and shows an example."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from loader import __version__
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
    # A docstring's unescaped backslash-newline joins two example lines into one with a run of
    # spaces before the second's first option: the example is no longer copy-paste.
    examples = result.output.split("Example", 1)[1].split("Options:", 1)[0]
    joined = [line for line in examples.splitlines() if re.search(r"\S {6,}--", line)]
    assert not joined, f"`tsfleet {' '.join(path)} --help`: example lines run together: {joined}"


def test_a_command_without_a_database_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert "DATABASE_URL" in result.output


def run_console_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from loader.cli import run; run()", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DATABASE_URL": ""})


def test_the_console_script_keeps_output_and_exit_codes() -> None:
    """run() flushes and exits normally: what the command printed must arrive, whole, and
    its exit code must be the command's."""
    version = run_console_script("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"tsfleet, version {__version__}")
    helped = run_console_script("load", "csv", "--help")
    assert helped.returncode == 0 and helped.stdout.rstrip().endswith("Show this message and exit.")
    usage = run_console_script("load", "csv", "--no-such-option")
    assert usage.returncode == 2 and "No such option" in usage.stderr
    refused = run_console_script("status")
    assert refused.returncode != 0 and "DATABASE_URL" in refused.stderr
