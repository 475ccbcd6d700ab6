"""``imagevet approve``'s decision: which tags move to which digest, and the new lock.

:func:`prepare_approval` reads upstream (one tag listing, one HEAD per approved tag, one manifest
GET per digest the lock has never seen, through :class:`~imagevet.engine.observe.Upstream`, the
reader ``imagevet lock`` uses, so a new record gets its platforms, its platform manifests'
digests and its referrers exactly as ``imagevet lock`` would write them) and returns an
:class:`Approval`: the lock with exactly those tags moved, each with its
:class:`~imagevet.lock.TagApproval` record, and the audit events.  It writes nothing.

A tag may be approved when it is held (:mod:`imagevet.engine.holds`) or when upstream points
it elsewhere than the lock (a new upstream tag the entry's rules select, or a re-pointed one no
sync has held yet).  What is approved is what upstream points at *now*:

* a held tag whose upstream digest is no longer the one held (and shown by ``imagevet status``)
  is refused (:class:`UpstreamMovedError`) unless the caller names the new digest
  (``digests``): nobody approves a digest they have not seen;
* with ``digests``, every approved tag must be at one of them upstream, or nothing is approved.

Refusals that are the caller's input (an unknown tag, a ``follow`` entry, an entry whose lock
records cannot be read, nothing held) are :class:`ApprovalRefusedError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from imagevet.digest import Digest
from imagevet.engine.observe import HEAD_CONCURRENCY, Upstream
from imagevet.engine.state import HeldUpdate
from imagevet.errors import ImagevetError
from imagevet.lock import Lock, LockDiff, LockedImage, LockEntry, TagApproval, diff_locks
from imagevet.policy import Entry, select_tags
from imagevet.policy.model import Mode
from imagevet.reference import is_valid_tag
from imagevet.store import ImageStore

__all__ = [
    "Approval",
    "ApprovalRefusedError",
    "ApprovedTag",
    "UpstreamMovedError",
    "prepare_approval",
]


class ApprovalRefusedError(ImagevetError):
    """``approve`` cannot do what was asked with this input (the CLI exits 2)."""


class UpstreamMovedError(ImagevetError):
    """Upstream no longer points a tag at the digest that was held or named (the CLI exits 1)."""


@dataclass(frozen=True, slots=True)
class ApprovedTag:
    """One tag moved by an approval."""

    tag: str
    old: LockedImage | None
    """The lock's record before (None: a new tag)."""
    new: LockedImage
    """The new record: the observed digest, with its approval."""
    held: HeldUpdate | None
    """The held update it answers (None: upstream moved and no sync had held it yet)."""


@dataclass(frozen=True, slots=True)
class Approval:
    """What approving did to the lock (nothing written yet)."""

    entry: Entry
    old_lock: Lock
    lock: Lock
    approved: tuple[ApprovedTag, ...]
    already: tuple[str, ...] = ()
    """Held tags the lock already holds at their upstream digest (approved before, the next
    sync copies them): nothing to do for them."""

    @property
    def diff(self) -> LockDiff:
        return diff_locks(self.old_lock, self.lock)

    def ledger_events(self) -> list[dict[str, Any]]:
        """One ``approve`` event per approved tag: entry, references, tag, old and new digest,
        who, why and when, and since when it was held."""
        out: list[dict[str, Any]] = []
        for a in self.approved:
            assert a.new.approval is not None
            out.append({
                "kind": "approve",
                "entry": self.entry.name,
                "source": self.entry.source.name,
                "target": self.entry.target.name,
                "tag": a.tag,
                "old_digest": str(a.old.digest) if a.old is not None else None,
                "new_digest": str(a.new.digest),
                "by": a.new.approval.by,
                "reason": a.new.approval.reason,
                "at": a.new.approval.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "held_since": (
                    a.held.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if a.held else None
                ),
            })
        return out


def _short(digest: Digest | str) -> str:
    text = str(digest)
    algorithm, _, hex_ = text.partition(":")
    return f"{algorithm}:{hex_[:12]}"


async def prepare_approval(
    store: ImageStore,
    entry: Entry,
    lock: Lock,
    held: Sequence[HeldUpdate],
    tags: Sequence[str],
    *,
    by: str,
    reason: str,
    now: datetime,
    digests: Sequence[Digest] = (),
) -> Approval:
    """Approve ``tags`` of ``entry`` (none: every tag held for it) at what upstream points them at
    now; see the module docstring.  Raises ApprovalRefusedError, UpstreamMovedError,
    LockRecordError (``by``/``reason`` a record cannot hold), or a registry error."""
    approval = TagApproval(by, reason, now)  # refuse bad text before any request
    if entry.mode is Mode.FOLLOW:
        raise ApprovalRefusedError(
            f"{entry.name} is mode: follow: its upstream changes are mirrored without an approval"
        )
    problems = lock.problems(entry.key)
    if problems:
        why = "; ".join(str(p) for p in problems)
        raise ApprovalRefusedError(
            f"{entry.name}: its lock records cannot be read, nothing was changed "
            f"(fix the lock or run `imagevet lock --entry {entry.name}`): {why}"
        )
    bad = [t for t in tags if not is_valid_tag(t)]
    if bad:
        raise ApprovalRefusedError(f"not a tag name: {', '.join(repr(t[:140]) for t in bad)}")
    mine = {h.tag: h for h in held if h.entry == entry.name}
    chosen = sorted(set(tags)) if tags else sorted(mine)
    if not chosen:
        raise ApprovalRefusedError(
            f"nothing is held for {entry.name}: name the tags to approve (imagevet status lists "
            "what is held)"
        )
    old_entry = lock.entry(entry.key)
    locked = dict(old_entry.tags) if old_entry is not None else {}
    upstream = Upstream(store, asyncio.Semaphore(HEAD_CONCURRENCY), None)
    selected = set(select_tags(await upstream.tags(entry.source), entry.tags))
    observed: dict[str, Digest | None] = {}
    for tag in chosen:
        observed[tag] = await upstream.head(entry.source, tag) if tag in selected else None

    wanted = set(digests)
    moves: dict[str, Digest] = {}
    already: list[str] = []
    for tag in chosen:
        now_at, h, before = observed[tag], mine.get(tag), locked.get(tag)
        if now_at is None:
            if h is not None:
                raise ApprovalRefusedError(
                    f"{entry.name}: tag {tag!r} is held, but {entry.source.name} no longer has it "
                    "(or the entry's tag rules no longer select it): nothing to approve"
                )
            raise ApprovalRefusedError(
                f"{entry.name}: tag {tag!r} is neither held nor a new upstream tag of "
                f"{entry.source.name} selected by the entry's rules"
            )
        if before is not None and before.digest == now_at:
            if h is None and tags:
                raise ApprovalRefusedError(
                    f"{entry.name}: tag {tag!r} is neither held nor new upstream: the lock already "
                    f"holds what upstream points it at ({_short(now_at)})"
                )
            already.append(tag)
            continue
        if wanted and now_at not in wanted:
            raise UpstreamMovedError(
                f"{entry.name}: tag {tag!r} points at {now_at} upstream, not at the --digest given; "
                "nothing was approved"
            )
        if not wanted and h is not None and h.digest != str(now_at):
            raise UpstreamMovedError(
                f"{entry.name}: tag {tag!r} was held at {h.digest}, but upstream now points it at "
                f"{now_at}; nothing was approved: review that digest, then approve it with "
                f"--digest {now_at}"
            )
        moves[tag] = now_at

    records: dict[str, LockedImage] = {}
    for tag, digest in moves.items():
        known = old_entry.find_digest(digest) if old_entry is not None else None
        if known is None or known.lacks_manifests:
            async with upstream.gate:
                known = await upstream.describe(entry, digest, now)
        records[tag] = replace(known, resolved_at=now, approval=approval)
    new_entry = LockEntry(
        entry.source, entry.target, {**locked, **records},
        dict(old_entry.digests) if old_entry is not None else {},
    )
    approved = tuple(ApprovedTag(t, locked.get(t), records[t], mine.get(t)) for t in sorted(records))
    return Approval(entry, lock, lock.with_entry(new_entry), approved, tuple(already))
