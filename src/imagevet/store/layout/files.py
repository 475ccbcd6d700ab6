"""The files of an OCI layout: a directory or (in :mod:`imagevet.store.archive`) a tar, read
through one small interface."""

from __future__ import annotations

import os
import stat
from typing import Protocol

from imagevet.digest import Digest
from imagevet.errors import LayoutError

CHUNK_SIZE = 1 << 20


class BlobFile:
    """A byte range of an open file (a blob on disk or a tar member), read with ``pread``."""

    __slots__ = ("_fd", "_start", "size", "_pos")

    def __init__(self, fd: int, start: int, size: int) -> None:
        self._fd = fd
        self._start = start
        self.size = size
        self._pos = 0

    def read(self, n: int) -> bytes:
        n = min(n, self.size - self._pos)
        if n <= 0:
            return b""
        data = os.pread(self._fd, n, self._start + self._pos)
        self._pos += len(data)
        return data

    def read_all(self) -> bytes:
        parts: list[bytes] = []
        while chunk := self.read(CHUNK_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        os.close(self._fd)


class LayoutFiles(Protocol):
    """The files of one layout, by path inside it (``index.json``, ``blobs/sha256/<hex>``)."""

    label: str

    def signature(self) -> object:
        """Changes whenever ``index.json`` changes (cache key)."""
        ...

    def present(self) -> bool:
        """Whether a layout is there at all (``index.json`` or ``oci-layout`` exists)."""
        ...

    def size(self, name: str) -> int | None:
        """The size of a regular file, None when absent; LayoutError when unsafe."""
        ...

    def open(self, name: str) -> BlobFile | None:
        """Open a regular file for reading, None when absent; LayoutError when unsafe."""
        ...


def blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


class DirFiles:
    """A layout directory.  Every path is checked to resolve inside the directory."""

    def __init__(self, root: str, label: str) -> None:
        self.root = root
        self.label = label

    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def _resolve(self, name: str) -> str | None:
        path = os.path.join(self.root, name)
        if not os.path.lexists(path):
            return None
        real = os.path.realpath(path)
        if not real.startswith(self._real_root() + os.sep):
            raise LayoutError(f"{self.label}: {name}", "resolves outside the layout directory")
        return real

    def signature(self) -> object:
        try:
            st = os.stat(os.path.join(self.root, "index.json"))
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)

    def present(self) -> bool:
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise LayoutError(self.label, "exists and is not a directory")
        return any(
            os.path.lexists(os.path.join(self.root, n)) for n in ("index.json", "oci-layout")
        )

    def size(self, name: str) -> int | None:
        real = self._resolve(name)
        if real is None:
            return None
        try:
            st = os.stat(real)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise LayoutError(f"{self.label}: {name}", "is not a regular file")
        return st.st_size

    def open(self, name: str) -> BlobFile | None:
        real = self._resolve(name)
        if real is None:
            return None
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise LayoutError(f"{self.label}: {name}", f"cannot be read: {e.strerror}") from e
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise LayoutError(f"{self.label}: {name}", "is not a regular file")
        return BlobFile(fd, 0, st.st_size)
