"""``plan_sync``: what a sync would do, as data, from the policy, the lock and what was observed.

Pure: no I/O.  The operation layer observes (tag lists and manifest HEADs of sources and
targets, the RepositoryManager's diff, the ``ratelimit-remaining`` header) and passes it in as
:class:`~imagevet.plan.observed.Observed`; ``sync`` then executes the returned
:class:`~imagevet.plan.actions.Plan` and ``--dry-run`` prints it.

Per entry, the digests the mirror should hold are:

* ``pinned``: the lock's.  An upstream tag that moved away from the lock is a :class:`Hold`
  (the target keeps the locked digest); an upstream tag that the lock does not have yet is a
  :class:`Hold` too.  ``imagevet lock`` + review is how either reaches the mirror.
* ``follow``: upstream's, as observed now (the lock's when the source was not observed).  A tag
  that moved is an :class:`Update`, and the digest it replaces keeps a backup tag.
* explicit ``digests``: always, by digest, whole (a platform subset never applies to them).

Selection, platforms and mode are per entry, always: two entries on one source repository share
what was observed upstream (one tag listing, one HEAD per tag) but each selects its own tags
(``Observed.sources`` is keyed by entry name).

With a platform subset, a target tag holding anything but the index derived from the source
index's bytes (``TargetState.subsets``) is updated, and one whose expected digest could not be
derived is held.

With a ``verify:`` rule, a Copy or Update goes ahead only for a digest whose cosign signature
verified (``Observed.verdicts``: the lock's ``verified`` record under ``pinned``, the signature
checked now under ``follow``); else it is a :class:`Hold` with the reason (docs/verify.md).

Then, per tag: already there -> :class:`Noop`; approval expired -> :class:`Hold` (digests already
mirrored stay, nothing new goes in); a scan at or above ``scan.fail_on`` (or no scan verdict) ->
:class:`Hold`; not at the target -> :class:`Copy`; at another digest -> :class:`Update`.  A target tag that nothing selects is a :class:`Prune` *candidate* (backup tags
and cosign/referrers digest tags never are); pruning is the caller's decision.  Repository
changes the RepositoryManager reported become :class:`CreateRepo` (only when something will be
pushed) or :class:`UpdateRepo`.  Last, the pull budget (:mod:`imagevet.plan.budget`) turns what
does not fit into :class:`Defer` actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imagevet.digest import Digest, is_digest_tag
from imagevet.errors import InvalidReferenceError
from imagevet.evidence import ScanVerdict, scan_hold_reason
from imagevet.lock import Lock, LockedImage, LockEntry, Verified
from imagevet.manifest import Platform
from imagevet.plan.actions import (
    Action,
    Copy,
    CreateRepo,
    Hold,
    Noop,
    Plan,
    Prune,
    Update,
    UpdateRepo,
    short_digest,
)
from imagevet.plan.budget import apply_budget, estimate_pulls
from imagevet.plan.observed import Observed, SourceState
from imagevet.policy.model import Entry, Mode, Policy, backup_tag_pattern
from imagevet.reference import Reference
from imagevet.repository_spec import RepoChangeKind

__all__ = ["EXPIRY_WARNING_DAYS", "desired_tags", "plan_sync"]

EXPIRY_WARNING_DAYS = 14
"""An approval expiring within this many days is mentioned in the plan's warnings."""


@dataclass(frozen=True, slots=True)
class _Slot:
    """One tag of an entry's mirror (or one explicit digest): where it comes from and goes, and
    what the target and upstream hold for it now."""

    tag: str | None
    """None: an explicit digest, copied by digest and whole."""
    want: Digest
    """The source digest the mirror should hold."""
    source: Reference
    target: Reference
    platforms: tuple[Platform, ...] | None
    present: bool
    """The target has this tag (or digest), whether or not its digest was read."""
    current: Digest | None
    """What the target holds now (None: nothing, or a digest that was not read)."""
    expected: Digest | None
    """What the target must hold to mirror ``want`` (None: it could not be derived)."""
    upstream: Digest | None
    """What upstream's tag points at now."""
    drift: bool
    """``pinned``, and upstream has moved away from ``want``."""


class _EntryPlanner:
    """The actions of one policy entry: desired tags, one action per tag, prune candidates,
    then the repository step in front."""

    def __init__(
        self, entry: Entry, lock: LockEntry | None, observed: Observed, now: datetime,
        scans: Mapping[Digest, ScanVerdict] | None = None,
    ) -> None:
        self.scans = scans or {}
        self.entry = entry
        self.lock = lock
        self.source = observed.source(entry)
        self.target = observed.target(entry.target)
        self.now = now
        self.expired = entry.approval.expired(now)
        self.observed = observed

    def plan(self) -> list[Action]:
        if self.target.error:
            return []  # the target could not be observed: its entry is reported as a problem
        desired, holds = self.desired()
        tag_actions: list[tuple[tuple[int, str], Action]] = [
            ((0, tag), self.tag_action(tag, digest)) for tag, digest in sorted(desired.items())
        ]
        tag_actions += [((0, a.target.tag or ""), a) for a in holds]
        tag_actions += [((1, str(d)), self.tag_action(None, d)) for d in self.entry.tags.digests]
        actions = [a for _, a in sorted(tag_actions, key=lambda x: x[0])]
        keep = set(desired) | {a.target.tag for a in holds if a.target.tag}
        actions += self.prune_candidates(keep)
        return self.with_repository(actions)

    # -- which tags ----------------------------------------------------------------------------

    def desired(self) -> tuple[dict[str, Digest], list[Action]]:
        """The tag -> digest the mirror should hold, and holds for upstream tags not yet locked."""
        e = self.entry
        desired = desired_tags(e, self.lock, self.source)
        if e.mode is Mode.FOLLOW:
            return desired, []
        locked = desired
        upstream = dict(self.source.tags) if self.source is not None else None
        holds: list[Action] = []
        for tag, digest in sorted((upstream or {}).items()):
            if tag not in locked:
                holds.append(
                    Hold(
                        e.name,
                        e.target.with_tag(tag),
                        "new upstream tag, not in the lock yet: run `imagevet lock` and review the diff",
                        wanted=None,
                        current=self.target.tags.get(tag),
                        upstream=digest,
                    )
                )
        return locked, holds

    # -- one action per tag --------------------------------------------------------------------

    def tag_action(self, tag: str | None, want: Digest) -> Action:
        """Noop, Hold, Copy or Update for ``tag`` (None: the explicit digest ``want``)."""
        slot = self.slot(tag, want)
        return self.signature_hold(slot, self.unchanged(slot) or self.transfer(slot))

    def signature_hold(self, s: _Slot, action: Action) -> Action:
        """Under a ``verify:`` rule, a Copy or Update goes ahead only for a digest whose cosign
        signature verified (``Observed.verdicts``); else it is a Hold with the reason, and the
        target keeps what it holds."""
        if self.entry.verify is None or not isinstance(action, Copy | Update):
            return action
        verdict = self.observed.verdict(self.entry, s.want)
        if isinstance(verdict, Verified):
            return action
        return Hold(
            self.entry.name,
            s.target,
            f"{short_digest(s.want)} {verdict}",
            wanted=s.want,
            current=s.current,
            upstream=s.upstream if s.upstream != s.want else None,
        )

    def slot(self, tag: str | None, want: Digest) -> _Slot:
        e = self.entry
        t = self.target
        if tag is None:
            current: Digest | None = want if want in t.digests else None
            target_ref, source_ref = e.target.with_digest(want), e.source.with_digest(want)
            present, platforms = current is not None, None
        else:
            target_ref = e.target.with_tag(tag)
            source_ref = e.source.with_tag(tag).with_digest(want)
            present = t.exists is not False and tag in t.tags
            current = t.tags.get(tag) if present else None
            platforms = e.platforms
        upstream = (
            self.source.tags.get(tag) if (self.source is not None and tag is not None) else None
        )
        return _Slot(
            tag, want, source_ref, target_ref, platforms, present, current,
            expected=self.expected(tag, want),
            upstream=upstream,
            drift=e.mode is Mode.PINNED and upstream is not None and upstream != want,
        )

    def expected(self, tag: str | None, want: Digest) -> Digest | None:
        """The digest the target must hold to mirror ``want`` (None: it could not be derived)."""
        if tag is None or self.entry.platforms is None:
            return want
        return self.target.subsets.get(want)

    def unchanged(self, s: _Slot) -> Action | None:
        """Noop, or a Hold that keeps the target as it is; None when something is to be pushed."""
        e = self.entry
        want, current, upstream = s.want, s.current, s.upstream
        if current is not None and current == s.expected:
            if s.drift:
                return Hold(
                    e.name,
                    s.target,
                    f"upstream moved to {short_digest(upstream)}; the lock holds {short_digest(want)}, which the "
                    "target keeps: run `imagevet lock` and review the diff to take the new digest",
                    wanted=want,
                    current=current,
                    upstream=upstream,
                )
            return Noop(e.name, s.target, current or want)
        if self.expired:
            expires = e.approval.expires.isoformat() if e.approval.expires else "?"
            return Hold(
                e.name,
                s.target,
                f"approval expired on {expires} ({e.approval.approved_by}): {short_digest(want)} is not mirrored "
                "until the approval is renewed",
                wanted=want,
                current=current,
                upstream=upstream if upstream != want else None,
            )
        if s.present and current is None:
            return Hold(
                e.name,
                s.target,
                "the target tag exists but its digest was not read, so no backup could be named: HEAD it first",
                wanted=want,
            )
        if current is not None and s.expected is None:
            why = self.target.unverified.get(want, "the source index was not read")
            return Hold(
                e.name,
                s.target,
                f"the target holds {short_digest(current)}, which cannot be checked against the platform "
                f"subset of {short_digest(want)}: {why}",
                wanted=want,
                current=current,
            )
        return None

    def notes(self, s: _Slot) -> str:
        """What a copy or update should tell beside its digests."""
        notes: list[str] = []
        if s.drift:
            notes.append(
                f"upstream has since moved to {short_digest(s.upstream)}; the lock's digest is copied"
            )
        if s.platforms is not None and s.current is not None:
            notes.append(
                f"the target holds {short_digest(s.current)}, not {short_digest(s.expected)}: the platform subset "
                f"derived from the source index {short_digest(s.want)}"
            )
        elif s.platforms is not None:
            notes.append(
                f"platform subset: the target index digest will differ from the source's {short_digest(s.want)}"
            )
        elif s.tag is None and self.entry.platforms is not None:
            notes.append("an explicit digest is copied whole (all platforms)")
        return "; ".join(notes)

    def scan_hold(self, s: _Slot) -> Action | None:
        """A Hold when the entry asks for a scan and ``s.want``'s scan is at or above
        ``fail_on``, or has no verdict (fail closed); None when it passes or no scan is asked."""
        scan = self.entry.scan
        if scan is None:
            return None
        reason = scan_hold_reason(self.scans.get(s.want), scan.fail_on, s.want)
        if reason is None:
            return None
        return Hold(self.entry.name, s.target, reason, wanted=s.want, current=s.current,
                    upstream=s.upstream if s.upstream != s.want else None)

    def transfer(self, s: _Slot) -> Action:
        """Copy what the target lacks; Update what it holds at another digest (with its backup)."""
        held = self.scan_hold(s)
        if held is not None:
            return held
        e = self.entry
        pulls = estimate_pulls(self._image(s.want, s.tag), s.platforms, e.referrers)
        if s.current is None:
            return Copy(
                e.name, s.source, s.target, s.want, s.platforms, e.referrers, pulls, self.notes(s)
            )
        assert s.tag is not None
        backup_tag = e.backup_tag_for(s.tag, s.current, self.now)
        try:
            backup = e.target.with_tag(backup_tag)
        except InvalidReferenceError:
            return Hold(
                e.name,
                s.target,
                f"the backup tag {backup_tag!r} from backup_tag {e.backup_tag!r} is not a valid tag",
                wanted=s.want,
                current=s.current,
            )
        return Update(
            e.name, s.source, s.target, s.want, s.current, backup, s.platforms, e.referrers, pulls,
            self.notes(s),
        )

    def _image(self, digest: Digest, tag: str | None) -> LockedImage | None:
        """What is known of ``digest`` (platforms, referrers) for its pull estimate."""
        if self.source is not None and digest in self.source.images:
            return self.source.images[digest]
        if self.lock is None:
            return None
        found = self.lock.find_digest(digest)
        if found is None and tag is not None:
            found = self.lock.tags.get(
                tag
            )  # an older digest of the same tag: same platforms, likely
        return found

    # -- what else -----------------------------------------------------------------------------

    def prune_candidates(self, keep: set[str]) -> list[Action]:
        """Target tags nothing selects (backup and digest tags never are); only on a full listing."""
        if not self.target.listed or self.target.exists is False:
            return []
        e = self.entry
        backups = backup_tag_pattern(e.backup_tag)
        return [
            Prune(e.name, e.target.with_tag(tag), digest)
            for tag, digest in sorted(self.target.tags.items())
            if not (tag in keep or backups.fullmatch(tag) or is_digest_tag(tag))
        ]

    def with_repository(self, actions: list[Action]) -> list[Action]:
        """``actions`` behind the repository step: create (only when something will be pushed)
        or update the target repository's settings."""
        e = self.entry
        changes = tuple(self.target.changes)
        pushes = any(isinstance(a, (Copy, Update)) for a in actions)
        if any(c.kind is RepoChangeKind.CREATE for c in changes):
            if pushes:
                return [CreateRepo(e.name, e.target, e.repo_spec(), changes), *actions]
        elif changes:
            return [UpdateRepo(e.name, e.target, e.repo_spec(), changes), *actions]
        return actions


def desired_tags(
    entry: Entry, lock: LockEntry | None, source: SourceState | None
) -> dict[str, Digest]:
    """Tag -> digest an entry's mirror should hold: the lock's, or under ``follow`` upstream's
    as observed now (the lock's when the source was not observed)."""
    if entry.mode is Mode.FOLLOW and source is not None:
        return dict(source.tags)
    return {t: i.digest for t, i in (lock.tags.items() if lock else ())}


def _warnings(policy: Policy, now: datetime) -> list[str]:
    out: list[str] = []
    today = now.astimezone(UTC).date()
    for e in policy.entries:
        expires = e.approval.expires
        if expires is None:
            continue
        if e.approval.expired(now):
            out.append(
                f"APPROVAL EXPIRED for {e.name} on {expires.isoformat()} ({e.approval.approved_by}"
                f"{', ' + e.approval.ticket if e.approval.ticket else ''}): new digests are held; "
                "renew approval.expires in the policy"
            )
        elif expires - today <= timedelta(days=EXPIRY_WARNING_DAYS):
            days = (expires - today).days
            out.append(f"approval for {e.name} expires on {expires.isoformat()} (in {days} days)")
    return out


def plan_sync(
    policy: Policy,
    lock: Lock,
    observed: Observed,
    *,
    now: datetime,
    budget_reserve: int = 0,
    scans: Mapping[Digest, ScanVerdict] | None = None,
) -> Plan:
    """Plan a sync: every entry of ``policy``, against ``lock`` and what was ``observed``.

    ``lock`` is the committed lock (the approved digests); ``observed.sources`` is upstream now
    (only needed for ``follow`` entries and to report moves under ``pinned``);
    ``observed.remaining`` turns copies beyond the pull budget into Defer actions.
    ``scans``: the scan verdict of each locked digest (from its evidence file); an entry with
    ``scan`` holds every copy or update whose digest's scan is at or above its ``fail_on`` or
    has no verdict.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    actions: list[Action] = []
    for entry in policy.entries:
        actions.extend(_EntryPlanner(entry, lock.entry(entry.key), observed, now, scans).plan())
    if observed.remaining:
        actions = list(apply_budget(actions, observed.remaining, reserve=budget_reserve))
    return Plan(tuple(actions), now, (*observed.warnings, *_warnings(policy, now)))
