"""The audit ledger: an append-only, hash-chained JSON Lines file of every decision imagevet made.

Each line is one record::

    {"seq": 7, "time": "2026-11-29T10:00:00Z", "event": {...}, "prev": "<hash of line 6>",
     "hash": "sha256:<hex of the canonical JSON of seq, time, event, prev>"}

The first record's ``prev`` is ``"genesis"``.  Editing, removing or reordering any line breaks the
chain at that line, which :func:`verify_ledger` reports (offline, from the file alone).  Appends
take an exclusive ``flock`` so two runs never interleave their records, and each record is
written with a single ``write`` followed by ``fsync``.

What goes in ``event`` is the caller's: ``sync`` writes one event per action (kind, source and
target references, digests, outcome, reason, rate-limit budget seen) plus a run header.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagevet.digest import Digest
from imagevet.errors import ImagevetError

__all__ = [
    "GENESIS",
    "LedgerCheck",
    "LedgerError",
    "append_events",
    "read_ledger",
    "rewritten_from_ledger",
    "verify_ledger",
]

GENESIS = "genesis"


class LedgerError(ImagevetError):
    """The ledger file cannot be read or written."""


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """Result of :func:`verify_ledger`: ``ok`` and, when not, the first bad line and why."""

    ok: bool
    records: int
    bad_line: int | None = None
    reason: str = ""


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _record_hash(seq: int, time: str, event: Mapping[str, Any], prev: str) -> str:
    body = _canonical({"seq": seq, "time": time, "event": event, "prev": prev})
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _last_record(fd: int) -> tuple[int, str]:
    """(seq, hash) of the last line of an open ledger, or (0, GENESIS) when it is empty."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return 0, GENESIS
    chunk = 4096
    pos = size
    tail = b""
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        tail = os.pread(fd, step, pos) + tail
        lines = tail.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or pos == 0:
            last = json.loads(lines[-1])
            return int(last["seq"]), str(last["hash"])
    return 0, GENESIS  # pragma: no cover


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
    path: Path, events: Iterable[Mapping[str, Any]], *, now: datetime | None = None
) -> int:
    """Append ``events`` to the ledger at ``path`` (created if missing); return the last seq."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        raise LedgerError(f"cannot open ledger {path}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            seq, prev = _last_record(fd)
        except (ValueError, KeyError) as e:
            raise LedgerError(f"ledger {path} has a corrupt last line ({e}); run 'imagevet audit verify'") from None
        lines: list[bytes] = []
        for event in events:
            seq += 1
            digest = _record_hash(seq, stamp, event, prev)
            record = {"seq": seq, "time": stamp, "event": event, "prev": prev, "hash": digest}
            lines.append(_canonical(record) + b"\n")
            prev = digest
        if lines:
            _write_all(fd, b"".join(lines), path)
        return seq
    finally:
        os.close(fd)


def read_ledger(path: Path) -> Iterator[dict[str, Any]]:
    """Yield every record of the ledger (no verification; see :func:`verify_ledger`)."""
    try:
        with path.open("rb") as f:
            for raw in f:
                if raw.strip():
                    yield json.loads(raw)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as e:
        raise LedgerError(f"cannot read ledger {path}: {e}") from None


def verify_ledger(path: Path) -> LedgerCheck:
    """Check the whole hash chain; report the first line where it breaks."""
    prev = GENESIS
    count = 0
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return LedgerCheck(True, 0)
    with f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                return LedgerCheck(False, count, lineno, "empty line")
            try:
                rec = json.loads(raw)
                seq, time, event, rprev, rhash = (
                    rec["seq"], rec["time"], rec["event"], rec["prev"], rec["hash"]
                )
            except (ValueError, KeyError, TypeError) as e:
                return LedgerCheck(False, count, lineno, f"not a ledger record: {e}")
            if seq != count + 1:
                return LedgerCheck(False, count, lineno, f"sequence {seq} follows {count}")
            if rprev != prev:
                return LedgerCheck(False, count, lineno, "previous-hash link broken")
            if _record_hash(seq, time, event, rprev) != rhash:
                return LedgerCheck(False, count, lineno, "record altered (hash does not match)")
            prev = rhash
            count += 1
    return LedgerCheck(True, count)


def rewritten_from_ledger(records: Iterable[Mapping[str, Any]]) -> dict[Digest, Digest]:
    """Target digest -> source digest of every rewritten index (platform subset) a sync recorded."""
    out: dict[Digest, Digest] = {}
    for record in records:
        copy = record.get("event", {}).get("copy")
        if isinstance(copy, dict) and copy.get("index_rewritten"):
            try:
                out[Digest.parse(copy["digest"])] = Digest.parse(copy["source_digest"])
            except (KeyError, ImagevetError):
                continue
    return out
