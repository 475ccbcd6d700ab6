"""imagevet.hub's public names: every module declares a sorted ``__all__`` of names it defines."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import imagevet.hub

MODULES = sorted(m.name for m in pkgutil.iter_modules(imagevet.hub.__path__))


@pytest.mark.parametrize("name", ["__init__", *MODULES])
def test_all_is_sorted_and_complete(name: str) -> None:
    module = imagevet.hub if name == "__init__" else importlib.import_module(f"imagevet.hub.{name}")
    exported = list(module.__all__)
    assert exported == sorted(exported)
    assert [n for n in exported if not hasattr(module, n)] == []
