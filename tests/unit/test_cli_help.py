"""``--help`` of every command: flags shown as flags, values with a plain metavariable."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from imagevet.cli import COMMANDS, app

runner = CliRunner()
SUBCOMMANDS = [[name] for name in COMMANDS if name != "audit"] + [["audit", "verify"], ["audit", "show"]]


def _help(argv: list[str]) -> str:
    result = runner.invoke(app, [*argv, "--help"], env={"COLUMNS": "120", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_help_shows_flags_as_flags(argv: list[str]) -> None:
    text = _help(argv)
    assert not re.search(r"<[a-z]", text), text  # no <bool>, <list[str]>, <path>, <int range>
    assert not re.search(r"\{[A-Za-z_]+\}", text), text  # no {SOURCE}
    assert "--install-completion" not in text and "--show-completion" not in text
    assert re.search(r"^\s+--help\s+Show this message and exit\.$", text, re.MULTILINE)
    for line in text.splitlines():
        m = re.match(r"^\s+(?:-\w, )?(--[a-z-]+)(?: (\S+))?", line)
        if m and m.group(1) in ("--json", "--help", "--fix", "--dry-run", "--all-tags", "--offline"):
            assert m.group(2) is None, line  # a flag takes no value


def test_values_have_plain_metavariables() -> None:
    sync = _help(["sync"])
    assert re.search(r"-p, --policy FILE\s", sync) and re.search(r"-j, --jobs N\s", sync)
    check = _help(["check"])
    assert "--format human|json|sarif" in check and "Usage: imagevet check [OPTIONS] [PATH]..." in check
    assert "Usage: imagevet copy [OPTIONS] SOURCE TARGET" in _help(["copy"])
