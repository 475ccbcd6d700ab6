"""A content-addressed cache of manifest bytes in the state directory: ``manifests/<alg>/<hex>``.

Why it exists: a platform-subset mirror is checked by deriving its index again from the source
index's bytes (:func:`imagevet.manifest.subset_index`) and comparing with what the target holds.
Keeping those source bytes here lets a no-op re-run do that without a manifest GET (a Docker Hub
pull).  ``sync`` fills it when it copies; a miss costs one GET of the source index, then cached.

Nothing read from here is believed: an entry is used only when its bytes hash to the digest that
names it.  A symlink (at any level below the state directory), a special file, a file over the
size cap, or bytes that do not match are a miss, so a tampered cache costs one GET, never a wrong
answer.  Writes go to a temporary file renamed into place (a reader never sees half an entry)
and never follow a symlink.  A cache that cannot be written is logged and otherwise ignored.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from imagevet.digest import Digest
from imagevet.manifest import RawManifest
from imagevet.statefiles import StateFileError, read_state_file, write_state_file

__all__ = ["CACHE_DIR", "MAX_CACHED_MANIFEST", "ManifestCache"]

log = logging.getLogger(__name__)

CACHE_DIR = "manifests"
"""The cache's directory inside the state directory."""
MAX_CACHED_MANIFEST = 4 << 20
"""Largest manifest kept or read back (the registry client's own manifest limit)."""



class ManifestCache:
    """Manifest bytes by digest under ``<state>/manifests/``; see the module docstring."""

    def __init__(self, state: Path, *, max_size: int = MAX_CACHED_MANIFEST) -> None:
        self.state = state
        self.max_size = max_size

    def __repr__(self) -> str:
        return f"ManifestCache({str(self.state)!r})"

    def _path(self, digest: Digest) -> Path:
        return self.state / CACHE_DIR / digest.algorithm / digest.hex

    def get(self, digest: Digest) -> RawManifest | None:
        """The manifest named ``digest`` if a valid copy is cached, else None (a miss)."""
        try:
            data = read_state_file(self._path(digest), limit=self.max_size, root=self.state)
        except StateFileError:
            return None
        if data is None:
            return None
        if Digest.of(data, digest.algorithm) != digest:
            log.warning("manifest cache: %s does not match its name; ignored", digest)
            return None
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        media_type = doc.get("mediaType")
        return RawManifest(media_type if isinstance(media_type, str) else "", data, digest)

    def put(self, manifest: RawManifest, digest: Digest | None = None) -> bool:
        """Keep ``manifest``'s bytes under ``digest`` (its own by default); False if not kept."""
        digest = digest or manifest.digest
        if manifest.size > self.max_size or Digest.of(manifest.data, digest.algorithm) != digest:
            return False
        try:
            write_state_file(self._path(digest), manifest.data, root=self.state, replace_link=True)
        except StateFileError as e:
            log.warning("manifest cache: %s not written: %s", digest, e)
            return False
        return True
