"""State files are never followed through a symbolic link, and special files never hang a read."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagevet.ledger import LedgerError, append_events, read_ledger, verify_ledger
from imagevet.statefiles import StateFileError, read_state_file, write_state_file

NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_text("precious\n")
    return path


def test_a_symlinked_ledger_is_refused_and_its_target_untouched(tmp_path: Path, outside: Path) -> None:
    state = tmp_path / ".imagevet"
    state.mkdir()
    (state / "ledger.jsonl").symlink_to(outside)
    with pytest.raises(LedgerError, match="symbolic link"):
        append_events(state / "ledger.jsonl", [{"kind": "run"}], now=NOW)
    with pytest.raises(LedgerError, match="symbolic link"):
        verify_ledger(state / "ledger.jsonl")
    with pytest.raises(LedgerError, match="symbolic link"):
        list(read_ledger(state / "ledger.jsonl"))
    assert outside.read_text() == "precious\n"


@pytest.mark.parametrize("name", ["last-sync.json", "checkpoint"])
def test_a_symlink_planted_at_a_state_file_is_refused(tmp_path: Path, outside: Path, name: str) -> None:
    state = tmp_path / ".imagevet"
    state.mkdir()
    (state / name).symlink_to(outside)
    with pytest.raises(StateFileError, match="symbolic link"):
        write_state_file(state / name, b"{}\n")
    with pytest.raises(StateFileError, match="symbolic link"):
        read_state_file(state / name)
    assert outside.read_text() == "precious\n"
    assert (state / name).is_symlink()  # refused, not silently replaced either
    assert sorted(p.name for p in state.iterdir()) == [name]  # no temporary file left behind


def test_a_symlinked_state_directory_is_refused(tmp_path: Path, outside: Path) -> None:
    state = tmp_path / ".imagevet"
    state.symlink_to(outside.parent)
    with pytest.raises(StateFileError, match="symbolic link"):
        write_state_file(state / "last-sync.json", b"{}\n")
    with pytest.raises(LedgerError, match="symbolic link"):
        append_events(state / "ledger.jsonl", [{"kind": "run"}], now=NOW)
    assert sorted(p.name for p in outside.parent.iterdir()) == ["precious.txt"]
    # a directory the user names explicitly (sync --report some/dir/x.json) may be a link
    write_state_file(state / "report.json", b"{}\n", follow_dir=True)
    assert (outside.parent / "report.json").read_bytes() == b"{}\n"


def test_a_fifo_or_a_device_is_refused_without_hanging(tmp_path: Path) -> None:
    state = tmp_path / ".imagevet"
    state.mkdir()
    os.mkfifo(state / "ledger.jsonl")
    with pytest.raises(LedgerError, match="not a regular file"):
        append_events(state / "ledger.jsonl", [{"kind": "run"}], now=NOW)
    with pytest.raises(LedgerError, match="not a regular file"):
        verify_ledger(state / "ledger.jsonl")
    os.mkfifo(state / "checkpoint")
    with pytest.raises(StateFileError, match="not a regular file"):
        read_state_file(state / "checkpoint")


def test_an_atomic_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".imagevet" / "last-sync.json"
    write_state_file(path, b"one\n")
    write_state_file(path, b"two\n")
    assert path.read_bytes() == b"two\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["last-sync.json"]
    assert read_state_file(tmp_path / ".imagevet" / "missing") is None
    assert read_state_file(tmp_path / "nowhere" / "missing") is None
