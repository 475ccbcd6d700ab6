"""The pre-commit hook definitions: valid, and matching the files ``check`` reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

HOOKS_FILE = Path(__file__).resolve().parents[3] / ".pre-commit-hooks.yaml"


@pytest.fixture(scope="module")
def hooks() -> list[dict[str, Any]]:
    data = YAML(typ="safe", pure=True).load(HOOKS_FILE.read_text())
    assert isinstance(data, list)
    return data


def test_hook_definitions(hooks: list[dict[str, Any]]) -> None:
    assert [h["id"] for h in hooks] == ["imagevet-check", "imagevet-check-fix"]
    for hook in hooks:
        assert {"id", "name", "entry", "language"} <= hook.keys()
        assert hook["language"] == "python"
    assert hooks[0]["entry"] == "imagevet check"
    assert hooks[1]["entry"] == "imagevet check --fix"


@pytest.mark.parametrize(
    ("path", "matched"),
    [
        ("Dockerfile", True),
        ("services/api/Dockerfile.dev", True),
        ("build/api.Dockerfile", True),
        ("Containerfile", True),
        ("compose.yaml", True),
        ("docker-compose.override.yml", True),
        (".github/workflows/ci.yml", True),
        ("charts/cache/values.yaml", True),
        ("charts/cache/templates/deployment.yaml", True),
        ("deploy/k8s/workloads.yaml", True),
        ("src/imagevet/check/scan.py", False),
        ("README.md", False),
        ("mkdocs.yml", False),
    ],
)
def test_files_pattern(hooks: list[dict[str, Any]], path: str, matched: bool) -> None:
    pattern = re.compile(hooks[0]["files"])
    assert bool(pattern.search(path)) is matched
    assert hooks[1]["files"] == hooks[0]["files"]
