"""imagevet.check's public names: every module declares a sorted, complete ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import imagevet.check

MODULES = sorted(m.name for m in pkgutil.iter_modules(imagevet.check.__path__))


@pytest.mark.parametrize("name", ["__init__", *MODULES])
def test_all_is_sorted_and_complete(name: str) -> None:
    module = imagevet.check if name == "__init__" else importlib.import_module(f"imagevet.check.{name}")
    exported = list(module.__all__)
    assert exported == sorted(exported)
    assert [n for n in exported if not hasattr(module, n)] == []
    defined = [
        n for n, obj in vars(module).items()
        if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == module.__name__
    ]
    assert [n for n in defined if n not in exported] == []
