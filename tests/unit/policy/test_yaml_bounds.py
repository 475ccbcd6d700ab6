"""YAML alias bombs and oversize files: policy and lock loading stays bounded in time and memory.

A few hundred bytes of nested anchors expand to billions of values when every alias is built;
the loader refuses them at the alias that crosses the budget, with file:line, and exit 2.
"""

from __future__ import annotations

import os
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagevet.cli import app
from imagevet.policy import PolicyErrors, parse_policy
from imagevet.policy.located import MAX_YAML_CHARS, parse_yaml

runner = CliRunner()

POLICY = textwrap.dedent(
    """\
    version: 1
    target: {registry: docker.io, namespace: acme}
    defaults:
      approval: {approved_by: sec@acme.example, approved_on: 2026-01-01, ticket: SEC-1}
    images:
      - source: bitnami/redis
        tags: {allow: ["7.4"]}
    """
)


def _bomb(levels: int = 9, width: int = 9, key: str = "x-bomb") -> str:
    """The classic nested-anchor bomb (width**levels values) in ``x-`` keys, as docs use anchors."""
    lines = [f"x-a0: &a0 [{', '.join(['v'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"x-a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"{key}: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def _bounded(fn):  # type: ignore[no-untyped-def]
    """Run ``fn``; return (result, seconds, peak bytes allocated)."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        out = fn()
    finally:
        seconds = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return out, seconds, peak


def test_bomb_is_small() -> None:
    assert len(_bomb().encode()) < 600


def test_bomb_policy_via_cli_exits_2_with_file_and_line(tmp_path: Path) -> None:
    policy = tmp_path / "imagevet.yaml"
    policy.write_text(_bomb() + POLICY)
    result, seconds, peak = _bounded(lambda: runner.invoke(app, ["validate", "-p", str(policy)]))
    assert result.exit_code == 2, result.output
    assert seconds < 5 and peak < 50 * 2**20
    message = result.stderr
    assert f"{policy}:" in message.replace("\n", "")
    assert "alias" in message
    line = int(message.replace("\n", "").split(f"{policy}:")[1].split(":")[0])
    assert 2 <= line <= 9  # one of the anchor lines that multiplies


def test_bomb_lock_via_cli_exits_2_with_file_and_line(tmp_path: Path) -> None:
    policy = tmp_path / "imagevet.yaml"
    policy.write_text(POLICY)
    lock = tmp_path / "imagevet.lock"
    lock.write_text("version: 1\n" + _bomb(key="images"))
    result, seconds, peak = _bounded(lambda: runner.invoke(app, ["validate", "-p", str(policy)]))
    assert result.exit_code == 2, result.output
    assert seconds < 5 and peak < 50 * 2**20
    assert f"{lock}:" in result.stderr.replace("\n", "")
    assert "alias" in result.stderr


def test_merge_key_bomb_is_bounded() -> None:
    lines = ["x-m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    for i in range(1, 10):
        keys = ", ".join(f"k{j}: *m{i - 1}" for j in range(8))
        lines.append(f"x-m{i}: &m{i} {{{keys}}}")
    text = "\n".join(lines) + "\nimages: [*m9]\n"
    with pytest.raises(PolicyErrors) as info:
        _, seconds, _ = _bounded(lambda: parse_yaml(text, path="p.yaml"))
    assert "alias" in str(info.value) and info.value.path == "p.yaml"
    assert info.value.line is not None


def test_recursive_alias_is_an_error_with_line() -> None:
    with pytest.raises(PolicyErrors) as info:
        parse_yaml("a: 1\nb: &x [1, *x]\n", path="p.yaml")
    assert info.value.line == 2 and "alias" in str(info.value)


def test_deep_nesting_is_an_error_not_a_crash_and_fast() -> None:
    for text in ("a: " + "[" * 5000 + "]" * 5000 + "\n", "a: " + "[" * 1000 + "\n"):
        start = time.monotonic()
        with pytest.raises(PolicyErrors) as info:
            parse_yaml(text, path="p.yaml")
        assert time.monotonic() - start < 0.5  # the scanner's look-ahead took 3 s on 1,000 '['
        assert info.value.path == "p.yaml" and info.value.line == 1
        assert "nested more than 200 levels" in str(info.value)


def test_oversize_text_is_refused() -> None:
    text = "a: " + "x" * MAX_YAML_CHARS + "\n"
    with pytest.raises(PolicyErrors) as info:
        parse_yaml(text, path="p.yaml")
    assert "larger than" in str(info.value)


def test_normal_anchors_and_merges_still_work_many_times() -> None:
    entries = "\n".join(
        f"  - {{<<: *entry, source: bitnami/app{i}}}" for i in range(300)
    )
    text = (
        POLICY.split("images:")[0]
        + "x-entry: &entry\n  tags: {allow: ['1.0'], keep: 2}\n  platforms: [linux/amd64, linux/arm64]\n"
        + "images:\n"
        + entries
        + "\n"
    )
    policy = parse_policy(text, path="p.yaml", env={})
    assert len(policy.entries) == 300
    assert all(e.tags.keep == 2 for e in policy.entries)


def test_read_yaml_file_refuses_special_and_oversize_files(tmp_path: Path) -> None:
    from imagevet.policy.located import read_yaml_file

    normal = tmp_path / "imagevet.yaml"
    normal.write_text(POLICY)
    assert read_yaml_file(normal) == POLICY
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(MAX_YAML_CHARS + 1)
    for path, why in ((fifo, "a FIFO"), (zero, "a device"), (big, "larger than 16 MiB")):
        start = time.monotonic()
        with pytest.raises(PolicyErrors) as info:
            read_yaml_file(path)
        assert time.monotonic() - start < 2
        assert info.value.path == str(path) and why in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_yaml_file(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"a: \xe9\n")
    with pytest.raises(UnicodeDecodeError):
        read_yaml_file(tmp_path / "latin1.yaml")


@pytest.mark.parametrize("which", ["policy", "lock"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_special_policy_or_lock_file_is_refused_not_read(tmp_path: Path, which: str, kind: str) -> None:
    """``imagevet validate`` on a policy (or next to a lock) that is a FIFO or a link to /dev/zero
    exits 2 at once naming the file, instead of hanging or reading without end."""
    import subprocess
    import sys

    policy = tmp_path / "imagevet.yaml"
    lock = tmp_path / "imagevet.lock"
    special = policy if which == "policy" else lock
    if which == "lock":
        policy.write_text(POLICY)
    if kind == "fifo":
        os.mkfifo(special)
    else:
        special.symlink_to("/dev/zero")
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "imagevet.cli", "validate", "--policy", str(policy)],
        capture_output=True, text=True, timeout=60,
    )
    assert time.monotonic() - started < 30
    assert out.returncode == 2, out.stderr
    assert special.name in out.stderr
    assert "not read" in out.stderr
