"""What the operation layer observed, as the planner reads it: per entry its source's selected
tags, per target repository its tags, and the pull budgets left.

With a platform subset the mirror holds a rewritten index.  What it must hold is derived again
from the source index's bytes (:func:`imagevet.manifest.subset_index`; the operation layer
passes it as :attr:`TargetState.subsets`), never taken from a record of an earlier run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from imagevet.digest import Digest
from imagevet.errors import ImagevetError
from imagevet.lock import LockedImage, LockEntry, Verified
from imagevet.policy.model import Entry
from imagevet.reference import Reference
from imagevet.repository_spec import RepoChange

__all__ = ["EntryProblem", "Observed", "SourceState", "TargetState"]


@dataclass(frozen=True, slots=True)
class EntryProblem:
    """A policy entry that could not be resolved, observed or read from the lock: ``source`` is
    the reference concerned (its source, its target, or the lock); the entry's old lock records
    are kept and the other entries go on.

    ``cause`` is the typed error behind ``message`` when there is one (a
    :class:`~imagevet.errors.NotFoundError`, :class:`~imagevet.errors.UnauthorizedError`,
    :class:`~imagevet.errors.RateLimitedError`, ...), so a caller can tell them apart; it is
    not part of the problem's value (equality, JSON): ``message`` says it for people.
    """

    entry: str
    source: str
    message: str
    cause: ImagevetError | None = field(default=None, compare=False, repr=False)


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
    verdicts: Mapping[str, Mapping[Digest, Verified | str]] = field(default_factory=dict)
    """For entries with a ``verify:`` rule, by entry name: per digest it would mirror, the
    signature that verified it, or why it may not be mirrored (the planner holds it)."""

    def source(self, entry: Entry) -> SourceState | None:
        return self.sources.get(entry.name)

    def verdict(self, entry: Entry, digest: Digest) -> Verified | str:
        """The signature of ``digest`` under ``entry``'s rule, or why it is not verified."""
        return self.verdicts.get(entry.name, {}).get(
            digest, "not verified: its signature was not checked (run `imagevet lock`)"
        )

    def target(self, repo: Reference) -> TargetState:
        return self.targets.get(repo.repo(), TargetState())
