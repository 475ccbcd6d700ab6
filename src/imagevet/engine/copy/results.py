"""What a copy did (:class:`CopyResult`) and what shared work found (:class:`Facts`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from imagevet.digest import Digest
from imagevet.errors import NotFoundError
from imagevet.manifest import RawManifest
from imagevet.reference import Reference

__all__ = ["CopyResult", "Counters", "Facts", "TagFacts"]


@dataclass
class CopyResult:
    """What one :func:`~imagevet.engine.copy.copy_image` call did."""

    source: Reference
    target: Reference
    digest: Digest
    """The digest the target now holds (differs from ``source_digest`` only for a platform subset)."""
    source_digest: Digest
    media_type: str = ""
    noop: bool = False
    """The target already held the image: only HEAD requests were made."""
    manifests_pushed: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_copied: int = 0
    platforms: list[str] = field(default_factory=list)
    """Platforms the target now holds (attestation entries left out)."""
    source_platforms: list[str] = field(default_factory=list)
    """Platforms of the source image (differs from ``platforms`` for a subset)."""
    source_manifests: dict[str, Digest] = field(default_factory=dict)
    """The source index's platform manifests, platform -> digest (as the lock records them)."""
    attachments: list[str] = field(default_factory=list)
    """Referrer digests and digest tags copied with the image."""
    digest_tags: list[str] = field(default_factory=list)
    """Digest tags of the image's manifests that the target holds as the source does after this
    copy (copied now or already there): ``copy --all-tags`` copies no other way what is here."""
    index_rewritten: bool = False
    sparse: list[str] = field(default_factory=list)
    """Children an index lists that the source does not hold (copied as sparse as it is)."""
    seconds: float = 0.0
    source_index: RawManifest | None = field(default=None, repr=False, compare=False)
    """The source index a platform subset was made from (sync keeps it to check the mirror)."""

    def to_json(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "target": str(self.target),
            "source_digest": str(self.source_digest),
            "digest": str(self.digest),
            "media_type": self.media_type,
            "noop": self.noop,
            "manifests_pushed": self.manifests_pushed,
            "blobs_copied": self.blobs_copied,
            "blobs_mounted": self.blobs_mounted,
            "blobs_skipped": self.blobs_skipped,
            "bytes_copied": self.bytes_copied,
            "platforms": self.platforms,
            "source_platforms": self.source_platforms,
            "attachments": self.attachments,
            "index_rewritten": self.index_rewritten,
            "sparse": self.sparse,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Counters:
    """Work done, counted by the image that did it."""

    manifests_pushed: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_copied: int = 0

    def add(self, other: Counters) -> None:
        self.manifests_pushed += other.manifests_pushed
        self.blobs_copied += other.blobs_copied
        self.blobs_mounted += other.blobs_mounted
        self.blobs_skipped += other.blobs_skipped
        self.bytes_copied += other.bytes_copied

    def fill(self, result: CopyResult) -> None:
        result.manifests_pushed = self.manifests_pushed
        result.blobs_copied = self.blobs_copied
        result.blobs_mounted = self.blobs_mounted
        result.blobs_skipped = self.blobs_skipped
        result.bytes_copied = self.bytes_copied


@dataclass(frozen=True, slots=True)
class Facts:
    """What the shared work on one manifest found below it.

    The same for every image that meets the manifest, whatever order they run in: each image
    applies its own rules to these facts (whether a child may be absent, how many manifests it
    may list), never the first image's rules to the work.
    """

    below: frozenset[Digest] = frozenset()
    """Every manifest listed by the indexes below (present at the source or not)."""
    height: int = 0
    """Index levels walked from it down (0: an image manifest, or not walked)."""
    sparse: tuple[tuple[Digest, NotFoundError], ...] = ()
    """Its own children the source does not hold (only an image's top index may be sparse)."""
    absent: NotFoundError | None = None
    """The source does not hold the manifest itself."""
    counters: Counters = field(default_factory=Counters)
    """The work done, counted by the image that started it."""


@dataclass(frozen=True, slots=True)
class TagFacts:
    """What the shared work on one digest tag found."""

    how: str
    """``"copy"`` (its manifest is at the target by digest now; the tag is to PUT), ``"present"``
    (the target's tag names the source's manifest already) or ``"absent"`` (the source has the
    tag no more)."""
    manifest: RawManifest | None = None
    facts: Facts | None = None
    counters: Counters = field(default_factory=Counters)
