"""``imagevet check --fix --dry-run``: the printed diff is a patch ``git apply`` and ``patch -p1``
accept, and applying it gives exactly the bytes ``--fix`` writes (no final newline, CRLF, form
feeds and Unicode line separators inside lines, several files in one run)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagevet.cli import app
from imagevet.cli.check import _write_diff
from tests.unit.check.conftest import VETTED_JSON

runner = CliRunner()
VETTED = ["--vetted", str(VETTED_JSON)]

FILES: dict[str, bytes] = {
    # the edit is on the last line, which has no newline
    "Dockerfile": b"FROM bitnami/redis:7.2",
    # the last line (context) has no newline
    "compose.yaml": b"services:\n  a:\n    image: bitnami/redis:7.2\n    restart: always",
    # CRLF throughout
    "k8s/deploy.yaml": (
        b"apiVersion: apps/v1\r\nkind: Deployment\r\nmetadata:\r\n  name: web\r\nspec:\r\n"
        b"  template:\r\n    spec:\r\n      containers:\r\n        - name: web\r\n"
        b"          image: bitnami/redis:7.4\r\n"
    ),
    # CRLF, no final newline, edit on the last line
    "ci/Dockerfile": b"# build\r\nFROM bitnami/kubectl:1.30",
    # characters str.splitlines() would split on, inside lines; UTF-8 text
    "tools/Dockerfile": (
        "# page\x0cbreak \u2028 caf\u00e9 \x1c sep\nFROM bitnami/redis:7.2 AS base\nRUN true\n"
    ).encode(),
    "deep/dir/Dockerfile": b"FROM bitnami/redis:7.4\n",
    # a space and non-ASCII in the path: quoted in the headers, as git does
    "my dir/caf\u00e9/Dockerfile": b"FROM bitnami/redis:7.4\n",
}


def _tree(root: Path) -> Path:
    root.mkdir()
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    # a second path to one file (an in-tree link): the patch changes the file once, not the link
    (root / "linked").mkdir()
    (root / "linked" / "Dockerfile").symlink_to("../deep/dir/Dockerfile")
    return root


def _git(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, input=stdin, capture_output=True, check=False)


def _contents(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _run(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> bytes:
    monkeypatch.chdir(root)
    result = runner.invoke(app, ["check", *args, *VETTED])
    assert result.exit_code in (0, 1), result.output
    return result.stdout_bytes


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IMAGEVET_HUB_URL", "DOCKER_HUB_USERNAME", "DOCKER_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_dry_run_diff_applies_with_git_and_patch_and_matches_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dry = _tree(tmp_path / "dry")
    assert _git(dry, "init", "-q").returncode == 0
    before = _contents(dry)
    out = _run(dry, monkeypatch, "--fix", "--dry-run")
    assert _contents(dry) == before  # a dry run writes nothing
    # the whole of stdout, as a user would save it: `imagevet check --fix --dry-run > fix.patch`
    patch_file = tmp_path / "fix.patch"
    patch_file.write_bytes(out)
    for name in FILES:
        if " " in name:
            quoted = name.replace("\u00e9", "\\303\\251")
            assert f'--- "a/{quoted}"\n+++ "b/{quoted}"\n'.encode() in out
        else:
            assert f"--- a/{name}\n+++ b/{name}\n".encode() in out
    assert b"a/linked/Dockerfile" not in out
    assert out.count(b"\\ No newline at end of file\n") == 5  # Dockerfiles: both sides; compose: context

    checked = _git(dry, "apply", "--check", "-v", str(patch_file))
    assert checked.returncode == 0, checked.stderr.decode()
    dry_patch = subprocess.run(
        ["patch", "-p1", "--dry-run", "-i", str(patch_file)], cwd=dry, capture_output=True, check=False
    )
    assert dry_patch.returncode == 0, dry_patch.stdout.decode() + dry_patch.stderr.decode()
    assert _contents(dry) == before

    fixed = _tree(tmp_path / "fixed")
    _run(fixed, monkeypatch, "--fix")
    expected = _contents(fixed)
    assert expected != before and set(expected) == set(before)

    by_git = _tree(tmp_path / "by-git")
    assert _git(by_git, "init", "-q").returncode == 0
    applied = _git(by_git, "apply", str(patch_file))
    assert applied.returncode == 0, applied.stderr.decode()
    assert _contents(by_git) == expected

    by_patch = _tree(tmp_path / "by-patch")
    patched = subprocess.run(
        ["patch", "-p1", "-i", str(patch_file)], cwd=by_patch, capture_output=True, check=False
    )
    assert patched.returncode == 0, patched.stdout.decode() + patched.stderr.decode()
    assert _contents(by_patch) == expected


def test_dry_run_diff_on_stderr_with_machine_output_applies_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "t")
    monkeypatch.chdir(root)
    result = runner.invoke(app, ["check", "--fix", "--dry-run", "--json", *VETTED])
    assert result.exit_code in (0, 1), result.output
    patch_file = tmp_path / "fix.patch"
    patch_file.write_bytes(result.stderr_bytes or b"")
    checked = _git(root, "apply", "--check", str(patch_file))
    assert checked.returncode == 0, checked.stderr.decode()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_diff_is_escaped_but_crlf_kept() -> None:
    shown = _Terminal()
    _write_diff("-FROM a\x1b[2J\u202e\r\n+FROM b\rx\r\n", shown)
    assert shown.getvalue() == "-FROM a\\x1b[2J\\u202e\r\n+FROM b\\x0dx\r\n"
