"""The run lock: never two syncs at once on one state directory, across processes too.

``imagevet sync`` and every ``imagevet watch`` cycle take an exclusive ``flock`` on
``.imagevet/run.lock`` for the whole run.  The kernel drops an ``flock`` when its holder's
descriptor closes, so a process that dies, even by ``SIGKILL``, never leaves the lock held.

The file also says who holds it: the holder writes its pid, host name and start time into it
(one JSON object) and empties it when it lets go.  So a run that finds the lock taken names the
holder in its error, and a run that takes the lock and finds a record left in the file knows that
its writer died without letting go (a record is only ever there while its writer holds the lock):
it says so (:attr:`RunLock.stale`) and replaces the record.

The file is opened without following a symbolic link (:mod:`imagevet.statefiles`); its content is
read with a bound and is only ever shown, never trusted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagevet.errors import StateError
from imagevet.statefiles import append_fd

__all__ = ["RUN_LOCK_NAME", "Holder", "RunLock", "RunLockHeldError", "acquire_run_lock"]

RUN_LOCK_NAME = "run.lock"
_READ_LIMIT = 4096
"""More than any record this module writes: a bigger file is shown cut, never read whole."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or held) the run lock, as its file says; any field may be unknown."""

    pid: int | None
    host: str | None
    started: str | None
    command: str | None = None

    def describe(self) -> str:
        parts = [f"pid {self.pid}" if self.pid is not None else "an unknown process"]
        if self.host:
            parts.append(f"on {self.host}")
        if self.command:
            parts.append(f"({self.command})")
        if self.started:
            parts.append(f"since {self.started}")
        return " ".join(parts)

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        """The record in ``data``; None for an empty file; fields that are not what this module
        writes are left unknown (a hostile or damaged file is only ever described)."""
        if not data.strip():
            return None
        try:
            doc: Any = json.loads(data[:_READ_LIMIT])
        except (UnicodeDecodeError, ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            return cls(None, None, None)

        def text(key: str) -> str | None:
            value = doc.get(key)
            return value[:200] if isinstance(value, str) else None

        pid = doc.get("pid")
        return cls(
            pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 1 << 32 else None,
            text("host"), text("started"), text("command"),
        )


class RunLockHeldError(StateError):
    """Another run holds the run lock of this state directory."""

    def __init__(self, path: Path, holder: Holder | None) -> None:
        self.path = path
        self.holder = holder
        who = holder.describe() if holder is not None else "another process"
        super().__init__(f"another imagevet run holds {path}: {who}; try again when it has finished")


class RunLock:
    """A held run lock; :meth:`release` (or leaving the ``with`` block) lets go."""

    def __init__(self, path: Path, fd: int, holder: Holder, stale: Holder | None) -> None:
        self.path = path
        self.holder = holder
        self.stale = stale
        """The record a holder that died left behind (it no longer holds anything), or None."""
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the record, then close the descriptor (which drops the flock).  Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, _READ_LIMIT)


def acquire_run_lock(
    state_dir: Path, *, command: str, now: datetime | None = None, pid: int | None = None
) -> RunLock:
    """Take the run lock of ``state_dir`` (created when missing) without waiting.

    Raises :class:`RunLockHeldError` (naming the holder) when another run has it, and
    :class:`~imagevet.errors.StateError` when the file cannot be opened (a symlink, no
    permission).  ``command`` (``sync``, ``watch``) is written into the record.
    """
    path = state_dir / RUN_LOCK_NAME
    fd = append_fd(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateError(f"cannot lock {path}: {e.strerror}") from None
            try:
                holder = Holder.parse(_read(fd))
            except OSError:
                holder = None
            raise RunLockHeldError(path, holder) from None
        try:
            stale = Holder.parse(_read(fd))
            when = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            mine = Holder(pid or os.getpid(), socket.gethostname(), when, command)
            record = {"pid": mine.pid, "host": mine.host, "started": mine.started, "command": command}
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(record) + "\n").encode())  # O_APPEND: at 0, the file is empty
        except OSError as e:
            raise StateError(f"cannot write {path}: {e.strerror}") from None
    except BaseException:
        os.close(fd)
        raise
    return RunLock(path, fd, mine, stale)
