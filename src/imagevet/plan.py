"""``plan_sync``: what a sync would do, as data, from the policy, the lock and what was observed.

Pure: no I/O.  The operation layer observes (tag lists and manifest HEADs of sources and
targets, the RepositoryManager's diff, the ``ratelimit-remaining`` header) and passes it in as
:class:`Observed`; ``sync`` then executes the returned :class:`Plan` and ``--dry-run`` prints it.

Per entry, the digests the mirror should hold are:

* ``pinned``: the lock's.  An upstream tag that moved away from the lock is a :class:`Hold`
  (the target keeps the locked digest); an upstream tag that the lock does not have yet is a
  :class:`Hold` too.  ``imagevet lock`` + review is how either reaches the mirror.
* ``follow``: upstream's, as observed now (the lock's when the source was not observed).  A tag
  that moved is an :class:`Update`, and the digest it replaces keeps a backup tag.
* explicit ``digests``: always, by digest, whole (a platform subset never applies to them).

Selection, platforms and mode are per entry, always: two entries on one source repository share
what was observed upstream (one tag listing, one HEAD per tag) but each selects its own tags
(:attr:`Observed.sources` is keyed by entry name).

With a platform subset the mirror holds a rewritten index.  What it must hold is derived again
from the source index's bytes (:func:`imagevet.manifest.subset_index`; the operation layer
passes it as :attr:`TargetState.subsets`), never taken from a record of an earlier run: a target
tag holding anything else is updated, and one whose expected digest could not be derived is held.

Then, per tag: already there -> :class:`Noop`; approval expired -> :class:`Hold` (digests already
mirrored stay, nothing new goes in); not at the target -> :class:`Copy`; at another digest ->
:class:`Update`.  A target tag that nothing selects is a :class:`Prune` *candidate* (backup tags
and cosign/referrers digest tags never are); pruning is the caller's decision.  Repository
changes the RepositoryManager reported become :class:`CreateRepo` (only when something will be
pushed) or :class:`UpdateRepo`.

Pull budget (:func:`apply_budget`): Docker Hub counts manifest GETs as pulls; HEADs are free.
The estimate of one copy (:func:`estimate_pulls`) is 1 for the top manifest, plus 1 per platform
manifest of an index (only the platforms copied), plus 1 per referrer when referrers are copied;
an image never read (no lock record, no details observed) counts as an index of
``UNKNOWN_PLATFORMS`` platforms.  An :class:`Update` adds 1 pull at the target's registry to read
the manifest that the backup tag keeps.  Copies are admitted first, then updates, each in plan
order, as long as every registry involved has pulls left (above ``reserve``); the rest become
:class:`Defer` (not failed: the next run picks them up).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from imagevet.digest import Digest, is_digest_tag
from imagevet.errors import InvalidReferenceError
from imagevet.lock import Lock, LockedImage, LockEntry
from imagevet.manifest import Platform
from imagevet.policy.model import Entry, Mode, Policy, backup_tag_pattern
from imagevet.reference import Reference
from imagevet.repository_spec import RepoChange, RepoChangeKind, RepoSpec

__all__ = [
    "Action",
    "ActionKind",
    "Copy",
    "CreateRepo",
    "Defer",
    "EXPIRY_WARNING_DAYS",
    "EntryProblem",
    "Hold",
    "Noop",
    "Observed",
    "Plan",
    "Prune",
    "SourceState",
    "TargetState",
    "UNKNOWN_PLATFORMS",
    "Update",
    "UpdateRepo",
    "apply_budget",
    "desired_tags",
    "estimate_pulls",
    "plan_sync",
]

UNKNOWN_PLATFORMS = 4
"""Platforms assumed for an image whose index was never read (a conservative guess)."""
EXPIRY_WARNING_DAYS = 14
"""An approval expiring within this many days is mentioned in the plan's warnings."""


class ActionKind(enum.StrEnum):
    CREATE_REPO = "create-repo"
    UPDATE_REPO = "update-repo"
    COPY = "copy"
    UPDATE = "update"
    HOLD = "hold"
    PRUNE = "prune"
    NOOP = "noop"
    DEFER = "defer"


def _short(digest: Digest | None) -> str:
    return f"{digest.algorithm}:{digest.hex[:12]}" if digest is not None else "-"


def _s(digest: Digest | None) -> str | None:
    return str(digest) if digest is not None else None


# ---- what was observed -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryProblem:
    """A policy entry that could not be resolved, observed or read from the lock: ``source`` is
    the reference concerned (its source, its target, or the lock); the entry's old lock records
    are kept and the other entries go on."""

    entry: str
    source: str
    message: str


@dataclass(frozen=True, slots=True)
class SourceState:
    """Upstream now, for one policy entry: the tags its rules select and their digests (HEADs)."""

    tags: Mapping[str, Digest] = field(default_factory=dict)
    images: Mapping[Digest, LockedImage] = field(default_factory=dict)
    """Optional details of digests that were read (platforms, referrers), for the pull estimate."""

    @classmethod
    def from_lock_entry(cls, entry: LockEntry) -> SourceState:
        """The state a freshly resolved lock entry describes (what ``imagevet lock`` just saw)."""
        images = {i.digest: i for i in (*entry.tags.values(), *entry.digests.values())}
        return cls({t: i.digest for t, i in entry.tags.items()}, images)


@dataclass(frozen=True, slots=True)
class TargetState:
    """One target repository as observed.

    ``tags`` maps each tag seen to the digest a HEAD returned (``None``: listed but not HEADed;
    such a tag is never overwritten, for its backup could not be named).  ``listed`` says that
    ``tags`` holds every tag of the repository, which prune candidates need.  ``digests`` are the
    explicit digests a HEAD found.  ``changes`` is what the RepositoryManager's ``diff`` returned.

    For an entry with a platform subset, ``subsets`` maps a source digest to the digest the
    mirror must hold for it, derived from the source index's bytes (the source digest itself for
    an image that is not an index); ``unverified`` maps a source digest whose subset could not be
    derived to the reason.  ``error`` says the target could not be observed: nothing is planned
    for its entry.
    """

    exists: bool | None = None
    tags: Mapping[str, Digest | None] = field(default_factory=dict)
    listed: bool = False
    digests: frozenset[Digest] = frozenset()
    changes: tuple[RepoChange, ...] = ()
    subsets: Mapping[Digest, Digest] = field(default_factory=dict)
    unverified: Mapping[Digest, str] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything the operation layer saw.

    ``sources`` is keyed by entry name (each entry's own selection of upstream; an entry whose
    source was not read is missing), ``targets`` by target repository (no tag).
    """

    sources: Mapping[str, SourceState] = field(default_factory=dict)
    targets: Mapping[Reference, TargetState] = field(default_factory=dict)
    remaining: Mapping[str, int] = field(default_factory=dict)
    """Pulls left per registry host (``ratelimit-remaining``); a host not listed is unlimited."""
    warnings: tuple[str, ...] = ()
    """What observing skipped and why (invalid tags in a listing, ...); the plan repeats them."""

    def source(self, entry: Entry) -> SourceState | None:
        return self.sources.get(entry.name)

    def target(self, repo: Reference) -> TargetState:
        return self.targets.get(repo.repo(), TargetState())


# ---- actions ---------------------------------------------------------------------------------


def _spec_json(spec: RepoSpec) -> dict[str, Any]:
    return {
        "namespace": spec.namespace,
        "name": spec.name,
        "private": spec.private,
        "description": spec.description,
        "teams": {t: str(p) for t, p in sorted(spec.teams.items())},
    }


@dataclass(frozen=True, slots=True)
class CreateRepo:
    """Create the target repository (through the RepositoryManager) with these changes."""

    kind: ClassVar[ActionKind] = ActionKind.CREATE_REPO
    entry: str
    target: Reference
    spec: RepoSpec
    changes: tuple[RepoChange, ...]

    def describe(self) -> str:
        return f"create {self.target.name} ({'private' if self.spec.private else 'public'})"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "entry": self.entry,
            "target": self.target.name,
            "spec": _spec_json(self.spec),
            "changes": [
                {"kind": str(c.kind), "detail": c.detail, "team": c.team} for c in self.changes
            ],
        }


@dataclass(frozen=True, slots=True)
class UpdateRepo:
    """Bring an existing target repository's settings in line (privacy, description, teams)."""

    kind: ClassVar[ActionKind] = ActionKind.UPDATE_REPO
    entry: str
    target: Reference
    spec: RepoSpec
    changes: tuple[RepoChange, ...]

    def describe(self) -> str:
        return f"update {self.target.name}: " + "; ".join(c.detail for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "entry": self.entry,
            "target": self.target.name,
            "spec": _spec_json(self.spec),
            "changes": [
                {"kind": str(c.kind), "detail": c.detail, "team": c.team} for c in self.changes
            ],
        }


@dataclass(frozen=True, slots=True)
class Copy:
    """Copy ``source`` (pinned by digest) to ``target`` (a tag, or a digest for explicit digests)."""

    kind: ClassVar[ActionKind] = ActionKind.COPY
    entry: str
    source: Reference
    target: Reference
    digest: Digest
    platforms: tuple[Platform, ...] | None = None
    referrers: bool = True
    pulls: int = 1
    """Estimated pulls at the source's registry (see :func:`estimate_pulls`)."""
    note: str = ""

    @property
    def rewrites_index(self) -> bool:
        """A platform subset: the target's index digest will differ from ``digest``."""
        return self.platforms is not None

    def costs(self) -> dict[str, int]:
        return {self.source.registry: self.pulls}

    def describe(self) -> str:
        return f"copy {self.source.familiar} -> {self.target.familiar} (~{self.pulls} pulls)" + (
            f"; {self.note}" if self.note else ""
        )

    def to_json(self) -> dict[str, Any]:
        return _transfer_json(self)


def _transfer_json(action: Copy | Update) -> dict[str, Any]:
    """The JSON both image actions share (an Update adds its old digest and backup)."""
    out: dict[str, Any] = {
        "kind": str(action.kind),
        "entry": action.entry,
        "source": str(action.source),
        "target": str(action.target),
        "tag": action.target.tag,
        "digest": str(action.digest),
    }
    if isinstance(action, Update):
        out["old_digest"] = str(action.old_digest)
        out["backup"] = str(action.backup)
    platforms = action.platforms
    out.update({
        "platforms": [str(p) for p in platforms] if platforms is not None else None,
        "rewrites_index": action.rewrites_index,
        "referrers": action.referrers,
        "pulls": sum(action.costs().values()),
        "note": action.note,
    })
    return out


@dataclass(frozen=True, slots=True)
class Update:
    """Re-point a target tag to ``digest``; ``backup`` (a tag) first keeps ``old_digest``."""

    kind: ClassVar[ActionKind] = ActionKind.UPDATE
    entry: str
    source: Reference
    target: Reference
    digest: Digest
    old_digest: Digest
    backup: Reference
    platforms: tuple[Platform, ...] | None = None
    referrers: bool = True
    pulls: int = 1
    note: str = ""

    @property
    def rewrites_index(self) -> bool:
        return self.platforms is not None

    def costs(self) -> dict[str, int]:
        out = {self.source.registry: self.pulls}
        out[self.target.registry] = out.get(self.target.registry, 0) + 1  # GET for the backup
        return out

    def describe(self) -> str:
        return (
            f"update {self.target.familiar}: {_short(self.old_digest)} -> {_short(self.digest)}, "
            f"backup tag {self.backup.tag} (~{sum(self.costs().values())} pulls)"
        ) + (f"; {self.note}" if self.note else "")

    def to_json(self) -> dict[str, Any]:
        return _transfer_json(self)


@dataclass(frozen=True, slots=True)
class Hold:
    """Nothing is pushed for this tag, and why (pinned upstream move, expired approval, ...)."""

    kind: ClassVar[ActionKind] = ActionKind.HOLD
    entry: str
    target: Reference
    reason: str
    wanted: Digest | None = None
    """The digest the policy/lock would mirror."""
    current: Digest | None = None
    """What the target holds now (unchanged)."""
    upstream: Digest | None = None
    """What upstream points at now, when it differs from ``wanted``."""

    def describe(self) -> str:
        return f"hold {self.target.familiar}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "entry": self.entry,
            "target": str(self.target),
            "tag": self.target.tag,
            "reason": self.reason,
            "wanted": _s(self.wanted),
            "current": _s(self.current),
            "upstream": _s(self.upstream),
        }


@dataclass(frozen=True, slots=True)
class Prune:
    """A target tag the policy no longer selects: a candidate, deleted only if the user asks."""

    kind: ClassVar[ActionKind] = ActionKind.PRUNE
    entry: str
    target: Reference
    digest: Digest | None
    reason: str = "not selected by the policy"

    def describe(self) -> str:
        return f"prune candidate {self.target.familiar} ({self.reason})"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "entry": self.entry,
            "target": str(self.target),
            "tag": self.target.tag,
            "digest": _s(self.digest),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Noop:
    """The target already holds what it should."""

    kind: ClassVar[ActionKind] = ActionKind.NOOP
    entry: str
    target: Reference
    digest: Digest

    def describe(self) -> str:
        return f"up to date {self.target.familiar} ({_short(self.digest)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "entry": self.entry,
            "target": str(self.target),
            "tag": self.target.tag,
            "digest": str(self.digest),
        }


@dataclass(frozen=True, slots=True)
class Defer:
    """A copy or update left for a later run because the pull budget would run out."""

    kind: ClassVar[ActionKind] = ActionKind.DEFER
    entry: str
    action: Copy | Update
    reason: str

    @property
    def target(self) -> Reference:
        return self.action.target

    def describe(self) -> str:
        return f"defer {self.action.describe()}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "entry": self.entry,
            "target": str(self.action.target),
            "tag": self.action.target.tag,
            "reason": self.reason,
            "action": self.action.to_json(),
        }


Action = CreateRepo | UpdateRepo | Copy | Update | Hold | Prune | Noop | Defer

_CHANGES = frozenset(
    {
        ActionKind.CREATE_REPO,
        ActionKind.UPDATE_REPO,
        ActionKind.COPY,
        ActionKind.UPDATE,
        ActionKind.DEFER,
    }
)


@dataclass(frozen=True, slots=True)
class Plan:
    """The actions of one sync, in order: per policy entry, repository first, then tags."""

    actions: tuple[Action, ...]
    now: datetime
    warnings: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        """Whether sync would push or change something now, or had to defer it.

        Holds and prune candidates are reported but are not changes sync makes.
        """
        return any(a.kind in _CHANGES for a in self.actions)

    def summary(self) -> dict[str, int]:
        """The number of actions of each kind, every kind listed, in a fixed order."""
        counts = dict.fromkeys((str(k) for k in ActionKind), 0)
        for a in self.actions:
            counts[str(a.kind)] += 1
        return counts

    def of_kind(self, kind: ActionKind) -> list[Action]:
        return [a for a in self.actions if a.kind is kind]

    def to_json(self) -> dict[str, Any]:
        """A stable machine-readable form (``imagevet plan --json``)."""
        return {
            "version": 1,
            "now": self.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "has_changes": self.has_changes,
            "summary": self.summary(),
            "warnings": list(self.warnings),
            "actions": [a.to_json() for a in self.actions],
        }


# ---- pull budget -----------------------------------------------------------------------------


def estimate_pulls(
    image: LockedImage | None, platforms: Sequence[Platform] | None, referrers: bool
) -> int:
    """Manifest GETs to copy ``image`` (see the module docstring for the rule)."""
    if image is None:
        return 1 + (len(platforms) if platforms is not None else UNKNOWN_PLATFORMS)
    extra = len(image.referrers) if referrers else 0
    if not image.is_index:
        return 1 + extra
    if not image.platforms:
        children = len(platforms) if platforms is not None else UNKNOWN_PLATFORMS
    elif platforms is None:
        children = len(image.platforms)
    else:
        have = [Platform.parse(p) for p in image.platforms]
        children = sum(1 for h in have if any(p.matches(h) for p in platforms))
    return 1 + children + extra


def apply_budget(
    actions: Sequence[Action], remaining: Mapping[str, int], *, reserve: int = 0
) -> tuple[Action, ...]:
    """Turn the copies and updates that do not fit in ``remaining`` pulls into Defer actions.

    Copies (new tags) are admitted first, then updates, each in the order given; an action is
    admitted when every registry it pulls from still has its pulls left above ``reserve``.
    Registries missing from ``remaining`` are unlimited.  The order of ``actions`` is kept.
    """
    left = {host: n - reserve for host, n in remaining.items()}
    order = sorted(
        (i for i, a in enumerate(actions) if isinstance(a, (Copy, Update))),
        key=lambda i: (0 if isinstance(actions[i], Copy) else 1, i),
    )
    out: list[Action] = list(actions)
    for i in order:
        action = actions[i]
        assert isinstance(action, (Copy, Update))
        costs = action.costs()
        short = [(h, n) for h, n in sorted(costs.items()) if h in left and left[h] < n]
        if short:
            host, need = short[0]
            out[i] = Defer(
                action.entry,
                action,
                f"pull budget: needs {need} pulls at {host}, {max(left[host], 0)} left"
                + (f" (keeping {reserve} in reserve)" if reserve else ""),
            )
            continue
        for host, n in costs.items():
            if host in left:
                left[host] -= n
    return tuple(out)


# ---- planning --------------------------------------------------------------------------------


class _EntryPlanner:
    def __init__(
        self, entry: Entry, lock: LockEntry | None, observed: Observed, now: datetime
    ) -> None:
        self.entry = entry
        self.lock = lock
        self.source = observed.source(entry)
        self.target = observed.target(entry.target)
        self.now = now
        self.expired = entry.approval.expired(now)

    def _image(self, digest: Digest, tag: str | None) -> LockedImage | None:
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

    def expected(self, tag: str | None, want: Digest) -> Digest | None:
        """The digest the target must hold to mirror ``want`` (None: it could not be derived)."""
        if tag is None or self.entry.platforms is None:
            return want
        return self.target.subsets.get(want)

    def tag_action(self, tag: str | None, want: Digest) -> Action:
        e = self.entry
        t = self.target
        if tag is None:
            target_ref = e.target.with_digest(want)
            source_ref = e.source.with_digest(want)
            current: Digest | None = want if want in t.digests else None
            present = current is not None
            platforms = None
        else:
            target_ref = e.target.with_tag(tag)
            source_ref = e.source.with_tag(tag).with_digest(want)
            present = t.exists is not False and tag in t.tags
            current = t.tags.get(tag) if present else None
            platforms = e.platforms
        upstream = (
            self.source.tags.get(tag) if (self.source is not None and tag is not None) else None
        )
        drift = e.mode is Mode.PINNED and upstream is not None and upstream != want
        expected = self.expected(tag, want)
        if current is not None and current == expected:
            if drift:
                return Hold(
                    e.name,
                    target_ref,
                    f"upstream moved to {_short(upstream)}; the lock holds {_short(want)}, which the "
                    "target keeps: run `imagevet lock` and review the diff to take the new digest",
                    wanted=want,
                    current=current,
                    upstream=upstream,
                )
            return Noop(e.name, target_ref, current or want)
        if self.expired:
            expires = e.approval.expires.isoformat() if e.approval.expires else "?"
            return Hold(
                e.name,
                target_ref,
                f"approval expired on {expires} ({e.approval.approved_by}): {_short(want)} is not mirrored "
                "until the approval is renewed",
                wanted=want,
                current=current,
                upstream=upstream if upstream != want else None,
            )
        if present and current is None:
            return Hold(
                e.name,
                target_ref,
                "the target tag exists but its digest was not read, so no backup could be named: HEAD it first",
                wanted=want,
            )
        if current is not None and expected is None:
            why = t.unverified.get(want, "the source index was not read")
            return Hold(
                e.name,
                target_ref,
                f"the target holds {_short(current)}, which cannot be checked against the platform "
                f"subset of {_short(want)}: {why}",
                wanted=want,
                current=current,
            )
        notes: list[str] = []
        if drift:
            notes.append(
                f"upstream has since moved to {_short(upstream)}; the lock's digest is copied"
            )
        if platforms is not None and current is not None:
            notes.append(
                f"the target holds {_short(current)}, not {_short(expected)}: the platform subset "
                f"derived from the source index {_short(want)}"
            )
        elif platforms is not None:
            notes.append(
                f"platform subset: the target index digest will differ from the source's {_short(want)}"
            )
        elif tag is None and e.platforms is not None:
            notes.append("an explicit digest is copied whole (all platforms)")
        pulls = estimate_pulls(self._image(want, tag), platforms, e.referrers)
        if current is None:
            return Copy(
                e.name,
                source_ref,
                target_ref,
                want,
                platforms,
                e.referrers,
                pulls,
                "; ".join(notes),
            )
        assert tag is not None
        backup_tag = e.backup_tag_for(tag, current, self.now)
        try:
            backup = e.target.with_tag(backup_tag)
        except InvalidReferenceError:
            return Hold(
                e.name,
                target_ref,
                f"the backup tag {backup_tag!r} from backup_tag {e.backup_tag!r} is not a valid tag",
                wanted=want,
                current=current,
            )
        return Update(
            e.name,
            source_ref,
            target_ref,
            want,
            current,
            backup,
            platforms,
            e.referrers,
            pulls,
            "; ".join(notes),
        )

    def plan(self) -> list[Action]:
        e = self.entry
        if self.target.error:
            return []  # the target could not be observed: its entry is reported as a problem
        desired, holds = self.desired()
        tag_actions: list[tuple[tuple[int, str], Action]] = [
            ((0, tag), self.tag_action(tag, digest)) for tag, digest in sorted(desired.items())
        ]
        tag_actions += [((0, a.target.tag or ""), a) for a in holds]
        tag_actions += [((1, str(d)), self.tag_action(None, d)) for d in e.tags.digests]
        actions = [a for _, a in sorted(tag_actions, key=lambda x: x[0])]
        if self.target.listed and self.target.exists is not False:
            keep = set(desired) | {a.target.tag for a in holds if a.target.tag}
            backups = backup_tag_pattern(e.backup_tag)
            for tag, digest in sorted(self.target.tags.items()):
                if tag in keep or backups.fullmatch(tag) or is_digest_tag(tag):
                    continue
                actions.append(Prune(e.name, e.target.with_tag(tag), digest))
        changes = tuple(self.target.changes)
        pushes = any(isinstance(a, (Copy, Update)) for a in actions)
        if any(c.kind is RepoChangeKind.CREATE for c in changes):
            if pushes:
                actions.insert(0, CreateRepo(e.name, e.target, e.repo_spec(), changes))
        elif changes:
            actions.insert(0, UpdateRepo(e.name, e.target, e.repo_spec(), changes))
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
) -> Plan:
    """Plan a sync: every entry of ``policy``, against ``lock`` and what was ``observed``.

    ``lock`` is the committed lock (the approved digests); ``observed.sources`` is upstream now
    (only needed for ``follow`` entries and to report moves under ``pinned``);
    ``observed.remaining`` turns copies beyond the pull budget into Defer actions.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    actions: list[Action] = []
    for entry in policy.entries:
        actions.extend(_EntryPlanner(entry, lock.entry(entry.key), observed, now).plan())
    if observed.remaining:
        actions = list(apply_budget(actions, observed.remaining, reserve=budget_reserve))
    return Plan(tuple(actions), now, (*observed.warnings, *_warnings(policy, now)))
