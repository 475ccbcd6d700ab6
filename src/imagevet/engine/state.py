"""Run state behind one small interface: :class:`StateStore`, and its embedded default.

What a sync (and later a ``watch`` service) keeps between runs:

* the audit ledger and its local checkpoint (:class:`~imagevet.ledger.LedgerStore`);
* the run summary of the last sync;
* held updates: a re-pointed tag under ``mode: pinned`` (or an expired approval) waiting for a
  re-review, keyed by entry and tag;
* what has been notified: one record per (target, kind, entry, tag, digest), so a notice goes
  out once to each notification target (``imagevet.notify``); records written before kinds and
  targets existed read as kind ``""`` and target ``""``;
* the verified source-index cache that platform-subset mirrors are checked against.

The default, :class:`FileStateStore`, keeps them as files in ``.imagevet/`` next to the policy,
as imagevet always has (an existing directory keeps working, nothing to migrate):
``ledger.jsonl``, ``checkpoint``, ``last-sync.json``, ``held.json``, ``notified.json`` and
``manifests/``.  Every file goes through :mod:`imagevet.statefiles` (never through a symbolic
link, whole files replaced atomically); read-modify-write of ``held.json``/``notified.json``
holds an exclusive ``flock`` on ``state.lock``, and ledger appends hold one on the ledger, so
several processes on one machine never lose or interleave a record.  A store kept by a server
(PostgreSQL, for several workers) implements the same protocol and is added to the
parametrisation of ``tests/unit/engine/test_state_contract.py``; the engine does not change.

Errors are :class:`~imagevet.errors.StateError` (a store that cannot be read or written) or
:class:`~imagevet.ledger.LedgerError` (the ledger's records), never a bare ``OSError``.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from imagevet.errors import StateError
from imagevet.ledger import FileLedger, LedgerStore
from imagevet.manifest_cache import ManifestCache
from imagevet.statefiles import append_fd, read_state_file, write_state_file

__all__ = [
    "CHECKPOINT_NAME",
    "HELD_NAME",
    "LAST_SYNC_NAME",
    "LEDGER_NAME",
    "NOTIFIED_NAME",
    "STATE_DIR_NAME",
    "FileStateStore",
    "HeldUpdate",
    "Notice",
    "StateStore",
    "state_dir_for",
]

STATE_DIR_NAME = ".imagevet"
LEDGER_NAME = "ledger.jsonl"
CHECKPOINT_NAME = "checkpoint"
LAST_SYNC_NAME = "last-sync.json"
HELD_NAME = "held.json"
NOTIFIED_NAME = "notified.json"
_LOCK_NAME = "state.lock"
_RECORDS_LIMIT = 16 << 20
"""Largest run summary, held or notified file read back (a hostile file is refused, not held)."""


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise StateError(f"{where}: not a time: {value!r}")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise StateError(f"{where}: not a time: {value!r}") from None


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise StateError(f"{where}: expected a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class HeldUpdate:
    """An update the plan holds back: ``entry``'s ``tag`` now points at ``digest`` upstream."""

    entry: str
    tag: str
    digest: str
    """What upstream points the tag at now (the update waiting)."""
    reason: str
    since: datetime
    """When it was first held (kept when the same update is held again)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.entry, self.tag)

    def to_json(self) -> dict[str, str]:
        return {"entry": self.entry, "tag": self.tag, "digest": self.digest, "reason": self.reason,
                "since": _stamp(self.since)}

    @classmethod
    def from_json(cls, doc: Any, where: str) -> HeldUpdate:
        if not isinstance(doc, dict):
            raise StateError(f"{where}: not a held update")
        return cls(
            _text(doc.get("entry"), where), _text(doc.get("tag"), where),
            _text(doc.get("digest"), where), _text(doc.get("reason"), where),
            _parse_time(doc.get("since"), where),
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """That ``entry``'s ``tag`` at ``digest`` was notified, and when (first time only).

    ``kind`` (an event kind such as ``held-update``) and ``target`` (the notification target,
    named by its environment variable) tell notices of one image apart; ``digest`` is whatever
    identifies the event's state (a digest, an expiry date).  Both are ``""`` in records written
    before they existed, and are then left out of the JSON, so such a file is written back as it
    was read.
    """

    entry: str
    tag: str
    digest: str
    at: datetime
    kind: str = ""
    target: str = ""

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.target, self.kind, self.entry, self.tag, self.digest)

    def to_json(self) -> dict[str, str]:
        out = {"entry": self.entry, "tag": self.tag, "digest": self.digest, "at": _stamp(self.at)}
        if self.kind:
            out["kind"] = self.kind
        if self.target:
            out["target"] = self.target
        return out

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Notice:
        if not isinstance(doc, dict):
            raise StateError(f"{where}: not a notice record")
        return cls(
            _text(doc.get("entry"), where), _text(doc.get("tag"), where),
            _text(doc.get("digest"), where), _parse_time(doc.get("at"), where),
            _text(doc.get("kind", ""), where), _text(doc.get("target", ""), where),
        )


class StateStore(Protocol):
    """Everything a sync keeps between runs; see the module docstring.

    Every method is synchronous and may block on I/O (an async caller runs it in a thread); each
    is atomic on its own: a reader never sees half a write, two writers never lose each other's
    records.
    """

    @property
    def location(self) -> str:
        """Where the state is, for messages (a directory, a database URL without secrets)."""
        ...

    @property
    def ledger(self) -> LedgerStore:
        """The audit ledger and its local checkpoint."""
        ...

    @property
    def manifests(self) -> ManifestCache | None:
        """Verified source-index bytes by digest (None: none kept, each check costs a GET)."""
        ...

    def write_run_summary(self, summary: Mapping[str, Any]) -> None:
        """Keep ``summary`` (JSON-able) as the last run's, replacing the previous one."""
        ...

    def read_run_summary(self) -> dict[str, Any] | None:
        """The last run's summary, None before the first run."""
        ...

    def hold(self, update: HeldUpdate) -> HeldUpdate:
        """Record ``update`` under its (entry, tag), replacing another digest held there; the
        same digest held again keeps its first ``since``.  Returns what is stored."""
        ...

    def release(self, entry: str, tag: str) -> bool:
        """Forget the update held for (entry, tag); False when none was."""
        ...

    def held(self) -> list[HeldUpdate]:
        """Every held update, by entry then tag."""
        ...

    def mark_notified(
        self, entry: str, tag: str, digest: str, *, now: datetime, kind: str = "", target: str = ""
    ) -> bool:
        """Record that (entry, tag, digest) was notified (as ``kind``, to ``target``); True the
        first time only."""
        ...

    def notified(
        self, entry: str, tag: str, digest: str, *, kind: str = "", target: str = ""
    ) -> Notice | None:
        """The record of (entry, tag, digest) having been notified (as ``kind``, to ``target``),
        None if it was not."""
        ...

    def notices(self) -> list[Notice]:
        """Every notice record, by key."""
        ...

    def forget_notices(self, notices: Collection[Notice]) -> int:
        """Forget the records with the keys of ``notices`` (a condition that cleared, so that it
        is notified again when it comes back); returns how many were there."""
        ...


def state_dir_for(policy_path: Path) -> Path:
    """The default state directory: ``.imagevet/`` next to the policy file."""
    return policy_path.parent / STATE_DIR_NAME


class FileStateStore:
    """The embedded default: files in one directory (``.imagevet/``); see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ledger = FileLedger(directory / LEDGER_NAME, directory / CHECKPOINT_NAME)
        self._manifests = ManifestCache(directory)

    def __repr__(self) -> str:
        return f"FileStateStore({str(self.directory)!r})"

    @property
    def location(self) -> str:
        return str(self.directory)

    @property
    def ledger(self) -> FileLedger:
        return self._ledger

    @property
    def manifests(self) -> ManifestCache:
        return self._manifests

    @property
    def summary_path(self) -> Path:
        return self.directory / LAST_SYNC_NAME

    # -- run summaries ------------------------------------------------------------------------

    def write_run_summary(self, summary: Mapping[str, Any]) -> None:
        write_state_file(self.summary_path, (json.dumps(summary, indent=2) + "\n").encode())

    def read_run_summary(self) -> dict[str, Any] | None:
        data = read_state_file(self.summary_path, limit=_RECORDS_LIMIT)
        if data is None:
            return None
        doc = self._json(data, self.summary_path)
        if not isinstance(doc, dict):
            raise StateError(f"{self.summary_path}: not a run summary")
        return doc

    # -- keyed records: held updates, notices ---------------------------------------------------

    @staticmethod
    def _json(data: bytes, path: Path) -> Any:
        try:
            return json.loads(data)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise StateError(f"{path}: not JSON ({e}); fix or move it aside") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time for the read-modify-write of ``held.json`` and ``notified.json``."""
        fd = append_fd(self.directory / _LOCK_NAME)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _records(self, name: str, field: str) -> list[Any]:
        path = self.directory / name
        data = read_state_file(path, limit=_RECORDS_LIMIT)
        if data is None:
            return []
        doc = self._json(data, path)
        if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get(field), list):
            raise StateError(f"{path}: not an imagevet {field} file (version 1); fix or move it aside")
        items: list[Any] = doc[field]
        return items

    def _write_records(self, name: str, field: str, items: list[dict[str, str]]) -> None:
        doc = {"version": 1, field: items}
        write_state_file(self.directory / name, (json.dumps(doc, indent=2) + "\n").encode())

    def _held(self) -> dict[tuple[str, str], HeldUpdate]:
        where = str(self.directory / HELD_NAME)
        out: dict[tuple[str, str], HeldUpdate] = {}
        for doc in self._records(HELD_NAME, "held"):
            update = HeldUpdate.from_json(doc, where)
            out[update.key] = update
        return out

    def _save_held(self, held: Mapping[tuple[str, str], HeldUpdate]) -> None:
        self._write_records(HELD_NAME, "held", [held[k].to_json() for k in sorted(held)])

    def hold(self, update: HeldUpdate) -> HeldUpdate:
        with self._locked():
            held = self._held()
            previous = held.get(update.key)
            if previous is not None and previous.digest == update.digest:
                update = HeldUpdate(update.entry, update.tag, update.digest, update.reason, previous.since)
            if previous != update:
                held[update.key] = update
                self._save_held(held)
            return update

    def release(self, entry: str, tag: str) -> bool:
        with self._locked():
            held = self._held()
            if held.pop((entry, tag), None) is None:
                return False
            self._save_held(held)
            return True

    def held(self) -> list[HeldUpdate]:
        held = self._held()
        return [held[k] for k in sorted(held)]

    def _notices(self) -> dict[tuple[str, str, str, str, str], Notice]:
        where = str(self.directory / NOTIFIED_NAME)
        out: dict[tuple[str, str, str, str, str], Notice] = {}
        for doc in self._records(NOTIFIED_NAME, "notified"):
            notice = Notice.from_json(doc, where)
            out.setdefault(notice.key, notice)
        return out

    def _save_notices(self, notices: Mapping[tuple[str, str, str, str, str], Notice]) -> None:
        self._write_records(NOTIFIED_NAME, "notified", [notices[k].to_json() for k in sorted(notices)])

    def mark_notified(
        self, entry: str, tag: str, digest: str, *, now: datetime, kind: str = "", target: str = ""
    ) -> bool:
        notice = Notice(entry, tag, digest, now, kind, target)
        with self._locked():
            notices = self._notices()
            if notice.key in notices:
                return False
            notices[notice.key] = notice
            self._save_notices(notices)
            return True

    def notified(
        self, entry: str, tag: str, digest: str, *, kind: str = "", target: str = ""
    ) -> Notice | None:
        return self._notices().get((target, kind, entry, tag, digest))

    def notices(self) -> list[Notice]:
        notices = self._notices()
        return [notices[k] for k in sorted(notices)]

    def forget_notices(self, notices: Collection[Notice]) -> int:
        if not notices:
            return 0
        with self._locked():
            stored = self._notices()
            gone = [n.key for n in notices if n.key in stored]
            for key in gone:
                del stored[key]
            if gone:
                self._save_notices(stored)
            return len(gone)
