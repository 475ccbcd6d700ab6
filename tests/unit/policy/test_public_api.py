"""Public names of imagevet.policy, imagevet.lock and imagevet.plan: sorted, complete ``__all__``."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import imagevet.plan
import imagevet.policy

MODULES = [
    "imagevet.policy",
    *sorted(f"imagevet.policy.{m.name}" for m in pkgutil.iter_modules(imagevet.policy.__path__)),
    "imagevet.lock",
    "imagevet.plan",
    *sorted(f"imagevet.plan.{m.name}" for m in pkgutil.iter_modules(imagevet.plan.__path__)),
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    assert [n for n in exported if not hasattr(module, n)] == []
