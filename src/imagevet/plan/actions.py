"""The actions of a plan, each with its one-line description and its JSON (``plan --json``).

Per tag: already there -> :class:`Noop`; not at the target -> :class:`Copy`; at another digest
-> :class:`Update` (the digest it replaces keeps a backup tag); not pushed, and why ->
:class:`Hold`; a target tag nothing selects -> :class:`Prune` candidate; beyond the pull budget
-> :class:`Defer`.  Per repository: :class:`CreateRepo` or :class:`UpdateRepo`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from imagevet.digest import Digest
from imagevet.manifest import Platform
from imagevet.reference import Reference
from imagevet.repository_spec import RepoChange, RepoSpec

__all__ = [
    "Action",
    "ActionKind",
    "Copy",
    "CreateRepo",
    "Defer",
    "Hold",
    "Noop",
    "Plan",
    "Prune",
    "Update",
    "UpdateRepo",
    "short_digest",
]


class ActionKind(enum.StrEnum):
    CREATE_REPO = "create-repo"
    UPDATE_REPO = "update-repo"
    COPY = "copy"
    UPDATE = "update"
    HOLD = "hold"
    PRUNE = "prune"
    NOOP = "noop"
    DEFER = "defer"



def short_digest(digest: Digest | None) -> str:
    return f"{digest.algorithm}:{digest.hex[:12]}" if digest is not None else "-"


def _s(digest: Digest | None) -> str | None:
    return str(digest) if digest is not None else None


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
        return _repo_json(self)


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
        return _repo_json(self)


def _repo_json(action: CreateRepo | UpdateRepo) -> dict[str, Any]:
    """The JSON both repository actions share."""
    return {
        "kind": str(action.kind),
        "entry": action.entry,
        "target": action.target.name,
        "spec": _spec_json(action.spec),
        "changes": [
            {"kind": str(c.kind), "detail": c.detail, "team": c.team} for c in action.changes
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
            f"update {self.target.familiar}: {short_digest(self.old_digest)} -> {short_digest(self.digest)}, "
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
        return f"up to date {self.target.familiar} ({short_digest(self.digest)})"

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
