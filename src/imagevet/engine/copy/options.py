"""How a copy behaves (:class:`CopyOptions`) and who watches it (:class:`CopyProgress`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from imagevet.digest import Digest
from imagevet.manifest import Platform

__all__ = ["DEFAULT_JOBS", "MAX_MANIFESTS", "CopyOptions", "CopyProgress"]

DEFAULT_JOBS = 8
"""Concurrent blob transfers per session (skopeo: 6 layers per image, images one at a time)."""

MAX_MANIFESTS = 10_000
"""Default for :attr:`CopyOptions.max_manifests`: manifests one image may list through its indexes."""


class CopyProgress(Protocol):
    """Receives progress events; the CLI renders them, tests may count them."""

    def blob_started(self, digest: Digest, size: int) -> None: ...
    def blob_advanced(self, digest: Digest, nbytes: int) -> None: ...
    def blob_finished(self, digest: Digest, how: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """How a copy behaves; every field has the default a careful user wants."""

    jobs: int = DEFAULT_JOBS
    """Blob transfers at once, across every image of the session."""
    referrers: bool = True
    """Copy OCI referrers and cosign digest tags of every manifest."""
    platforms: tuple[Platform, ...] | None = None
    """Copy only these platforms of an index; the target index is rewritten (new digest)."""
    force: bool = False
    """Copy even when the target tag already holds the source digest."""
    max_manifests: int = MAX_MANIFESTS
    """Manifests one image may list through its indexes; more fails the image before fan-out.
    (Work shared by the images of a session is bounded by the session's value.)"""
