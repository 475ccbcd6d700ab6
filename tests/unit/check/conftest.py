"""Shared fixtures for the check tests: the fixture repository, its vetted mirrors, a context."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imagevet.category import AccessSettings
from imagevet.check import CheckContext, VettedImage, read_vetted
from tests.unit.check.dry_run import check_every_diff

__all__ = ["check_every_diff"]  # autouse: every diff a check test makes is a patch git and patch accept

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "check"
REPO = FIXTURES / "repo"
VETTED_JSON = FIXTURES / "vetted.json"


@pytest.fixture
def vetted() -> list[VettedImage]:
    return read_vetted(VETTED_JSON)


@pytest.fixture
def context(vetted: list[VettedImage]) -> CheckContext:
    """The acme org, IAM on with official and verified images allowed, offline categories."""
    return CheckContext("acme", AccessSettings("acme", enabled=True), vetted)


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture repository."""
    target = tmp_path / "repo"
    shutil.copytree(REPO, target)
    return target
