"""The embedded state store: an existing ``.imagevet/`` keeps working; links and bad files are refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.engine.state import FileStateStore, HeldUpdate, state_dir_for
from imagevet.errors import StateError
from imagevet.ledger import LedgerError
from imagevet.manifest import RawManifest

NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)

# A ledger as imagevet wrote it before the state store existed (two records of one sync run).
OLD_LEDGER = (
    '{"event":{"counts":{"copy":1},"kind":"run","ok":true},"hash":"sha256:ccf5db558c356802555d9ad93a8e54bfb05f233e0ac50650c63bdebc40e64c14","prev":"genesis","seq":1,"time":"2026-11-29T10:00:00Z"}\n'
    '{"event":{"action":"copy","kind":"copy","status":"done","target":"127.0.0.1:5000/acme/redis:7.2"},"hash":"sha256:e307dc413a7539a36e0ac19624061806af30c0fc09607ba12643f3e1604f0342","prev":"sha256:ccf5db558c356802555d9ad93a8e54bfb05f233e0ac50650c63bdebc40e64c14","seq":2,"time":"2026-11-29T10:00:00Z"}\n'
)
INDEX = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'


def test_an_existing_state_directory_keeps_working(tmp_path: Path) -> None:
    state = tmp_path / ".imagevet"
    (state / "manifests" / "sha256").mkdir(parents=True)
    (state / "ledger.jsonl").write_text(OLD_LEDGER)
    summary = {"version": 1, "ok": True, "counts": {"copy": 1}, "actions": []}
    (state / "last-sync.json").write_text(json.dumps(summary, indent=2) + "\n")
    digest = Digest.of(INDEX)
    (state / "manifests" / "sha256" / digest.hex).write_bytes(INDEX)

    store = FileStateStore(state_dir_for(tmp_path / "imagevet.yaml"))
    assert store.directory == state
    check = store.ledger.verify()
    assert check.ok and check.records == 2
    assert store.read_run_summary() == summary
    cached = store.manifests.get(digest)
    assert cached is not None and cached.data == INDEX
    assert store.ledger.append([{"kind": "run", "counts": {}, "ok": True}], now=NOW) == 3
    assert (state / "ledger.jsonl").read_text().startswith(OLD_LEDGER)  # appended, nothing rewritten
    assert store.ledger.verify().ok
    assert sorted(p.name for p in state.iterdir()) == ["last-sync.json", "ledger.jsonl", "manifests"]


def test_the_run_summary_is_written_as_before(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / ".imagevet")
    summary = {"version": 1, "ok": True, "counts": {"noop": 2}}
    store.write_run_summary(summary)
    assert (tmp_path / ".imagevet" / "last-sync.json").read_text() == json.dumps(summary, indent=2) + "\n"


def test_a_symlinked_state_directory_is_refused_and_nothing_written_through_it(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / ".imagevet").symlink_to(elsewhere)
    store = FileStateStore(tmp_path / ".imagevet")
    for attempt in (
        lambda: store.write_run_summary({"ok": True}),
        lambda: store.hold(HeldUpdate("redis", "7.2", "sha256:" + "a" * 64, "held", NOW)),
        lambda: store.mark_notified("redis", "7.2", "sha256:" + "a" * 64, now=NOW),
        lambda: store.ledger.write_checkpoint(b"note\n"),
    ):
        with pytest.raises(StateError, match="symbolic link"):
            attempt()
    with pytest.raises(LedgerError, match="symbolic link"):
        store.ledger.append([{"kind": "run"}], now=NOW)
    assert store.manifests.put(RawManifest.from_bytes(INDEX, "application/vnd.oci.image.index.v1+json")) is False
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name", ["held.json", "notified.json", "state.lock"])
def test_a_symlink_planted_at_a_state_file_is_refused(tmp_path: Path, name: str) -> None:
    state = tmp_path / ".imagevet"
    state.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("precious\n")
    (state / name).symlink_to(precious)
    store = FileStateStore(state)
    if name != "notified.json":
        with pytest.raises(StateError, match="symbolic link"):
            store.hold(HeldUpdate("redis", "7.2", "sha256:" + "a" * 64, "held", NOW))
    if name != "held.json":
        with pytest.raises(StateError, match="symbolic link"):
            store.mark_notified("redis", "7.2", "sha256:" + "a" * 64, now=NOW)
    assert (state / name).is_symlink()  # refused, not replaced either
    assert precious.read_text() == "precious\n"


@pytest.mark.parametrize(
    "content",
    ["not json", '{"version": 2, "held": []}', '{"version": 1, "held": [{"entry": 1}]}', "[" * 100_000],
    ids=["not-json", "unknown-version", "bad-record", "deep-nesting"],
)
def test_a_damaged_held_file_is_an_error_and_is_not_overwritten(tmp_path: Path, content: str) -> None:
    state = tmp_path / ".imagevet"
    state.mkdir()
    (state / "held.json").write_text(content)
    store = FileStateStore(state)
    with pytest.raises(StateError, match="held.json"):
        store.held()
    with pytest.raises(StateError, match="held.json"):
        store.hold(HeldUpdate("redis", "7.2", "sha256:" + "a" * 64, "held", NOW))
    assert (state / "held.json").read_text() == content
