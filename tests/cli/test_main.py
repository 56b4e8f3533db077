"""`dockline --help` and every command's: an example each, and the
documented exit codes."""

import subprocess

import pytest
from helpers.cli import DOCKLINE

COMMANDS = ["cnitool", "networks", "inspect", "gc", "validate", "install"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    run = subprocess.run([str(DOCKLINE), command, "--help"], capture_output=True, text=True)
    assert run.returncode == 0
    examples = run.stdout.split("examples:", 1)[1]
    assert f"dockline {command}" in examples and "exit status:" in run.stdout


def test_top_level_help_lists_the_commands():
    run = subprocess.run([str(DOCKLINE), "--help"], capture_output=True, text=True)
    assert run.returncode == 0
    for command in COMMANDS:
        assert f"dockline {command}" in run.stdout
    assert "exit status: 0 ok, 1" in run.stdout
    assert subprocess.run([str(DOCKLINE)], capture_output=True).returncode == 2
