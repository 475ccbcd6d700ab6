"""The run-state store's contract, written once, run against every implementation.

Today that is the embedded default (:class:`FileStateStore`, files in ``.imagevet/``).  A store
kept by a server (PostgreSQL, for several workers) is added by writing a :class:`Harness` for it
and listing it in ``HARNESSES``: the engine and these tests do not change.

What a harness provides besides the store: a way to damage the ledger as an intruder with write
access to the storage would (remove or alter one record), and a way to make the storage refuse
writes (a read-only file system, a read-only database role).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imagevet.engine.state import FileStateStore, HeldUpdate, StateStore
from imagevet.errors import ImagevetError, StateError
from imagevet.ledger import LedgerDamagedError, LedgerError

NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Harness:
    """One store implementation and the ways its tests reach under it."""

    name: str
    make: Callable[[Path], StateStore]
    """A fresh, empty store (``Path``: a directory of the test's own)."""
    remove_record: Callable[[StateStore, int], None]
    """Delete the record with this seq, as someone editing the storage would."""
    alter_record: Callable[[StateStore, int], None]
    """Change the event of the record with this seq, keeping everything else."""
    read_only: Callable[[StateStore, pytest.MonkeyPatch], contextlib.AbstractContextManager[None]]
    """While entered, the storage refuses every write."""
    reopen: Callable[[StateStore], StateStore]
    """Another handle on the same storage (another process would open it so)."""


# -- the default: files in .imagevet/ ---------------------------------------------------------------


def _file_lines(store: StateStore) -> tuple[Path, list[str]]:
    assert isinstance(store, FileStateStore)
    path = store.ledger.path
    return path, path.read_text().splitlines(keepends=True)


def _file_remove(store: StateStore, seq: int) -> None:
    path, lines = _file_lines(store)
    del lines[seq - 1]
    path.write_text("".join(lines))


def _file_alter(store: StateStore, seq: int) -> None:
    path, lines = _file_lines(store)
    record = json.loads(lines[seq - 1])
    record["event"] = {"kind": "copy", "target": "intruder/image:1"}
    lines[seq - 1] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    path.write_text("".join(lines))


@contextlib.contextmanager
def _file_read_only(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """EROFS for every write, as on a read-only checkout (tests run as root: chmod would not do)."""
    real_open = os.open

    def refuse_mkdir(path: Any, *args: Any, **kw: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    def refuse_writes(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(os, "mkdir", refuse_mkdir)
        m.setattr(os, "open", refuse_writes)
        yield


def _file_reopen(store: StateStore) -> StateStore:
    assert isinstance(store, FileStateStore)
    return FileStateStore(store.directory)


HARNESSES = [
    Harness(
        "files", lambda d: FileStateStore(d / ".imagevet"), _file_remove, _file_alter,
        _file_read_only, _file_reopen,
    ),
]


@pytest.fixture(params=HARNESSES, ids=lambda h: h.name)
def harness(request: pytest.FixtureRequest) -> Harness:
    h: Harness = request.param
    return h


@pytest.fixture
def store(harness: Harness, tmp_path: Path) -> StateStore:
    return harness.make(tmp_path)


# -- the ledger ---------------------------------------------------------------------------------------


def _events(store: StateStore) -> list[dict[str, Any]]:
    return [r["event"] for r in store.ledger.records()]


def test_events_are_read_back_in_the_order_they_were_appended(store: StateStore) -> None:
    assert _events(store) == [] and store.ledger.verify().ok  # empty, and it verifies
    assert store.ledger.append([{"kind": "run", "n": 1}, {"kind": "copy", "n": 2}], now=NOW) == 2
    assert store.ledger.append([{"kind": "noop", "n": 3}], now=NOW + timedelta(seconds=5)) == 3
    records = list(store.ledger.records())
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert [r["event"]["n"] for r in records] == [1, 2, 3]
    assert records[2]["time"] == "2026-11-30T10:00:05Z"
    assert records[0]["prev"] == "genesis" and records[1]["prev"] == records[0]["hash"]
    check = store.ledger.verify()
    assert check.ok and check.records == 3 and check.head == records[2]["hash"]


@pytest.mark.parametrize("damage", ["remove", "alter"])
def test_chain_verification_finds_a_removed_or_altered_record(
    store: StateStore, harness: Harness, damage: str
) -> None:
    store.ledger.append([{"kind": "run", "n": i} for i in range(1, 5)], now=NOW)
    (harness.remove_record if damage == "remove" else harness.alter_record)(store, 2)
    check = store.ledger.verify()
    assert not check.ok and check.records == 1 and check.bad_line == 2
    assert check.reason == ("sequence 3 follows 1" if damage == "remove" else "record altered (hash does not match)")


def test_nothing_is_appended_after_an_altered_last_record(store: StateStore, harness: Harness) -> None:
    """Without a checkpoint an append checks the last record only (the whole chain is
    :meth:`verify`'s, and a checkpoint's: docs/audit.md)."""
    store.ledger.append([{"kind": "run", "n": i} for i in range(1, 4)], now=NOW)
    harness.alter_record(store, 3)
    before = list(store.ledger.records())
    with pytest.raises(LedgerDamagedError, match="nothing was appended"):
        store.ledger.append([{"kind": "run"}], now=NOW)
    assert list(store.ledger.records()) == before


def test_the_local_checkpoint_round_trips(store: StateStore) -> None:
    assert store.ledger.read_checkpoint() is None
    store.ledger.write_checkpoint(b"note one\n")
    store.ledger.write_checkpoint(b"note two\n")
    assert store.ledger.read_checkpoint() == b"note two\n"


def _append_many(harness_name: str, directory: str, writer: int, n: int) -> None:
    """A separate process appending ``n`` events one append at a time."""
    harness = next(h for h in HARNESSES if h.name == harness_name)
    store = harness.make(Path(directory))
    for i in range(n):
        store.ledger.append([{"writer": writer, "i": i}])


def _per_writer_order(store: StateStore) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for event in _events(store):
        out.setdefault(event["writer"], []).append(event["i"])
    return out


def test_concurrent_appends_from_processes_lose_and_interleave_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    procs = [
        multiprocessing.Process(target=_append_many, args=(harness.name, str(tmp_path), w, 25))
        for w in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    store = harness.make(tmp_path)
    check = store.ledger.verify()
    assert check.ok and check.records == 75
    assert _per_writer_order(store) == {w: list(range(25)) for w in range(3)}


async def test_concurrent_appends_from_tasks_lose_and_interleave_nothing(
    store: StateStore, harness: Harness
) -> None:
    async def writer(w: int, handle: StateStore) -> None:
        for i in range(20):  # each task its own handle, each append in a worker thread
            await asyncio.to_thread(handle.ledger.append, [{"writer": w, "i": i}, {"writer": w, "i": i + 100}])

    await asyncio.gather(*(writer(w, harness.reopen(store)) for w in range(4)))
    check = store.ledger.verify()
    assert check.ok and check.records == 160
    order = _per_writer_order(store)
    assert all(seq == [x for i in range(20) for x in (i, i + 100)] for seq in order.values())  # pairs stay together
    assert sorted(order) == [0, 1, 2, 3]


# -- run summaries, held updates, notices -------------------------------------------------------------


def test_the_run_summary_round_trips(store: StateStore) -> None:
    assert store.read_run_summary() is None
    first = {"version": 1, "ok": True, "counts": {"copy": 2}, "actions": [{"target": "r/a:1"}]}
    store.write_run_summary(first)
    assert store.read_run_summary() == first
    second = {"version": 1, "ok": False, "counts": {"failed": 1}, "actions": []}
    store.write_run_summary(second)
    assert harness_free_read(store) == second


def harness_free_read(store: StateStore) -> dict[str, Any] | None:
    return store.read_run_summary()


def test_held_updates_set_clear_and_list(store: StateStore) -> None:
    assert store.held() == []
    a = HeldUpdate("redis", "7.2", "sha256:" + "a" * 64, "re-pointed; mode pinned", NOW)
    b = HeldUpdate("nginx", "1.27", "sha256:" + "b" * 64, "approval expired", NOW)
    assert store.hold(a) == a
    store.hold(b)
    assert store.held() == [b, a]  # by entry, then tag
    # held again (a later run): the same digest keeps when it was first held
    again = HeldUpdate("redis", "7.2", a.digest, "re-pointed; mode pinned", NOW + timedelta(hours=1))
    assert store.hold(again).since == NOW
    # upstream moved again: the new digest replaces the old, from now
    moved = HeldUpdate("redis", "7.2", "sha256:" + "c" * 64, "re-pointed; mode pinned", NOW + timedelta(hours=2))
    store.hold(moved)
    assert store.held() == [b, moved]
    assert store.release("redis", "7.2") is True
    assert store.release("redis", "7.2") is False
    assert store.held() == [b]


def test_notified_once_per_entry_tag_and_digest(store: StateStore, harness: Harness) -> None:
    digest = "sha256:" + "d" * 64
    assert store.notified("redis", "7.2", digest) is None
    assert store.mark_notified("redis", "7.2", digest, now=NOW) is True
    assert store.mark_notified("redis", "7.2", digest, now=NOW + timedelta(days=1)) is False
    notice = harness.reopen(store).notified("redis", "7.2", digest)
    assert notice is not None and notice.at == NOW  # the first time stays
    assert store.mark_notified("redis", "7.2", "sha256:" + "e" * 64, now=NOW) is True  # a new digest
    assert store.mark_notified("redis", "7.3", digest, now=NOW) is True  # another tag
    assert store.mark_notified("valkey", "7.2", digest, now=NOW) is True  # another entry


def test_notices_are_kept_per_target_and_kind(store: StateStore, harness: Harness) -> None:
    digest = "sha256:" + "d" * 64
    assert store.mark_notified("redis", "7.2", digest, now=NOW, kind="held-update", target="SLACK_URL") is True
    assert store.mark_notified("redis", "7.2", digest, now=NOW, kind="held-update", target="SLACK_URL") is False
    # the same image, another target or another kind: a notice of its own
    assert store.mark_notified("redis", "7.2", digest, now=NOW, kind="held-update", target="HOOK_URL") is True
    assert store.mark_notified("redis", "7.2", digest, now=NOW, kind="sync-failure", target="SLACK_URL") is True
    assert store.notified("redis", "7.2", digest) is None  # the record without kind and target is another
    again = harness.reopen(store)
    held = again.notified("redis", "7.2", digest, kind="held-update", target="SLACK_URL")
    assert held is not None and (held.kind, held.target, held.at) == ("held-update", "SLACK_URL", NOW)
    assert [(n.target, n.kind) for n in again.notices()] == [
        ("HOOK_URL", "held-update"), ("SLACK_URL", "held-update"), ("SLACK_URL", "sync-failure"),
    ]


def test_a_forgotten_notice_is_notified_again(store: StateStore, harness: Harness) -> None:
    digest = "sha256:" + "d" * 64
    store.mark_notified("app", "1", digest, now=NOW, kind="sync-failure", target="HOOK")
    store.mark_notified("app", "2", digest, now=NOW, kind="sync-failure", target="HOOK")
    first = store.notified("app", "1", digest, kind="sync-failure", target="HOOK")
    assert first is not None
    assert store.forget_notices([first]) == 1
    assert store.forget_notices([first]) == 0  # already gone
    assert store.forget_notices([]) == 0
    reopened = harness.reopen(store)
    assert reopened.notified("app", "1", digest, kind="sync-failure", target="HOOK") is None
    assert reopened.notified("app", "2", digest, kind="sync-failure", target="HOOK") is not None
    assert reopened.mark_notified("app", "1", digest, now=NOW + timedelta(days=1), kind="sync-failure",
                                  target="HOOK") is True


def test_an_old_notified_file_reads_and_is_written_back_as_it_was(tmp_path: Path) -> None:
    """``notified.json`` from before kinds and targets: its records read with kind and target
    ``""``, and a write that adds a new-style record leaves the old records' bytes alone."""
    directory = tmp_path / ".imagevet"
    directory.mkdir()
    old = {"version": 1, "notified": [
        {"entry": "redis", "tag": "7.2", "digest": "sha256:" + "a" * 64, "at": "2026-11-01T00:00:00Z"},
    ]}
    (directory / "notified.json").write_text(json.dumps(old, indent=2) + "\n")
    store = FileStateStore(directory)
    notice = store.notified("redis", "7.2", "sha256:" + "a" * 64)
    assert notice is not None and (notice.kind, notice.target) == ("", "")
    assert store.mark_notified("redis", "7.2", "sha256:" + "a" * 64, now=NOW) is False
    store.mark_notified("redis", "7.2", "sha256:" + "a" * 64, now=NOW, kind="held-update", target="HOOK")
    doc = json.loads((directory / "notified.json").read_text())
    assert doc["notified"][0] == old["notified"][0]  # no kind/target keys added to the old record
    assert doc["notified"][1]["kind"] == "held-update" and doc["notified"][1]["target"] == "HOOK"


def _mark_many(harness_name: str, directory: str, writer: int, n: int) -> None:
    harness = next(h for h in HARNESSES if h.name == harness_name)
    store = harness.make(Path(directory))
    for i in range(n):
        store.mark_notified(f"entry{writer}", str(i), "sha256:" + "f" * 64, now=NOW)


def test_concurrent_notices_from_processes_are_all_kept(harness: Harness, tmp_path: Path) -> None:
    procs = [
        multiprocessing.Process(target=_mark_many, args=(harness.name, str(tmp_path), w, 15))
        for w in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    store = harness.make(tmp_path)
    assert all(
        store.notified(f"entry{w}", str(i), "sha256:" + "f" * 64) is not None
        for w in range(3) for i in range(15)
    )


# -- storage that refuses writes -----------------------------------------------------------------------


def test_a_read_only_store_is_a_typed_error_and_loses_nothing(
    store: StateStore, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ledger.append([{"kind": "run", "n": 1}], now=NOW)
    store.write_run_summary({"version": 1, "ok": True})
    held = HeldUpdate("redis", "7.2", "sha256:" + "a" * 64, "held", NOW)
    store.hold(held)
    store.mark_notified("redis", "7.2", held.digest, now=NOW)
    store.ledger.write_checkpoint(b"note\n")
    attempts: list[Callable[[], object]] = [
        lambda: store.ledger.append([{"kind": "run", "n": 2}], now=NOW),
        lambda: store.ledger.write_checkpoint(b"other\n"),
        lambda: store.write_run_summary({"version": 1, "ok": False}),
        lambda: store.hold(HeldUpdate("nginx", "1", "sha256:" + "b" * 64, "held", NOW)),
        lambda: store.release("redis", "7.2"),
        lambda: store.mark_notified("nginx", "1", "sha256:" + "b" * 64, now=NOW),
        lambda: store.forget_notices(store.notices()),
    ]
    with harness.read_only(store, monkeypatch):
        for attempt in attempts:
            with pytest.raises((StateError, LedgerError)) as caught:
                attempt()
            assert isinstance(caught.value, ImagevetError)
            assert "Read-only file system" in str(caught.value) or "read-only" in str(caught.value).lower()
    assert _events(store) == [{"kind": "run", "n": 1}] and store.ledger.verify().ok
    assert store.read_run_summary() == {"version": 1, "ok": True}
    assert store.held() == [held]
    assert store.notified("nginx", "1", "sha256:" + "b" * 64) is None
    assert store.notified("redis", "7.2", held.digest) is not None  # not forgotten either
    assert store.ledger.read_checkpoint() == b"note\n"
