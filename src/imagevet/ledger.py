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
from typing import TYPE_CHECKING, Any, BinaryIO

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
from imagevet.errors import ImagevetError
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
    from imagevet.registry import RegistryClient

__all__ = [
    "GENESIS",
    "AuditReport",
    "AuditSetup",
    "LedgerCheck",
    "LedgerDamagedError",
    "LedgerError",
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


# -- checkpoints: verify, record, recover -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditSetup:
    """Where the ledger and its checkpoints live, and the keys (the CLI builds it from policy and env).

    ``verifier``: the organization's public key; when set, checkpoints are expected.
    ``signer``: the private key (sync and recover); its public key must be ``verifier``.
    ``repository``: the checkpoint artifact's reference (with its tag); ``origin`` names the log.
    """

    ledger: Path
    checkpoint_file: Path
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
    """What :func:`verify_audit` found: the chain check, the checkpoints, problems and notes."""

    check: LedgerCheck
    local: Checkpoint | None = None
    remote: Checkpoint | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.check.ok and not self.problems

    def reason(self) -> str:
        out = list(self.problems)
        if not self.check.ok:
            where = f"line {self.check.bad_line}: " if self.check.bad_line else ""
            out.insert(0, where + self.check.reason)
        return "; ".join(out)


def _local(setup: AuditSetup, key: Verifier | None) -> tuple[bytes | None, Checkpoint | None, str | None]:
    try:
        note = read_state_file(setup.checkpoint_file, limit=1 << 16)
    except StateFileError as e:
        return None, None, str(e)
    if note is None or key is None:
        return note, None, None
    try:
        return note, open_checkpoint(note, key, origin=setup.origin), None
    except CheckpointError as e:
        return note, None, f"local checkpoint {setup.checkpoint_file}: {e}"


async def _remote(
    setup: AuditSetup, client: RegistryClient, key: Verifier
) -> tuple[bytes | None, Checkpoint | None, str | None]:
    assert setup.repository is not None
    try:
        note = await fetch_checkpoint(client, setup.repository)
    except CheckpointError as e:
        return None, None, f"remote checkpoint {setup.repository}: {e}"
    except ImagevetError as e:
        return None, None, f"cannot read the remote checkpoint {setup.repository}: {e}"
    if note is None:
        return None, None, None
    try:
        return note, open_checkpoint(note, key, origin=setup.origin), None
    except CheckpointError as e:
        return note, None, f"remote checkpoint {setup.repository}: {e}"


async def verify_audit(setup: AuditSetup, client: RegistryClient | None) -> AuditReport:
    """Check the chain, the signatures of the local and the remote checkpoint, and the ledger
    against both (``client`` None: offline, the remote one is not checked)."""
    key = setup.key()
    note, local, problem = _local(setup, key)
    problems = [problem] if problem else []
    notes: list[str] = []
    if key is None:
        if note is not None:
            raise SigningKeyError(
                f"{setup.checkpoint_file} exists but no public key is configured to check it: set "
                "audit.public_key in the policy or pass --public-key (docs/audit.md)"
            )
        check = verify_ledger(setup.ledger)
        notes.append(
            "the ledger is not signed: only its hash chain was checked, which does not detect removed "
            "last records, an emptied file or a rewritten chain (docs/audit.md)"
        )
        return AuditReport(check, problems=problems, notes=notes)
    remote: Checkpoint | None = None
    remote_note: bytes | None = None
    remote_failed = False
    if setup.repository is None:
        notes.append("no checkpoint repository is configured: only the local checkpoint was checked")
    elif client is None:
        notes.append(f"offline: the remote checkpoint {setup.repository} was not checked")
    else:
        remote_note, remote, problem = await _remote(setup, client, key)
        if problem:
            problems.append(problem)
            remote_failed = True
    anchors = {k: v for k, v in (("local", local), ("remote", remote)) if v is not None}
    check = verify_ledger(setup.ledger, anchors)
    fresh = check.ok and check.records == 0 and note is None and remote_note is None
    if not fresh:
        if note is None:
            problems.append(
                f"no local checkpoint {setup.checkpoint_file}, but a public key is configured: the "
                "checkpoint was removed, or the ledger was never signed (sync with the signing key)"
            )
        if client is not None and setup.repository is not None and remote_note is None and not remote_failed:
            problems.append(
                f"no checkpoint at {setup.repository}, but a public key is configured: it was "
                "deleted, or no signed sync has pushed one yet"
            )
    if local is not None and remote is not None and remote.size > local.size and check.ok:
        notes.append(
            f"the local checkpoint ({local.size} records) is older than the remote one ({remote.size}); "
            "the ledger matches both"
        )
    return AuditReport(check, local, remote, problems, notes)


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
        cp = Checkpoint(setup.origin or str(setup.ledger), seq, head)
        note = sign_checkpoint(cp, setup.signer)
        try:
            write_state_file(setup.checkpoint_file, note)
        except StateFileError as e:
            raise LedgerError(f"records appended, but the checkpoint was not written: {e}") from None
        written.append((cp, note))

    return write


async def _push(setup: AuditSetup, client: RegistryClient | None, note: bytes, now: datetime) -> str | None:
    if setup.repository is None or client is None:
        return None
    try:
        await push_checkpoint(client, setup.repository, note, now=now)
    except ImagevetError as e:
        raise LedgerError(
            f"the checkpoint was written to {setup.checkpoint_file} but not pushed to "
            f"{setup.repository}: {e}; the next signed sync pushes it"
        ) from None
    return str(setup.repository)


async def record_events(
    setup: AuditSetup,
    client: RegistryClient | None,
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
    seq = append_events(setup.ledger, events, now=now, anchors=anchors, on_appended=_writer(setup, written))
    if not written:
        return Recorded(seq)
    cp, note = written[-1]
    return Recorded(seq, cp, await _push(setup, client, note, now))


@dataclass(frozen=True, slots=True)
class Recovered:
    """What :func:`recover` did: where the damaged files went and the new chain's first record."""

    damaged: Path | None
    checkpoint_moved: Path | None
    event: dict[str, Any]
    recorded: Recorded


async def recover(
    setup: AuditSetup, client: RegistryClient | None, *, reason: str = "", now: datetime | None = None
) -> Recovered:
    """Move a ledger that does not verify aside (never deleted) and start a new chain naming it.

    The new chain's first record names the damaged file, the last record of its intact chain
    (seq and hash), the newest valid checkpoint and why; a new signed checkpoint covers it.
    """
    now = now or datetime.now(UTC)
    if setup.key() is not None and setup.signer is None:
        raise SigningKeyError(
            "recover signs the new chain: set IMAGEVET_LEDGER_KEY_FILE or IMAGEVET_LEDGER_KEY"
        )
    report = await verify_audit(setup, client)
    if report.ok:
        raise LedgerError(f"{setup.ledger} verifies: nothing to recover")
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    trusted = max((c for c in (report.local, report.remote) if c is not None), key=lambda c: c.size, default=None)
    damaged = moved = None
    try:
        if os.path.lexists(setup.ledger):
            fd = append_fd(setup.ledger, create=False)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # no append lands in the file while it moves
                damaged = rename_aside(setup.ledger, f"{setup.ledger.name}.damaged-{stamp}")
            finally:
                os.close(fd)
        if os.path.lexists(setup.checkpoint_file):
            moved = rename_aside(setup.checkpoint_file, f"{setup.checkpoint_file.name}.damaged-{stamp}")
    except StateFileError as e:
        raise LedgerError(f"cannot move the damaged ledger aside: {e}") from None
    event: dict[str, Any] = {
        "kind": "recovered",
        "damaged_file": damaged.name if damaged is not None else None,
        "damaged_checkpoint": moved.name if moved is not None else None,
        "last_verified_seq": report.check.records,
        "last_verified_hash": report.check.head,
        "checkpoint": {"size": trusted.size, "head": trusted.head} if trusted is not None else None,
        "problem": report.reason(),
        "reason": reason,
    }
    written: list[tuple[Checkpoint, bytes]] = []
    seq = append_events(setup.ledger, [event], now=now, anchors={}, on_appended=_writer(setup, written))
    if not written:
        return Recovered(damaged, moved, event, Recorded(seq))
    cp, note = written[-1]
    return Recovered(damaged, moved, event, Recorded(seq, cp, await _push(setup, client, note, now)))
