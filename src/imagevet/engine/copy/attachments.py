"""What travels with an image: OCI referrers (signatures, SBOMs, attestations) and the
cosign-style digest tags (``sha256-<hex>.sig``/``.att``/``.sbom``, and the referrers fallback
tag ``sha256-<hex>``), of every manifest, attachments of attachments included.

Each image walks its own attachments, each subject once; the shared work it awaits (one tag,
one manifest, one PUT) never awaits a walk, so a tag naming its own subject, or two tags naming
each other, end like any other.  Attachments go after their subject, each tag last.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from imagevet.digest import Digest
from imagevet.engine.copy import graph
from imagevet.engine.copy.fanout import each
from imagevet.engine.copy.results import TagFacts
from imagevet.errors import NotFoundError
from imagevet.manifest import Descriptor, RawManifest

if TYPE_CHECKING:
    from imagevet.engine.copy.image import ImageCopy

__all__ = [
    "DIGEST_TAG_SUFFIXES",
    "MAX_ATTACHMENT_DEPTH",
    "copy_attachments",
    "sync_digest_tags_cheaply",
    "sync_native_referrers",
]

DIGEST_TAG_SUFFIXES = ("", ".sig", ".att", ".sbom")
"""Tags attached to a manifest digest: the referrers fallback index and cosign's three kinds."""

MAX_ATTACHMENT_DEPTH = 3
"""How deep attachments of attachments are followed (a signature of an SBOM of an image...)."""

_TagPut = tuple[str, RawManifest]


async def copy_attachments(
    job: ImageCopy, first: set[Digest], *, level: int, native_first: bool = True
) -> None:
    """Referrers and digest tags of every manifest in ``first``, then of the manifests they
    brought, and so on, at most :data:`MAX_ATTACHMENT_DEPTH` levels down.

    This image's own flat walk, each subject once.  Each tag is PUT last, after the attachments
    of the manifest it names, deepest first (a walk that fails leaves that tag for the next run).
    ``native_first``: ask the referrers API for the first level too (the no-op path asks it
    on its own).
    """
    tags = await job.session.source_tags(job.source)
    visited: set[Digest] = set()
    frontier = first
    pending: list[list[_TagPut]] = []
    native = native_first
    while frontier and level < MAX_ATTACHMENT_DEPTH:
        visited |= frontier
        found, puts = await _level(job, frontier, tags, native=native)
        pending.append(puts)
        frontier = found - visited
        level += 1
        native = True
    for puts in reversed(pending):
        await each(
            sorted(puts, key=lambda p: p[0]),
            lambda p: job.put(job.target.repo().with_tag(p[0]), p[1]),
        )


async def _level(
    job: ImageCopy, subjects: set[Digest], tags: frozenset[str], *, native: bool
) -> tuple[set[Digest], list[_TagPut]]:
    """One level of the walk: the manifests brought, and the digest tags to PUT."""
    found: set[Digest] = set()
    puts: list[_TagPut] = []

    async def visit(subject: Digest) -> None:
        found.update(await _attachments_of(job, subject, tags, puts, native=native))

    await each(sorted(subjects, key=str), visit)
    return found, puts


async def _attachments_of(
    job: ImageCopy, subject: Digest, tags: frozenset[str], puts: list[_TagPut], *, native: bool
) -> set[Digest]:
    """Copy what is attached to ``subject``; returns the manifests brought (to walk next) and
    adds the digest tags to PUT to ``puts``."""
    found = await _digest_tags_of(job, subject, tags, puts)
    # referrers through the OCI 1.1 API (the client falls back to the tag schema itself;
    # manifests already copied above are deduplicated by the session)
    if not native or subject.tag() in tags:
        return found  # the fallback index was copied byte for byte as a tag: it lists them all
    # the tag list shows there is no fallback tag: ask the API only (no manifest GET)
    referrers = await job.source_referrers(subject)
    if referrers:
        await _copy_referrers(job, subject, referrers, referrers)
    return found


async def _digest_tags_of(
    job: ImageCopy, subject: Digest, tags: frozenset[str], puts: list[_TagPut]
) -> set[Digest]:
    """The digest tags of ``subject`` present at the source (cosign .sig/.att/.sbom, the
    referrers fallback index): their manifests at the target, the tags added to ``puts``."""
    found: set[Digest] = set()
    for suffix in DIGEST_TAG_SUFFIXES:
        tag = subject.tag(suffix)
        if tag is None or tag not in tags:
            continue
        got, mine = await _attachment_tag(job, tag)
        if got.how == "absent":
            continue
        job.digest_tags.append(tag)
        if got.manifest is None or got.facts is None:
            continue  # present at the target already
        job.take(got.facts, False, sparse_ok=False)
        if mine:
            job.counters.add(got.counters)
        job.attachments.append(tag)
        found |= {got.manifest.digest} | {d.digest for d in got.manifest.children()}
        found |= got.facts.below
        puts.append((tag, got.manifest))
    return found


async def _copy_referrers(
    job: ImageCopy, subject: Digest, copy: Sequence[Descriptor], listed: Sequence[Descriptor]
) -> None:
    """Copy the referrers ``copy`` of ``subject`` and make the target list ``listed``."""
    for desc in copy:
        facts, mine = await graph.ensure_manifest(job, desc.digest, graph.MAX_INDEX_DEPTH)
        job.take(facts, mine, sparse_ok=False)
        job.attachments.append(str(desc.digest))
    await _ensure_target_lists_referrers(job, subject, listed)


async def _attachment_tag(job: ImageCopy, tag: str) -> tuple[TagFacts, bool]:
    """One digest tag's shared work: once per session and target repository."""
    worker = job.worker()
    return await job.session.shared(
        job.session.attachment_tags, (job.target.name, tag), lambda: _attachment_tag_now(worker, tag)
    )


async def _attachment_tag_now(job: ImageCopy, tag: str) -> TagFacts:
    """The shared work on one digest tag: its manifest at the target by digest (the image
    that walks to it PUTs the tag itself, after what is attached to that manifest)."""
    head = await job.head_source(job.source.repo().with_tag(tag))
    if head is None:
        return TagFacts("absent")
    have = await job.head_target(job.target.repo().with_tag(tag), gate=head.digest)
    if have is not None and have.digest == head.digest:
        return TagFacts("present")
    manifest = await job.get_source(job.source.repo().with_digest(head.digest))
    facts, mine = await graph.ensure_manifest(job, head.digest, graph.MAX_INDEX_DEPTH, manifest)
    if mine:
        job.counters.add(facts.counters)
    return TagFacts("copy", manifest, facts, job.counters)


async def _ensure_target_lists_referrers(
    job: ImageCopy, subject: Digest, referrers: Sequence[Descriptor]
) -> None:
    """Where the target has no referrers API, maintain its ``sha256-<hex>`` fallback index.

    Once per session for a subject and a set of referrers (a read-modify-write of one tag).
    """
    key = (job.target.name, subject, frozenset(d.digest for d in referrers))
    await job.session.shared(
        job.session.referrer_lists, key, lambda: _ensure_target_lists_now(job, subject, referrers)
    )


async def _ensure_target_lists_now(
    job: ImageCopy, subject: Digest, referrers: Sequence[Descriptor]
) -> None:
    listed = {d.digest for d in await job.target_referrers(subject)}
    missing = [d for d in referrers if d.digest not in listed]
    if not missing:
        return
    tag_ref = job.target.repo().with_tag(subject.tag())
    existing: list[dict[str, object]] = []
    try:
        current = await job.get_target(tag_ref)
        existing = list(current.json.get("manifests") or [])
    except NotFoundError:
        pass
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": existing + [d.to_json() for d in missing],
    }
    data = json.dumps(index, separators=(",", ":")).encode()
    await job.put(tag_ref, RawManifest.from_bytes(data))


async def sync_native_referrers(job: ImageCopy, subject: Digest) -> None:
    """No-op path: referrers attached upstream (OCI 1.1 API) since the image was mirrored.

    One ``/referrers`` request at the source (not a manifest GET, so no Docker Hub pull; on a
    registry without the API the answer is cached per registry), and only when something is
    listed, the target's list.
    """
    found = await job.source_referrers(subject)
    if not found:
        return
    have = {d.digest for d in await job.target_referrers(subject)}
    missing = [d for d in found if d.digest not in have]
    if not missing:
        return
    await _copy_referrers(job, subject, missing, found)


async def sync_digest_tags_cheaply(job: ImageCopy, subject: Digest) -> None:
    """No-op path: bring digest tags of the top manifest up to date using HEADs only (a tag
    moved upstream is copied with what is attached to it, two levels down)."""
    await copy_attachments(job, {subject}, level=1, native_first=False)
