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

import contextlib
import json
import logging
import os
import secrets
import stat
from pathlib import Path

from imagevet.digest import Digest
from imagevet.manifest import RawManifest

__all__ = ["CACHE_DIR", "MAX_CACHED_MANIFEST", "ManifestCache"]

log = logging.getLogger(__name__)

CACHE_DIR = "manifests"
"""The cache's directory inside the state directory."""
MAX_CACHED_MANIFEST = 4 << 20
"""Largest manifest kept or read back (the registry client's own manifest limit)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ManifestCache:
    """Manifest bytes by digest under ``<state>/manifests/``; see the module docstring."""

    def __init__(self, state: Path, *, max_size: int = MAX_CACHED_MANIFEST) -> None:
        self.state = state
        self.max_size = max_size

    def __repr__(self) -> str:
        return f"ManifestCache({str(self.state)!r})"

    def _open_dirs(self, digest: Digest, *, create: bool) -> int:
        """An fd of ``<state>/manifests/<alg>``, each level opened without following a link."""
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.state, 0o755)
        fd = os.open(self.state, _DIR_FLAGS)
        try:
            for name in (CACHE_DIR, digest.algorithm):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def get(self, digest: Digest) -> RawManifest | None:
        """The manifest named ``digest`` if a valid copy is cached, else None (a miss)."""
        try:
            dirfd = self._open_dirs(digest, create=False)
        except OSError:
            return None
        try:
            fd = os.open(
                digest.hex, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd
            )
        except OSError:
            return None
        finally:
            os.close(dirfd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > self.max_size:
                return None
            chunks: list[bytes] = []
            left = self.max_size + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 16))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except OSError:
            return None
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > self.max_size or Digest.of(data, digest.algorithm) != digest:
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
            dirfd = self._open_dirs(digest, create=True)
        except OSError as e:
            log.warning("manifest cache %s not written: %s", self.state / CACHE_DIR, e.strerror)
            return False
        tmp = f".{digest.hex}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                dir_fd=dirfd,
            )
            try:
                view = memoryview(manifest.data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            # rename replaces whatever has the name (a link included) and follows nothing
            os.replace(tmp, digest.hex, src_dir_fd=dirfd, dst_dir_fd=dirfd)
            return True
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dirfd)
            log.warning("manifest cache: %s not written: %s", digest, e.strerror)
            return False
        finally:
            os.close(dirfd)
