"""``imagevet check`` as a CI gate on untrusted trees: links, special files, huge files, alias bombs.

A pull request controls every file of the tree: ``--fix`` never writes outside it, nothing is read
through a link that leaves it, a FIFO or device is skipped with a note (never opened for a read
that blocks or never ends), a file over the size cap is reported, not read, and a YAML alias bomb
is that file's parse error while the scan goes on.  Each case must finish in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagevet.check import FindingKind, scan_paths
from imagevet.cli import app
from tests.unit.check.conftest import VETTED_JSON

runner = CliRunner()
VETTED = ["--vetted", str(VETTED_JSON)]
SRC = Path(__file__).resolve().parents[3] / "src"
REDIS = "FROM bitnami/redis:7.2\n"


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IMAGEVET_HUB_URL", "DOCKER_HUB_USERNAME", "DOCKER_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _run_check(cwd: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, so that a hang fails the test instead of stopping it."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for name in ("IMAGEVET_HUB_URL", "DOCKER_HUB_USERNAME", "DOCKER_HUB_TOKEN"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", "from imagevet.cli import main; main()", "check", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "svc").mkdir(parents=True)
    (repo / "svc" / "Dockerfile").write_text(REDIS)
    return repo


def test_fix_never_writes_through_a_link_out_of_the_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(tmp_path)
    outside = tmp_path / "outside" / "Dockerfile"
    outside.parent.mkdir()
    outside.write_text(REDIS)
    (repo / "Dockerfile").symlink_to(outside)
    monkeypatch.chdir(repo)
    result = runner.invoke(app, ["check", "--fix", *VETTED])
    assert outside.read_text() == REDIS  # untouched
    assert (repo / "Dockerfile").is_symlink()
    assert "docker.io/acme/redis:7.2@sha256:" in (repo / "svc" / "Dockerfile").read_text()
    assert "Dockerfile: a symbolic link to outside the scanned tree: not read" in result.stdout
    assert "fixed Dockerfile" not in result.output


def test_a_link_inside_the_tree_is_read_and_fixed_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(tmp_path)
    (repo / "Dockerfile").symlink_to(Path("svc") / "Dockerfile")
    monkeypatch.chdir(repo)
    result = runner.invoke(app, ["check", "--fix", *VETTED])
    assert result.exit_code == 0, result.output
    assert (repo / "Dockerfile").is_symlink()  # the link stays a link
    assert "docker.io/acme/redis:7.2@sha256:" in (repo / "svc" / "Dockerfile").read_text()


def test_dev_zero_link_is_not_read(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "Dockerfile").symlink_to("/dev/zero")
    (repo / "values.yaml").symlink_to("/dev/zero")
    start = time.monotonic()
    proc = _run_check(repo, *VETTED)
    assert time.monotonic() - start < 20
    assert proc.returncode == 1, proc.stderr  # the redis reference in svc/ is still found
    assert "svc/Dockerfile:1:6  IV001" in proc.stdout
    assert "note: skipped Dockerfile: a symbolic link to outside the scanned tree: not read" in proc.stdout


def test_fifo_and_device_are_skipped_with_a_note(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    os.mkfifo(repo / "Dockerfile")
    os.mkfifo(repo / "compose.yaml")
    start = time.monotonic()
    proc = _run_check(repo, *VETTED)
    assert time.monotonic() - start < 20
    assert "svc/Dockerfile:1:6  IV001" in proc.stdout
    assert "note: skipped Dockerfile: a FIFO: not read" in proc.stdout
    assert "note: skipped compose.yaml: a FIFO: not read" in proc.stdout


def test_fifo_named_on_the_command_line_is_skipped(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    os.mkfifo(repo / "Dockerfile")
    proc = _run_check(repo, "Dockerfile", *VETTED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note: skipped Dockerfile: a FIFO: not read" in proc.stdout


def test_oversize_file_is_reported_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path)
    (repo / "Dockerfile").write_text(REDIS + "# padding\n" * 2000)  # ~20 KB
    monkeypatch.chdir(repo)
    result = runner.invoke(app, ["check", "--json", "--max-file-size", "10K", *VETTED])
    data = json.loads(result.stdout)
    big = [r for r in data["results"] if r["path"] == "Dockerfile"]
    assert [(r["rule"], r["kind"]) for r in big] == [("IV032", "parse-error")]
    assert "larger than the 10240-byte cap (--max-file-size)" in big[0]["message"]
    assert any(r["path"] == "svc/Dockerfile" and r["rule"] == "IV001" for r in data["results"])
    assert result.exit_code == 1
    # with a cap above its size it is read as usual
    result = runner.invoke(app, ["check", "--json", "--max-file-size", "1M", *VETTED])
    assert any(r["path"] == "Dockerfile" and r["rule"] == "IV001" for r in json.loads(result.stdout)["results"])


def test_default_size_cap_applies(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    with (repo / "Dockerfile").open("w") as f:
        f.write(REDIS)
        f.write("# x\n" * (5 * 2**20 // 4))  # 5 MiB
    scan = scan_paths([repo], root=repo)
    errors = [f for f in scan.found if f.path == "Dockerfile"]
    assert [f.kind for f in errors] == [FindingKind.PARSE_ERROR]
    assert "cap" in errors[0].detail


def _bomb() -> str:
    lines = ["x-a0: &a0 [v, v, v, v, v, v, v, v, v]"]
    for i in range(1, 9):
        lines.append(f"x-a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_scanned_files_is_that_files_problem(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "compose.yaml").write_text(_bomb() + "services:\n  app:\n    image: *a8\n")
    kube = "k0: &k0 {kind: Pod, spec: {containers: [{name: c, image: bitnami/redis:7.2}]}}\n"
    for i in range(1, 9):  # Lists of Lists: every level multiplies the pods to visit by 9
        kube += f"k{i}: &k{i} {{kind: List, items: [{', '.join([f'*k{i - 1}'] * 9)}]}}\n"
    kube += "apiVersion: v1\nkind: List\nitems: [*k8]\n"
    (repo / "deploy.yaml").write_text(kube)
    (repo / "values.yaml").write_text(_bomb() + "image: *a8\n")
    start = time.monotonic()
    scan = scan_paths([repo], root=repo)
    assert time.monotonic() - start < 10
    by_path = {f.path: f for f in scan.found}
    for path in ("compose.yaml", "deploy.yaml", "values.yaml"):
        assert by_path[path].kind is FindingKind.PARSE_ERROR, path
        assert "alias bomb" in by_path[path].detail
        assert by_path[path].location.line in range(2, 10)
    assert by_path["svc/Dockerfile"].kind is FindingKind.REFERENCE


def test_nesting_bomb_in_a_scanned_file_is_quick(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  app:\n    image: " + "[" * 3000 + "\n")
    start = time.monotonic()
    scan = scan_paths([tmp_path], root=tmp_path)
    assert time.monotonic() - start < 1
    assert [(f.kind, f.location.line) for f in scan.found] == [(FindingKind.PARSE_ERROR, 3)]
    assert "nested more than 200 levels" in scan.found[0].detail


def test_normal_anchors_in_compose_still_work(tmp_path: Path) -> None:
    repo = tmp_path
    (repo / "compose.yaml").write_text(
        "x-base: &base\n  image: bitnami/redis:7.2\n  restart: always\n"
        "services:\n" + "".join(f"  s{i}:\n    <<: *base\n" for i in range(50))
    )
    scan = scan_paths([repo], root=repo)
    assert [(f.kind, f.location.line) for f in scan.found] == [(FindingKind.REFERENCE, 2)]
