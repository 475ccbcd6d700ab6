"""Every ``--fix --dry-run`` diff the check tests produce must be a patch ``git apply`` and
``patch -p1`` accept: :func:`assert_patch_applies` checks one against a directory, and
:func:`check_every_diff` (autouse in ``conftest.py``) makes every :meth:`FixPlan.diff` and
:meth:`FileFix.diff` of any test go through both tools, against the files' original texts."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath

import pytest

from imagevet.check.fix import FileFix, FixPlan


def assert_patch_applies(root: Path, diff: str) -> None:
    """``git apply --check`` and ``patch -p1 --dry-run`` both accept ``diff`` in ``root``."""
    if not diff:
        return
    data = diff.encode("utf-8")
    checked = subprocess.run(["git", "apply", "--check", "-v", "-"], cwd=root, input=data,
                             capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr.decode() + "\n" + diff
    patched = subprocess.run(["patch", "-p1", "--dry-run", "--batch", "--force"], cwd=root, input=data,
                             capture_output=True, check=False)
    assert patched.returncode == 0, patched.stdout.decode() + patched.stderr.decode() + "\n" + diff


def assert_diff_applies_to(originals: Mapping[str, str], diff: str) -> None:
    """``diff`` applies to the files ``originals`` (shown path -> text as read), laid out afresh."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path, text in originals.items():
            rel = PurePosixPath(path)
            if rel.is_absolute() or ".." in rel.parts:
                continue
            target = root.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8"))
        assert_patch_applies(root, diff)


@pytest.fixture(autouse=True)
def check_every_diff(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Wrap :meth:`FixPlan.diff` and :meth:`FileFix.diff`: each diff a test makes is checked."""
    checked: list[str] = []
    plan_diff: Callable[[FixPlan], str] = FixPlan.diff
    file_diff: Callable[[FileFix], str] = FileFix.diff

    def plan_wrapper(self: FixPlan) -> str:
        diff = plan_diff(self)
        assert_diff_applies_to({f.path: f.original for f in self.files}, diff)
        checked.append(diff)
        return diff

    def file_wrapper(self: FileFix) -> str:
        diff = file_diff(self)
        assert_diff_applies_to({self.path: self.original}, diff)
        checked.append(diff)
        return diff

    monkeypatch.setattr(FixPlan, "diff", plan_wrapper)
    monkeypatch.setattr(FileFix, "diff", file_wrapper)
    yield checked
