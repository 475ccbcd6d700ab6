"""The catalog's model: what the policy vets, what the lock pinned, what the last run did.

:func:`build_report` reads only local things (the policy, the lock, the state store: the run
summary, held updates and the verified source-index cache), never a registry, and returns frozen
values the HTML and markdown renderers turn into text.  Every value from a file is kept as it
was read (the renderers escape it); every file is treated as hostile: a run summary that is not
what ``sync`` writes is skipped field by field, a damaged lock entry becomes that image's
``damaged`` list, and a state store that cannot be read is a report-level problem.  Nothing here
raises for bad input.

Tags are listed newest first as the policy orders versions (:class:`TagVersion`): version tags
by their numbers, descending, a release before its prereleases; then the tags that are not
versions (``latest``, ``bookworm``) by name; then the explicit digests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from imagevet.digest import Digest
from imagevet.engine.state import HeldUpdate, StateStore
from imagevet.errors import ImagevetError
from imagevet.lock import Lock, LockedImage, TagApproval
from imagevet.manifest import RawManifest, subset_index
from imagevet.manifest_cache import ManifestCache
from imagevet.plan import EXPIRY_WARNING_DAYS
from imagevet.policy import Entry, Policy, TagVersion

__all__ = [
    "ApprovalView",
    "Evidence",
    "EvidenceSource",
    "HeldView",
    "ImageView",
    "Report",
    "RunView",
    "SyncView",
    "TagView",
    "build_report",
    "newest_first",
    "page_names",
]

ApprovalStatus = Literal["valid", "expiring", "expired"]
SyncResult = Literal["ok", "failed", "held", "not-synced"]

_MAX_SUMMARY_ACTIONS = 100_000
"""Actions of a run summary looked at (the file itself is capped by the state store)."""
_MAX_MESSAGE = 2000
"""Characters kept of a message read from the run summary."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence recorded for a digest (a verified signature, an SBOM, an
    attestation, scan counts): its kind and a one-line description, and the digest of the
    artifact when it has one.  The lock does not record these yet; a caller passes them to
    :func:`build_report` through ``evidence``."""

    kind: str
    detail: str
    digest: str | None = None


EvidenceSource = Callable[[Digest], Sequence[Evidence]]
"""The evidence recorded for a locked digest (empty when none)."""


@dataclass(frozen=True, slots=True)
class HeldView:
    """An update waiting for a person: ``tag`` now points at ``digest`` upstream."""

    tag: str
    digest: str | None
    reason: str
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class TagView:
    """One locked tag (or explicit digest) of an image."""

    tag: str | None
    """None for an explicit digest of the policy."""
    digest: Digest
    """The vetted digest upstream (from the lock)."""
    mirror_digest: Digest | None
    """What the mirror holds: ``digest``, or for a platform subset the digest of the index
    derived from the cached source index; None when that index is not cached."""
    media_type: str
    platforms: tuple[str, ...]
    manifests: tuple[tuple[str, Digest], ...]
    referrers: tuple[Digest, ...]
    resolved_at: datetime
    evidence: tuple[Evidence, ...] = ()
    approved: TagApproval | None = None
    """Who moved the tag to this digest with ``imagevet approve``, why and when (the lock's
    record); None when the tag was locked as first resolved."""


@dataclass(frozen=True, slots=True)
class ApprovalView:
    approved_by: str
    reason: str | None
    ticket: str | None
    approved_on: date | None
    expires: date | None
    status: ApprovalStatus
    days_left: int | None
    """Days until ``expires`` (0: expires today; negative: expired), None without an expiry."""


@dataclass(frozen=True, slots=True)
class SyncView:
    """What the last run did for one image."""

    at: datetime | None
    result: SyncResult
    counts: tuple[tuple[str, int], ...] = ()
    """Action kind (or ``failed``/``skipped``) -> how many, sorted by kind."""
    messages: tuple[str, ...] = ()
    """Why it failed (action and entry problems of the run)."""


@dataclass(frozen=True, slots=True)
class RunView:
    """The last run as a whole."""

    at: datetime | None
    ok: bool
    counts: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ImageView:
    """One vetted image (a policy entry) and everything the catalog shows about it."""

    name: str
    page: str
    """Its page's file name in the HTML site (``<slug>.html``, see :func:`page_names`)."""
    upstream: str
    mirror: str
    """The mirror repository (``registry/namespace/name``, or ``oci:DIR`` for a layout)."""
    pullable: bool
    """Whether ``docker pull`` can fetch the mirror (a registry, not a layout directory)."""
    mode: str
    platforms: tuple[str, ...] | None
    """The policy's platform subset; None: every platform of the source."""
    referrers: bool
    """Whether signatures, SBOMs and attestations are copied along."""
    description: str
    approval: ApprovalView
    tags: tuple[TagView, ...]
    held: tuple[HeldView, ...]
    last_sync: SyncView
    damaged: tuple[str, ...] = ()
    """Why the lock records of this image cannot be read (empty when they can)."""
    locked: bool = True
    """Whether the lock holds a record of this image at all."""

    def pull_ref(self, tag: TagView, *, by_digest: bool) -> str | None:
        """``mirror:tag`` or ``mirror@digest`` (None: no tag, or the mirror digest unknown)."""
        if by_digest:
            return f"{self.mirror}@{tag.mirror_digest}" if tag.mirror_digest is not None else None
        return f"{self.mirror}:{tag.tag}" if tag.tag is not None else None


@dataclass(frozen=True, slots=True)
class Report:
    """The whole catalog."""

    generated_at: datetime
    policy_name: str
    target: str
    images: tuple[ImageView, ...]
    last_run: RunView | None
    problems: tuple[str, ...] = field(default=())
    """What could not be read (the state store, lock entries of no policy entry)."""


# ---- names --------------------------------------------------------------------------------------

_SLUG_RE = re.compile(r"[^a-z0-9]+")
_SLUG_MAX = 60
_RESERVED = frozenset({"index"})
PAGE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,79}\.html")
"""Every page name :func:`page_names` gives (and the only names the site writer removes)."""


def page_names(names: Sequence[str]) -> list[str]:
    """A page file name for each entry name: lowercase letters, digits and ``-`` only (never a
    ``/``, ``..`` or a hidden name), at most 60 characters before ``.html``; ``index`` and names
    already given get ``-2``, ``-3``... in order."""
    used = set(_RESERVED)
    out: list[str] = []
    for name in names:
        base = _SLUG_RE.sub("-", name.lower()).strip("-")[:_SLUG_MAX].strip("-") or "image"
        slug, n = base, 1
        while slug in used:
            n += 1
            slug = f"{base}-{n}"
        used.add(slug)
        out.append(f"{slug}.html")
    return out


# ---- ordering -----------------------------------------------------------------------------------


def _version_key(v: TagVersion) -> tuple[tuple[int, ...], int, int, tuple[int, ...], int]:
    pre = v.prerelease
    return (v.padded, 1 if pre is None else 0, pre[0] if pre else 0, pre[1] if pre else (),
            1 if not v.variant else 0)


def newest_first(tags: Iterable[str]) -> list[str]:
    """``tags`` newest first: versions by number, descending (a release before its prereleases,
    a plain tag before its variants), then the other tags by name."""
    ordered = sorted(set(tags))
    versions = [(t, v) for t in ordered if (v := TagVersion.parse(t)) is not None]
    others = [t for t in ordered if TagVersion.parse(t) is None]
    versions.sort(key=lambda tv: _version_key(tv[1]), reverse=True)  # stable: ties by name
    return [t for t, _ in versions] + others


# ---- building -----------------------------------------------------------------------------------


def _approval(entry: Entry, now: datetime) -> ApprovalView:
    a = entry.approval
    today = now.astimezone(UTC).date()
    days = (a.expires - today).days if a.expires is not None else None
    status: ApprovalStatus = "valid"
    if a.expired(now):
        status = "expired"
    elif days is not None and days <= EXPIRY_WARNING_DAYS:
        status = "expiring"
    return ApprovalView(a.approved_by, a.reason, a.ticket, a.approved_on, a.expires, status, days)


def _mirror_digest(entry: Entry, image: LockedImage, cache: ManifestCache | None) -> Digest | None:
    if entry.platforms is None:
        return image.digest
    if cache is None or not image.is_index:
        return None
    raw: RawManifest | None = cache.get(image.digest)
    if raw is None:
        return None
    try:
        return subset_index(raw, entry.platforms).digest
    except (ImagevetError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _tags(
    entry: Entry, tags: Mapping[str, LockedImage], digests: Mapping[Digest, LockedImage],
    cache: ManifestCache | None, evidence: EvidenceSource | None,
) -> tuple[TagView, ...]:
    def view(tag: str | None, image: LockedImage) -> TagView:
        return TagView(
            tag, image.digest, _mirror_digest(entry, image, cache), image.media_type,
            image.platforms, image.manifests, image.referrers, image.resolved_at,
            tuple(evidence(image.digest)) if evidence is not None else (), image.approval,
        )

    out = [view(t, tags[t]) for t in newest_first(tags)]
    out.extend(view(None, digests[d]) for d in sorted(digests, key=str))
    return tuple(out)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return value[:_MAX_MESSAGE] if isinstance(value, str) else None


@dataclass(slots=True)
class _Tally:
    counts: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    failed: bool = False
    held: list[HeldView] = field(default_factory=list)


def _read_summary(summary: Mapping[str, Any] | None) -> tuple[RunView | None, dict[str, _Tally]]:
    """The run as a whole and a tally per entry name, from whatever of the summary is valid."""
    if summary is None:
        return None, {}
    at = _time(summary.get("now"))
    counts = summary.get("counts")
    run_counts = tuple(sorted(
        (k, v) for k, v in (counts.items() if isinstance(counts, dict) else ())
        if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
    ))
    run = RunView(at, summary.get("ok") is True, run_counts)
    tallies: dict[str, _Tally] = {}
    actions = summary.get("actions")
    for action in (actions if isinstance(actions, list) else [])[:_MAX_SUMMARY_ACTIONS]:
        if not isinstance(action, dict) or not isinstance(action.get("entry"), str):
            continue
        tally = tallies.setdefault(action["entry"], _Tally())
        kind, status = _str(action.get("kind")) or "?", _str(action.get("status")) or "?"
        key = kind if status in ("done", "reported") else status
        tally.counts[key] = tally.counts.get(key, 0) + 1
        if status == "failed":
            tally.failed = True
            message = _str(action.get("message"))
            what = _str(action.get("tag")) or _str(action.get("target")) or kind
            tally.messages.append(f"{what}: {message}" if message else what)
        if kind == "hold":
            tag = _str(action.get("tag"))
            if tag is not None:
                tally.held.append(HeldView(
                    tag, _str(action.get("upstream")) or _str(action.get("wanted")),
                    _str(action.get("reason")) or "held", None,
                ))
    problems = summary.get("problems")
    for problem in (problems if isinstance(problems, list) else [])[:_MAX_SUMMARY_ACTIONS]:
        if isinstance(problem, dict) and isinstance(problem.get("entry"), str):
            tally = tallies.setdefault(problem["entry"], _Tally())
            tally.failed = True
            tally.messages.append(_str(problem.get("message")) or "failed")
    return run, tallies


def _sync_view(run: RunView | None, tally: _Tally | None) -> SyncView:
    if run is None or tally is None:
        return SyncView(run.at if run else None, "not-synced")
    result: SyncResult = "failed" if tally.failed else "held" if tally.held else "ok"
    return SyncView(run.at, result, tuple(sorted(tally.counts.items())), tuple(tally.messages))


def _held(stored: Sequence[HeldUpdate], from_run: Sequence[HeldView]) -> tuple[HeldView, ...]:
    """The held updates of the state store, and the holds of the last run they do not cover."""
    out = {h.tag: HeldView(h.tag, h.digest, h.reason, h.since) for h in stored}
    for h in from_run:
        out.setdefault(h.tag, h)
    return tuple(out[t] for t in newest_first(out))


def build_report(
    policy: Policy,
    lock: Lock,
    state: StateStore | None,
    *,
    now: datetime,
    evidence: EvidenceSource | None = None,
) -> Report:
    """The catalog of ``policy`` (every entry, in policy order) as of ``now``; see the module
    docstring.  ``state`` None: no run state (no last sync, no held updates)."""
    problems: list[str] = []
    summary: dict[str, Any] | None = None
    stored: list[HeldUpdate] = []
    cache: ManifestCache | None = None
    if state is not None:
        try:
            summary = state.read_run_summary()
        except ImagevetError as e:
            problems.append(f"the last run summary cannot be read: {e}")
        try:
            stored = state.held()
        except ImagevetError as e:
            problems.append(f"the held updates cannot be read: {e}")
        cache = state.manifests
    run, tallies = _read_summary(summary)
    held_by_entry: dict[str, list[HeldUpdate]] = {}
    for h in stored:
        held_by_entry.setdefault(h.entry, []).append(h)

    pages = page_names([e.name for e in policy.entries])
    images: list[ImageView] = []
    for entry, page in zip(policy.entries, pages, strict=True):
        locked = lock.entry(entry.key)
        damaged = tuple(str(p) for p in lock.problems(entry.key))
        tally = tallies.get(entry.name)
        tags = _tags(entry, locked.tags, locked.digests, cache, evidence) if locked else ()
        images.append(ImageView(
            name=entry.name,
            page=page,
            upstream=entry.source.name,
            mirror=entry.target.name,
            pullable=not entry.target.is_layout,
            mode=str(entry.mode),
            platforms=tuple(str(p) for p in entry.platforms) if entry.platforms is not None else None,
            referrers=entry.referrers,
            description=entry.description,
            approval=_approval(entry, now),
            tags=tags,
            held=_held(held_by_entry.get(entry.name, ()), tally.held if tally else ()),
            last_sync=_sync_view(run, tally),
            damaged=damaged,
            locked=locked is not None or bool(damaged),
        ))
    for bad in lock.unreadable:
        if bad.key is None:
            problems.append("a lock entry of no readable source -> target: "
                            + "; ".join(str(e) for e in bad.errors))
    names = {e.name for e in policy.entries}
    for h in stored:
        if h.entry not in names:
            problems.append(f"a held update of {h.entry!r}, which the policy no longer lists")
    target = policy.target
    where = f"oci:{target.layout}/{target.namespace}" if target.layout is not None else (
        f"{target.registry}/{target.namespace}")
    return Report(
        generated_at=now.astimezone(UTC).replace(microsecond=0),
        policy_name=policy.path.name,
        target=where,
        images=tuple(images),
        last_run=run,
        problems=tuple(problems),
    )

