"""The run lock: one holder at a time across processes, who holds it, a dead holder's record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagevet.engine.runlock import RUN_LOCK_NAME, Holder, RunLockHeldError, acquire_run_lock
from imagevet.errors import StateError

_HOLD = """
import sys, time
from pathlib import Path
from imagevet.engine.runlock import acquire_run_lock
held = acquire_run_lock(Path(sys.argv[1]), command="watch")
print("held", flush=True)
time.sleep(60)
"""


def _holder_process(state: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(state)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_taker_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path / ".imagevet")
    try:
        with pytest.raises(RunLockHeldError) as caught:
            acquire_run_lock(tmp_path / ".imagevet", command="sync")
        assert f"pid {proc.pid}" in str(caught.value) and "(watch)" in str(caught.value)
        assert str(tmp_path / ".imagevet" / RUN_LOCK_NAME) in str(caught.value)
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_leaves_no_lock_and_its_record_is_reported_stale(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path / ".imagevet")
    proc.kill()  # SIGKILL: no cleanup ran
    proc.wait()
    left = json.loads((tmp_path / ".imagevet" / RUN_LOCK_NAME).read_text())
    assert left["pid"] == proc.pid
    with acquire_run_lock(tmp_path / ".imagevet", command="sync") as held:
        assert held.stale is not None and held.stale.pid == proc.pid and held.stale.command == "watch"
        mine = json.loads((tmp_path / ".imagevet" / RUN_LOCK_NAME).read_text())
        assert mine["pid"] == os.getpid() and mine["command"] == "sync"
    assert (tmp_path / ".imagevet" / RUN_LOCK_NAME).read_bytes() == b""  # released: record emptied
    with acquire_run_lock(tmp_path / ".imagevet", command="sync") as again:
        assert again.stale is None


def test_two_takers_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    first = acquire_run_lock(tmp_path, command="watch")
    with pytest.raises(RunLockHeldError):
        acquire_run_lock(tmp_path, command="sync")
    first.release()
    first.release()  # idempotent
    acquire_run_lock(tmp_path, command="sync").release()


def test_a_symlinked_lock_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("keep")
    (tmp_path / RUN_LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StateError, match="symbolic link"):
        acquire_run_lock(tmp_path, command="sync")
    assert (tmp_path / "elsewhere").read_text() == "keep"


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"", None),
        (b"not json \x1b[31m", "an unknown process"),
        (b'{"pid": "1; rm -rf", "host": 5}', "an unknown process"),
        (b'{"pid": 42, "host": "h", "started": "2026-01-01T00:00:00Z"}', "pid 42 on h since 2026-01-01T00:00:00Z"),
    ],
)
def test_a_record_is_only_described(data: bytes, shown: str | None) -> None:
    holder = Holder.parse(data)
    assert (holder.describe() if holder is not None else None) == shown
