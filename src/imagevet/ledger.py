"""The audit ledger: an append-only, hash-chained JSON Lines file of every decision imagevet made.

Each line is one record::

    {"seq": 7, "time": "2026-11-29T10:00:00Z", "event": {...}, "prev": "<hash of line 6>",
     "hash": "sha256:<hex of the canonical JSON of seq, time, event, prev>"}

The first record's ``prev`` is ``"genesis"``.  Editing, removing or reordering a line breaks the
chain at that line.  The chain alone cannot show that the last records were removed, that the file
was emptied, or that it was rewritten with a recomputed chain: a signed checkpoint
(:mod:`imagevet.checkpoint`) commits to the size and the last hash, and :func:`verify_ledger`
checks the ledger against every checkpoint it is given.  :func:`verify_audit` gathers the local
and the remote checkpoint and checks it all; :func:`record_events` appends only to a ledger that
verifies, then signs, writes and pushes the new checkpoint; :func:`recover` moves a damaged ledger
aside and starts a new chain that names it.  See docs/audit.md.

Appends take an exclusive ``flock`` so two runs never interleave their records, and the records
of one append are written with a single ``write`` followed by ``fsync``.  The files are opened
through :mod:`imagevet.statefiles`: a symlink planted in their place is refused.

What goes in ``event`` is the caller's: ``sync`` writes one event per action (kind, source and
target references, digests, outcome, reason, rate-limit budget seen) plus a run header.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from imagevet.checkpoint import (
    GENESIS,
    Checkpoint,
    CheckpointError,
    Signer,
    SigningKeyError,
    Verifier,
    fetch_checkpoint,
    open_checkpoint,
    push_checkpoint,
    sign_checkpoint,
)
from imagevet.errors import ImagevetError, StateError
from imagevet.reference import Reference
from imagevet.statefiles import (
    StateFileError,
    append_fd,
    open_dir,
    read_state_file,
    rename_aside,
    write_state_file,
)

if TYPE_CHECKING:
    from imagevet.store import ImageStore

__all__ = [
    "GENESIS",
    "AuditReport",
    "AuditSetup",
    "FileLedger",
    "LedgerCheck",
    "LedgerDamagedError",
    "LedgerError",
    "LedgerStore",
    "RecoverRefusedError",
    "Recovered",
    "append_events",
    "read_ledger",
    "record_events",
    "recover",
    "verify_audit",
    "verify_ledger",
]

MAX_LINE = 1 << 20
"""A record longer than this is refused (a hostile file cannot make a reader hold it in memory)."""

RECOVER_HINT = (
    "run 'imagevet audit verify' to see what is wrong, then 'imagevet audit recover' to move the "
    "damaged ledger aside and start a new signed chain (docs/audit.md)"
)


class LedgerError(ImagevetError):
    """The ledger file cannot be read or written."""


class LedgerDamagedError(LedgerError):
    """The ledger does not verify (chain or checkpoint): nothing is appended to it."""


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """Result of :func:`verify_ledger`: ``ok`` and, when not, the first bad line and why.

    ``records``/``head``: how many records form an intact chain from the start, and the hash of
    the last of them (the last verified record).
    """

    ok: bool
    records: int
    bad_line: int | None = None
    reason: str = ""
    head: str = GENESIS


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _record_hash(seq: int, time: str, event: Mapping[str, Any], prev: str) -> str:
    body = _canonical({"seq": seq, "time": time, "event": event, "prev": prev})
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _check_stream(f: BinaryIO, anchors: Mapping[str, Checkpoint], *, tail: bool = False) -> LedgerCheck:
    """Walk the chain from the first line, then hold it against each checkpoint in ``anchors``.

    ``tail``: only the records from the oldest checkpoint on are verified (the ones before it are
    counted): what an append needs, in time proportional to the records since that checkpoint.
    """
    prev = GENESIS
    count = 0
    at: dict[int, str] = {}  # seq -> hash, only where a checkpoint points
    wanted = {cp.size for cp in anchors.values()}
    skip = max(min(wanted) - 1, 0) if tail and wanted else 0
    lineno = 0
    while True:
        raw = f.readline(MAX_LINE + 1)
        if not raw:
            break
        lineno += 1
        if len(raw) > MAX_LINE:
            return LedgerCheck(False, count, lineno, f"record longer than {MAX_LINE} bytes", prev)
        if lineno <= skip:
            if raw.endswith(b"\n"):
                count += 1
                continue
            return LedgerCheck(False, count, lineno, "a record without its line end", prev)
        if lineno == skip + 1 and skip:
            try:
                prev = json.loads(raw)["prev"]  # the link into the part not verified here
            except (ValueError, KeyError, TypeError, RecursionError) as e:
                return LedgerCheck(False, count, lineno, f"not a ledger record: {e}", prev)
        if not raw.strip():
            return LedgerCheck(False, count, lineno, "empty line", prev)
        try:
            rec = json.loads(raw)
            seq, time, event, rprev, rhash = (
                rec["seq"], rec["time"], rec["event"], rec["prev"], rec["hash"]
            )
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            return LedgerCheck(False, count, lineno, f"not a ledger record: {e}", prev)
        if type(seq) is not int or seq != count + 1:
            return LedgerCheck(False, count, lineno, f"sequence {seq!r} follows {count}", prev)
        if rprev != prev:
            return LedgerCheck(False, count, lineno, "previous-hash link broken", prev)
        try:
            ok = _record_hash(seq, time, event, rprev) == rhash
        except (TypeError, ValueError):
            ok = False
        if not ok:
            return LedgerCheck(False, count, lineno, "record altered (hash does not match)", prev)
        prev = rhash
        count += 1
        if count in wanted:
            at[count] = rhash
    for label, cp in sorted(anchors.items(), key=lambda kv: kv[1].size):
        if cp.size > count:
            return LedgerCheck(
                False, count, None,
                f"the ledger has {count} records but the {label} checkpoint commits to {cp.size}: "
                "records were removed (the ledger was truncated or emptied)", prev,
            )
        if cp.size and at.get(cp.size) != cp.head:
            return LedgerCheck(
                False, count, cp.size,
                f"record {cp.size} does not match the {label} checkpoint (ledger {at.get(cp.size)}, "
                f"checkpoint {cp.head}): the ledger was rewritten", prev,
            )
    return LedgerCheck(True, count, None, "", prev)


def _write_all(fd: int, data: bytes, path: Path) -> None:
    """Write ``data`` at the end and fsync; on any error cut the file back to where it was."""
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)  # never leave a partial record behind
        raise LedgerError(f"cannot append to ledger {path}: {e.strerror}") from None


def append_events(
    path: Path,
    events: Iterable[Mapping[str, Any]],
    *,
    now: datetime | None = None,
    anchors: Mapping[str, Checkpoint] | None = None,
    on_appended: Callable[[int, str], None] | None = None,
) -> int:
    """Append ``events`` to the ledger at ``path`` (created if missing); return the last seq.

    Under the ledger's lock, first the whole chain is checked, and held against ``anchors``
    (checkpoints the caller trusts): a ledger that does not verify gets nothing appended
    (:class:`LedgerDamagedError`).  ``on_appended(seq, head)`` runs after the write, still under
    the lock (it writes the new checkpoint, so two runs never write checkpoints out of order).
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        fd = append_fd(path)
    except StateFileError as e:
        raise LedgerError(str(e)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as f:
            f.seek(0)
            check = _check_stream(f, anchors or {}, tail=True) if anchors else _check_last(f)
        if not check.ok:
            where = f"line {check.bad_line}: " if check.bad_line else ""
            raise LedgerDamagedError(
                f"ledger {path} does not verify ({where}{check.reason}); nothing was appended to it: {RECOVER_HINT}"
            )
        seq, prev = check.records, check.head
        lines: list[bytes] = []
        for event in events:
            seq += 1
            digest = _record_hash(seq, stamp, event, prev)
            record = {"seq": seq, "time": stamp, "event": event, "prev": prev, "hash": digest}
            lines.append(_canonical(record) + b"\n")
            prev = digest
        if lines:
            _write_all(fd, b"".join(lines), path)
        if on_appended is not None:
            on_appended(seq, prev)
        return seq
    finally:
        os.close(fd)


def _check_last(f: BinaryIO) -> LedgerCheck:
    """The last record alone: it parses and its hash is its own (an append without a checkpoint)."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return LedgerCheck(True, 0)
    pos, tail = size, b""
    while pos > 0 and tail.rstrip(b"\n").count(b"\n") < 1 and len(tail) <= MAX_LINE:
        step = min(1 << 16, pos)
        pos -= step
        f.seek(pos)
        tail = f.read(step) + tail
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if len(last) > MAX_LINE:
        return LedgerCheck(False, 0, None, f"the last record is longer than {MAX_LINE} bytes")
    if not tail.endswith(b"\n"):
        return LedgerCheck(False, 0, None, "the last record is cut short")
    try:
        rec = json.loads(last)
        seq, rhash = rec["seq"], rec["hash"]
        ok = type(seq) is int and _record_hash(seq, rec["time"], rec["event"], rec["prev"]) == rhash
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        return LedgerCheck(False, 0, None, f"the last line is not a ledger record: {e}")
    if not ok:
        return LedgerCheck(False, 0, None, "the last record was altered (hash does not match)")
    return LedgerCheck(True, seq, None, "", rhash)


@contextlib.contextmanager
def _open_read(path: Path) -> Iterator[BinaryIO | None]:
    """The ledger opened for reading (never through a symlink), or None when it does not exist."""
    if not os.path.lexists(path.parent):
        yield None
        return
    try:
        with open_dir(path.parent, create=False) as dfd:
            fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except FileNotFoundError:
        yield None
        return
    except StateFileError as e:
        raise LedgerError(str(e)) from None
    except OSError as e:
        if os.path.islink(path):
            raise LedgerError(
                f"{path} is a symbolic link; imagevet does not follow links in its state directory: remove it"
            ) from None
        raise LedgerError(f"cannot read ledger {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LedgerError(f"{path} is not a regular file")
        yield f


def read_ledger(path: Path) -> Iterator[dict[str, Any]]:
    """Yield every record of the ledger (no verification; see :func:`verify_ledger`)."""
    try:
        with _open_read(path) as f:
            if f is None:
                return
            while raw := f.readline(MAX_LINE + 1):
                if len(raw) > MAX_LINE:
                    raise LedgerError(f"cannot read ledger {path}: a record is longer than {MAX_LINE} bytes")
                if raw.strip():
                    yield json.loads(raw)
    except (OSError, ValueError, RecursionError) as e:
        raise LedgerError(f"cannot read ledger {path}: {e}") from None


def verify_ledger(path: Path, anchors: Mapping[str, Checkpoint] | None = None) -> LedgerCheck:
    """Check the whole hash chain, then that every checkpoint in ``anchors`` is in it.

    A missing file is an empty ledger: it verifies unless a checkpoint commits to records.
    """
    with _open_read(path) as f:
        if f is None:
            return _check_stream(io.BytesIO(b""), anchors or {})
        return _check_stream(f, anchors or {})


# -- where the ledger lives --------------------------------------------------------------------------


class LedgerStore(Protocol):
    """Where the ledger's records and its local checkpoint are kept (the run state's ledger part).

    The chain is the same whatever keeps it: records as :func:`append_events` makes them, each
    append checked against the chain and ``anchors`` under one writer's lock, and nothing appended
    to a ledger that does not verify (:class:`LedgerDamagedError`).  The default is
    :class:`FileLedger`; a server-backed store implements the same methods (and passes the
    contract tests in ``tests/unit/engine/test_state_contract.py``).  Errors: :class:`LedgerError`
    for the records, :class:`~imagevet.errors.StateError` for the checkpoint.
    """

    @property
    def location(self) -> str:
        """Where the records are, for messages (a file's path)."""
        ...

    @property
    def checkpoint_location(self) -> str:
        """Where the local checkpoint is, for messages."""
        ...

    def append(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        now: datetime | None = None,
        anchors: Mapping[str, Checkpoint] | None = None,
        on_appended: Callable[[int, str], None] | None = None,
    ) -> int:
        """Append ``events`` as records; the last seq (see :func:`append_events`)."""
        ...

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record in order, unverified."""
        ...

    def verify(self, anchors: Mapping[str, Checkpoint] | None = None) -> LedgerCheck:
        """The whole chain, held against ``anchors`` (see :func:`verify_ledger`)."""
        ...

    def read_checkpoint(self) -> bytes | None:
        """The local checkpoint's signed note, None when there is none."""
        ...

    def write_checkpoint(self, note: bytes) -> None:
        """Replace the local checkpoint (atomically)."""
        ...

    def aside_names(self, suffix: str) -> tuple[str | None, str | None]:
        """The names :meth:`move_aside` would give the ledger and the checkpoint (None: absent)."""
        ...

    def move_aside(self, suffix: str) -> tuple[str | None, str | None]:
        """Keep the ledger and the checkpoint under new names (no append lands meanwhile, nothing
        is replaced or deleted), so a new chain starts empty; where each went (None: absent)."""
        ...


@dataclass(frozen=True, slots=True)
class FileLedger:
    """The ledger as a JSON Lines file and its checkpoint beside it (``.imagevet/`` by default)."""

    path: Path
    checkpoint: Path

    @classmethod
    def at(cls, path: Path, checkpoint_name: str = "checkpoint") -> FileLedger:
        """The ledger file ``path`` with its checkpoint in the same directory."""
        return cls(path, path.parent / checkpoint_name)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def checkpoint_location(self) -> str:
        return str(self.checkpoint)

    def append(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        now: datetime | None = None,
        anchors: Mapping[str, Checkpoint] | None = None,
        on_appended: Callable[[int, str], None] | None = None,
    ) -> int:
        return append_events(self.path, events, now=now, anchors=anchors, on_appended=on_appended)

    def records(self) -> Iterator[dict[str, Any]]:
        return read_ledger(self.path)

    def verify(self, anchors: Mapping[str, Checkpoint] | None = None) -> LedgerCheck:
        return verify_ledger(self.path, anchors)

    def read_checkpoint(self) -> bytes | None:
        return read_state_file(self.checkpoint, limit=1 << 16)

    def write_checkpoint(self, note: bytes) -> None:
        write_state_file(self.checkpoint, note)

    def aside_names(self, suffix: str) -> tuple[str | None, str | None]:
        return (
            f"{self.path.name}.{suffix}" if os.path.lexists(self.path) else None,
            f"{self.checkpoint.name}.{suffix}" if os.path.lexists(self.checkpoint) else None,
        )

    def move_aside(self, suffix: str) -> tuple[str | None, str | None]:
        damaged = moved = None
        try:
            if os.path.lexists(self.path):
                fd = append_fd(self.path, create=False)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # no append lands in the file while it moves
                    damaged = rename_aside(self.path, f"{self.path.name}.{suffix}")
                finally:
                    os.close(fd)
            if os.path.lexists(self.checkpoint):
                moved = rename_aside(self.checkpoint, f"{self.checkpoint.name}.{suffix}")
        except StateFileError as e:
            raise LedgerError(f"cannot move the damaged ledger aside: {e}") from None
        return (
            str(damaged) if damaged is not None else None,
            str(moved) if moved is not None else None,
        )


# -- checkpoints: verify, record, recover -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditSetup:
    """Where the ledger and its checkpoints live, and the keys (the CLI builds it from policy and env).

    ``ledger``: the records and the local checkpoint (:class:`FileLedger` in ``.imagevet/``).
    ``verifier``: the organization's public key; when set, checkpoints are expected.
    ``signer``: the private key (sync and recover); its public key must be ``verifier``.
    ``repository``: the checkpoint artifact's reference (with its tag); ``origin`` names the log.
    """

    ledger: LedgerStore
    repository: Reference | None = None
    verifier: Verifier | None = None
    signer: Signer | None = None

    @property
    def origin(self) -> str | None:
        return self.repository.name if self.repository is not None else None

    def key(self) -> Verifier | None:
        """The public key that checkpoints are checked with (the signer's when none is configured)."""
        if self.signer is not None:
            mine = self.signer.verifier
            if self.verifier is not None and mine != self.verifier:
                raise SigningKeyError(
                    f"the signing key {mine} is not the configured public key {self.verifier}"
                )
            return mine
        return self.verifier


@dataclass(slots=True)
class AuditReport:
    """What :func:`verify_audit` found.

    Three kinds of finding, kept apart because they call for different actions:

    * ``problems``: damage, the ledger or a checkpoint does not verify or does not match (and
      ``check`` not ok): ``imagevet audit recover`` is the way on;
    * ``misconfigured``: signed checkpoints exist but no public key is configured to check them
      (the policy's key was removed): fix the policy, nothing to recover;
    * ``unavailable``: what could not be checked (the remote checkpoint unreadable, or not pushed
      yet): nothing found is damaged, but the ledger is not verified either.

    ``remote_error``: why the remote checkpoint could not be read (None when it was read, or was
    not asked for).
    """

    check: LedgerCheck
    local: Checkpoint | None = None
    remote: Checkpoint | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    misconfigured: list[str] = field(default_factory=list)
    remote_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.check.ok and not self.problems and not self.unavailable and not self.misconfigured

    @property
    def damaged(self) -> bool:
        """The ledger or a checkpoint does not verify: what ``recover`` is for."""
        return not self.check.ok or bool(self.problems)

    @property
    def status(self) -> str:
        """``ok``, ``damaged``, ``misconfigured`` or ``unavailable`` (could not check), worst first."""
        if self.damaged:
            return "damaged"
        if self.misconfigured:
            return "misconfigured"
        return "unavailable" if self.unavailable else "ok"

    def reason(self) -> str:
        out = [*self.problems, *self.misconfigured, *self.unavailable]
        if not self.check.ok:
            where = f"line {self.check.bad_line}: " if self.check.bad_line else ""
            out.insert(0, where + self.check.reason)
        return "; ".join(out)


def _local(setup: AuditSetup, key: Verifier | None) -> tuple[bytes | None, Checkpoint | None, str | None]:
    try:
        note = setup.ledger.read_checkpoint()
    except StateError as e:
        return None, None, str(e)
    if note is None or key is None:
        return note, None, None
    try:
        return note, open_checkpoint(note, key, origin=setup.origin), None
    except CheckpointError as e:
        return note, None, f"local checkpoint {setup.ledger.checkpoint_location}: {e}"


@dataclass(frozen=True, slots=True)
class _Remote:
    """The remote checkpoint as read: its note, opened with the key, damage found, or why unreadable."""

    note: bytes | None = None
    checkpoint: Checkpoint | None = None
    problem: str | None = None
    error: str | None = None


async def _remote(setup: AuditSetup, client: ImageStore, key: Verifier | None) -> _Remote:
    """Read the remote checkpoint; open it with ``key`` (None: only whether one is there).

    A registry that does not answer, or answers with an error (5xx, 401, ...), is ``error``: the
    checkpoint could not be read, which says nothing about the ledger.  A manifest there that is
    not a checkpoint, or a note that does not verify, is ``problem``: damage.
    """
    assert setup.repository is not None
    try:
        note = await fetch_checkpoint(client, setup.repository)
    except CheckpointError as e:
        return _Remote(problem=f"remote checkpoint {setup.repository}: {e}")
    except ImagevetError as e:
        return _Remote(error=str(e))
    if note is None or key is None:
        return _Remote(note)
    try:
        return _Remote(note, open_checkpoint(note, key, origin=setup.origin))
    except CheckpointError as e:
        return _Remote(note, problem=f"remote checkpoint {setup.repository}: {e}")


async def verify_audit(setup: AuditSetup, client: ImageStore | None) -> AuditReport:
    """Check the chain, the signatures of the local and the remote checkpoint, and the ledger
    against both (``client`` None: offline, the remote one is not checked).

    The remote checkpoint is read whenever a repository is known, also without a public key: a
    ledger with signed checkpoints there while no key is configured is reported
    (``misconfigured``), so removing the key from the policy does not turn the check off.
    """
    key = setup.key()
    note, local, problem = _local(setup, key)
    if key is None and note is not None:
        raise SigningKeyError(
            f"{setup.ledger.checkpoint_location} exists but no public key is configured to check it: set "
            "audit.public_key in the policy or pass --public-key (docs/audit.md)"
        )
    report = AuditReport(LedgerCheck(True, 0), local, problems=[problem] if problem else [])
    remote = _Remote()
    if setup.repository is None:
        if key is not None:
            report.notes.append("no checkpoint repository is configured: only the local checkpoint was checked")
    elif client is None:
        report.notes.append(f"offline: the remote checkpoint {setup.repository} was not checked")
    else:
        remote = await _remote(setup, client, key)
        report.remote, report.remote_error = remote.checkpoint, remote.error
        if remote.problem:
            report.problems.append(remote.problem)
        if remote.error:
            report.unavailable.append(
                f"cannot read the remote checkpoint {setup.repository}: {remote.error}"
            )
    if key is None:
        report.check = setup.ledger.verify()
        if remote.note is not None:
            report.misconfigured.append(
                f"the ledger has signed checkpoints at {setup.repository} but the policy names no "
                "public key: set audit.public_key in the policy (or pass --public-key); if it was "
                "removed, the ledger may have been changed since (docs/audit.md)"
            )
        else:
            report.notes.append(
                "the ledger is not signed: only its hash chain was checked, which does not detect removed "
                "last records, an emptied file or a rewritten chain (docs/audit.md)"
            )
        return report
    anchors = {k: v for k, v in (("local", local), ("remote", report.remote)) if v is not None}
    report.check = check = setup.ledger.verify(anchors)
    fresh = check.ok and check.records == 0 and note is None and remote.note is None
    if not fresh:
        if note is None:
            report.problems.append(
                f"no local checkpoint {setup.ledger.checkpoint_location}, but a public key is configured: the "
                "checkpoint was removed, or the ledger was never signed (sync with the signing key)"
            )
        if client is not None and setup.repository is not None and remote.note is None and not remote.error and not remote.problem:
            report.unavailable.append(
                f"no checkpoint at {setup.repository} yet, but a public key is configured: no "
                "signed sync has pushed one (its push failed?), or it was deleted; the next signed "
                "sync pushes one"
            )
    if local is not None and report.remote is not None and report.remote.size > local.size and check.ok:
        report.notes.append(
            f"the local checkpoint ({local.size} records) is older than the remote one ({report.remote.size}); "
            "the ledger matches both"
        )
    return report


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :func:`record_events` did: the last seq, the checkpoint written and where it went."""

    seq: int
    checkpoint: Checkpoint | None = None
    pushed: str | None = None


def _writer(setup: AuditSetup, written: list[tuple[Checkpoint, bytes]]) -> Callable[[int, str], None]:
    def write(seq: int, head: str) -> None:
        if setup.signer is None:
            return
        cp = Checkpoint(setup.origin or setup.ledger.location, seq, head)
        note = sign_checkpoint(cp, setup.signer)
        try:
            setup.ledger.write_checkpoint(note)
        except StateError as e:
            raise LedgerError(f"records appended, but the checkpoint was not written: {e}") from None
        written.append((cp, note))

    return write


async def _push(setup: AuditSetup, client: ImageStore | None, note: bytes, now: datetime) -> str | None:
    if setup.repository is None or client is None:
        return None
    try:
        await push_checkpoint(client, setup.repository, note, now=now)
    except ImagevetError as e:
        raise LedgerError(
            f"the checkpoint was written to {setup.ledger.checkpoint_location} but not pushed to "
            f"{setup.repository}: {e}; the next signed sync pushes it"
        ) from None
    return str(setup.repository)


async def record_events(
    setup: AuditSetup,
    client: ImageStore | None,
    events: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> Recorded:
    """Append ``events`` to a ledger that verifies; with a signer, sign, write and push the checkpoint.

    The ledger is held against the local checkpoint and (when signing) the remote one first, so a
    truncated or rewritten ledger is never made to look valid by a new signature.
    """
    now = now or datetime.now(UTC)
    key = setup.key()
    anchors: dict[str, Checkpoint] = {}
    if key is not None:
        _, local, problem = _local(setup, key)
        if problem:
            raise LedgerDamagedError(f"{problem}; nothing was appended: {RECOVER_HINT}")
        if local is not None:
            anchors["local"] = local
        if setup.signer is not None and setup.repository is not None and client is not None:
            try:
                note = await fetch_checkpoint(client, setup.repository)
            except CheckpointError as e:
                raise LedgerDamagedError(
                    f"remote checkpoint {setup.repository}: {e}; nothing was appended: {RECOVER_HINT}"
                ) from None
            except ImagevetError as e:  # not damage: the records wait in the run summary
                raise LedgerError(
                    f"cannot read the remote checkpoint {setup.repository} ({e}); nothing was appended "
                    "to the ledger before it can be checked against it"
                ) from None
            remote = None
            if note is not None:
                try:
                    remote = open_checkpoint(note, key, origin=setup.origin)
                except CheckpointError as e:
                    raise LedgerDamagedError(
                        f"remote checkpoint {setup.repository}: {e}; nothing was appended: {RECOVER_HINT}"
                    ) from None
            if remote is not None:
                anchors["remote"] = remote
    written: list[tuple[Checkpoint, bytes]] = []
    seq = setup.ledger.append(events, now=now, anchors=anchors, on_appended=_writer(setup, written))
    if not written:
        return Recorded(seq)
    cp, note = written[-1]
    return Recorded(seq, cp, await _push(setup, client, note, now))


@dataclass(frozen=True, slots=True)
class Recovered:
    """What :func:`recover` did: where the damaged files went and the new chain's first record."""

    damaged: str | None
    """Where the damaged ledger went (None: there was none)."""
    checkpoint_moved: str | None
    event: dict[str, Any]
    recorded: Recorded


class RecoverRefusedError(LedgerError):
    """``recover`` will not run as asked (offline while the new checkpoint must be pushed); nothing changed."""


async def recover(
    setup: AuditSetup, client: ImageStore | None, *, reason: str = "", now: datetime | None = None
) -> Recovered:
    """Move a ledger that does not verify aside (never deleted) and start a new chain naming it.

    The new chain's first record names the damaged file, the last record of its intact chain
    (seq and hash), the newest valid checkpoint and why; a new signed checkpoint covers it.

    Refused, with nothing moved: when the ledger is not damaged (it verifies, or only the remote
    checkpoint could not be read); when signed checkpoints exist and no key is given; when the
    new checkpoint must be pushed (a signer and a repository) but ``client`` is None (offline) or
    the remote checkpoint cannot be read.  With a repository the new checkpoint is pushed *before*
    anything is moved: a failed push leaves the old ledger and checkpoint as they were, never a
    new chain that the remote checkpoint still contradicts.
    """
    now = now or datetime.now(UTC)
    if setup.key() is not None and setup.signer is None:
        raise SigningKeyError(
            "recover signs the new chain: set IMAGEVET_LEDGER_KEY_FILE or IMAGEVET_LEDGER_KEY"
        )
    pushing = setup.signer is not None and setup.repository is not None
    if pushing and client is None:
        raise RecoverRefusedError(
            f"recover pushes the new checkpoint to {setup.repository}, replacing the old one there: "
            "without that, the next signed sync refuses the new chain (the old checkpoint commits to "
            "records it does not have); run recover without --offline (docs/audit.md)"
        )
    report = await verify_audit(setup, client)
    if report.misconfigured:
        raise SigningKeyError(
            f"{report.reason()}; recover signs the new chain: configure the public key and set "
            "IMAGEVET_LEDGER_KEY_FILE or IMAGEVET_LEDGER_KEY"
        )
    if not report.damaged:
        if report.ok:
            raise LedgerError(f"{setup.ledger.location} verifies: nothing to recover")
        raise LedgerError(
            f"{setup.ledger.location}: nothing is damaged ({report.check.records} records, chain intact and "
            f"matching the checkpoints that could be read), but {'; '.join(report.unavailable)}; "
            "nothing was moved: run 'imagevet audit verify' again when the registry answers"
        )
    if report.remote_error is not None:
        raise LedgerError(
            f"{setup.ledger.location} does not verify, but recover needs the remote checkpoint "
            f"{setup.repository} and cannot read it ({report.remote_error}); nothing was moved"
        )
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"damaged-{stamp}"
    ledger_aside, checkpoint_aside = setup.ledger.aside_names(suffix)
    trusted = max((c for c in (report.local, report.remote) if c is not None), key=lambda c: c.size, default=None)
    event: dict[str, Any] = {
        "kind": "recovered",
        "damaged_file": ledger_aside,
        "damaged_checkpoint": checkpoint_aside,
        "last_verified_seq": report.check.records,
        "last_verified_hash": report.check.head,
        "checkpoint": {"size": trusted.size, "head": trusted.head} if trusted is not None else None,
        "problem": report.reason(),
        "reason": reason,
    }
    pushed: str | None = None
    first: Checkpoint | None = None
    if pushing:
        assert setup.signer is not None and setup.repository is not None and client is not None
        stamped = now.strftime("%Y-%m-%dT%H:%M:%SZ")  # what append_events stamps the record with
        first = Checkpoint(setup.origin or setup.ledger.location, 1, _record_hash(1, stamped, event, GENESIS))
        try:
            await push_checkpoint(client, setup.repository, sign_checkpoint(first, setup.signer), now=now)
        except ImagevetError as e:
            raise LedgerError(
                f"cannot push the new chain's checkpoint to {setup.repository} ({e}); nothing was moved: "
                "run recover again when the registry answers"
            ) from None
        pushed = str(setup.repository)
    damaged, moved = setup.ledger.move_aside(suffix)
    event["damaged_file"] = ledger_aside if damaged is not None else None
    event["damaged_checkpoint"] = checkpoint_aside if moved is not None else None
    written: list[tuple[Checkpoint, bytes]] = []
    seq = setup.ledger.append([event], now=now, anchors={}, on_appended=_writer(setup, written))
    if not written:
        return Recovered(damaged, moved, event, Recorded(seq))
    cp, _ = written[-1]
    if first is not None and cp != first:
        raise LedgerDamagedError(
            f"the new chain in {setup.ledger.location} is not the one whose checkpoint was pushed to {pushed} "
            f"(record {cp.size}, {cp.head}; pushed record 1, {first.head}): another run wrote to it "
            f"meanwhile: {RECOVER_HINT}"
        )
    return Recovered(damaged, moved, event, Recorded(seq, cp, pushed))
