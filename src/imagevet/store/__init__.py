"""Where images live: one protocol (:mod:`.protocol`) over registries and OCI image layouts.

The copy engine, the observer and the sync run speak only :class:`ImageStore`; the registry
client (:mod:`imagevet.registry`) and the OCI layout stores implement it.
"""

from __future__ import annotations

from imagevet.store.protocol import (
    BlobMounter,
    BlobReader,
    ImageStore,
    ManifestHead,
    RateLimited,
)

__all__ = ["BlobMounter", "BlobReader", "ImageStore", "ManifestHead", "RateLimited"]
