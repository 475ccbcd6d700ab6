"""Where images live: one protocol (:mod:`.protocol`) over registries and OCI image layouts.

The copy engine, the observer and the sync run speak only :class:`ImageStore`; the registry
client (:mod:`imagevet.registry`), :class:`LayoutStore` (``oci:`` directories, :mod:`.layout`)
and :class:`ArchiveStore` (``oci-archive:`` tar files, :mod:`.archive`) implement it, and
:class:`StoreRouter` (:mod:`.router`) is one store over all of them, dispatching by scheme.
"""

from __future__ import annotations

from imagevet.store.archive import ArchiveStore
from imagevet.store.layout import LayoutStore
from imagevet.store.protocol import (
    BlobMounter,
    BlobReader,
    CountsRequests,
    ImageStore,
    ManifestHead,
    RateLimited,
)
from imagevet.store.router import StoreRouter

__all__ = [
    "ArchiveStore",
    "BlobMounter",
    "BlobReader",
    "CountsRequests",
    "ImageStore",
    "LayoutStore",
    "ManifestHead",
    "RateLimited",
    "StoreRouter",
]
