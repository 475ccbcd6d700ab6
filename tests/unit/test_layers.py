"""Imports point down only: pure modules < protocol clients < operations < CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "imagevet"

# layer of each top-level module or package of imagevet; a module may import its own layer or lower
LAYERS: dict[str, int] = {
    "errors": 0, "digest": 0, "mediatype": 0, "reference": 0, "manifest": 0, "ratelimit": 0,
    "category": 0, "repository_spec": 0, "policy": 0, "lock": 0, "plan": 0, "signature": 0,
    "registry": 1, "hub": 1, "store": 1,
    "engine": 2, "sync": 2, "check": 2, "ledger": 2, "manifest_cache": 2, "report": 2, "watch": 2,
    "notify": 2,
    "evidence": 0, "scanreport": 0,
    "cli": 3,
    "checkpoint": 2,
    "statefiles": 2,
}
FOREIGN_BANNED_IN_PURE = {"aiohttp", "typer", "rich", "click"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _top(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    own = _top(path)
    if own == "__init__":
        return
    assert own in LAYERS, f"{own} has no layer: add it to LAYERS in {__file__}"
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "imagevet" and len(parts) > 1:
                other = parts[1]
                assert other in LAYERS, f"{path}: imports unknown module imagevet.{other}"
                assert LAYERS[other] <= LAYERS[own], (
                    f"{path.relative_to(SRC)} (layer {LAYERS[own]}) imports imagevet.{other} "
                    f"(layer {LAYERS[other]})"
                )
            if LAYERS[own] == 0:
                assert parts[0] not in FOREIGN_BANNED_IN_PURE, f"{path}: pure module imports {name}"
