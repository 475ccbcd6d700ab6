"""OCI image layouts in tar files as an image store: ``oci-archive:FILE[:TAG|@DIGEST]``.

The same layout as :mod:`.layout` (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``) packed
in an uncompressed tar file, as ``skopeo copy ... oci-archive:FILE`` reads and writes it.

* **Reading** indexes the tar's member headers once (at most :data:`MAX_MEMBERS`) and serves
  every file by reading its byte range from the tar (``pread``: concurrent streams are safe);
  nothing is extracted.  An archive with a member whose name is absolute or has a ``..``
  component, a link, a device or FIFO, a sparse member, or a member past the end of the file is
  refused as a whole with :class:`~imagevet.errors.LayoutError`.  The bounds of :mod:`.layout`
  (index size and entries, manifest size) hold too.
* **Writing** builds a layout in a temporary directory next to the archive
  (``.<name>.imagevet-XXXX/``); when the archive already exists its layout files are copied there
  first (the same checks), so adding a tag keeps the others.  :meth:`ArchiveStore.aclose` writes
  the tar to a temporary file next to the archive, syncs it, renames it over the archive and
  removes the temporary directory: the archive is either the old one or the complete new one.
  Members are written in a fixed order with zero times and owners, so the same content gives
  the same tar.  Until ``aclose`` the archive file is unchanged; a store that is never closed
  leaves its temporary directory behind.  Other files of an existing archive (a ``docker save``
  ``manifest.json``) are not carried over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

from imagevet.digest import Digest
from imagevet.errors import LayoutError
from imagevet.manifest import Descriptor, RawManifest
from imagevet.reference import Reference
from imagevet.store.layout.files import CHUNK_SIZE, BlobFile
from imagevet.store.layout.index import check_layout_file
from imagevet.store.layout.reader import Layout
from imagevet.store.layout.writer import DirLayout
from imagevet.store.protocol import BlobReader, ManifestHead

__all__ = ["MAX_MEMBERS", "ArchiveStore", "TarFiles"]

MAX_MEMBERS = 200_000
"""Most members a layout tar may have."""
_LAYOUT_FILE = re.compile(r"^(?:oci-layout|index\.json|blobs/[a-z0-9]+/[0-9a-f]{32,128})\Z")


class TarFiles:
    """The files of a layout tar, by name, read in place (see the module docstring)."""

    def __init__(self, path: str, label: str) -> None:
        self.path = path
        self.label = label
        self._members: dict[str, tuple[int, int]] | None = None
        self._fd = -1
        self._sig: object = None

    def _load(self) -> dict[str, tuple[int, int]] | None:
        if self._members is not None:
            return self._members
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise LayoutError(self.label, f"cannot be read: {e.strerror}") from e
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise LayoutError(self.label, "is not a regular file")
            members = self._index(fd, st.st_size)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._members = fd, members
        self._sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        return members

    def _index(self, fd: int, file_size: int) -> dict[str, tuple[int, int]]:
        members: dict[str, tuple[int, int]] = {}
        try:
            with os.fdopen(os.dup(fd), "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
                count = 0
                while (m := tar.next()) is not None:
                    count += 1
                    if count > MAX_MEMBERS:
                        raise LayoutError(self.label, f"more than {MAX_MEMBERS} members")
                    cast(Any, tar).members = []  # bounded memory: the headers are not kept
                    name = self._check(m, file_size)
                    if name is not None:
                        members[name] = (m.offset_data, m.size)
        except tarfile.TarError as e:
            raise LayoutError(self.label, f"is not an uncompressed tar file ({e})") from None
        return members

    def _check(self, m: tarfile.TarInfo, file_size: int) -> str | None:
        """The member's clean name; None for a directory; LayoutError when it is unsafe."""
        name = m.name
        shown = name[:200].encode("unicode_escape").decode()
        parts = name.split("/")
        if name.startswith("/") or ".." in parts:
            raise LayoutError(self.label, f"member {shown!r} points outside the archive")
        if m.issym() or m.islnk():
            raise LayoutError(self.label, f"member {shown!r} is a link")
        if m.isdir():
            return None
        if not m.isreg():
            raise LayoutError(self.label, f"member {shown!r} is not a regular file")
        if m.issparse():
            raise LayoutError(self.label, f"member {shown!r} is a sparse file")
        if m.offset_data + m.size > file_size:
            raise LayoutError(self.label, f"member {shown!r} runs past the end of the file")
        return "/".join(p for p in parts if p not in ("", "."))

    def signature(self) -> object:
        self._load()
        return self._sig

    def present(self) -> bool:
        if os.path.isdir(self.path):
            raise LayoutError(self.label, "is a directory, not a tar file (use oci:)")
        members = self._load()
        return members is not None and ("index.json" in members or "oci-layout" in members)

    def names(self) -> list[str]:
        return sorted(self._load() or {})

    def size(self, name: str) -> int | None:
        found = (self._load() or {}).get(name)
        return found[1] if found is not None else None

    def open(self, name: str) -> BlobFile | None:
        found = (self._load() or {}).get(name)
        if found is None:
            return None
        return BlobFile(os.dup(self._fd), found[0], found[1])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self._members = None


def _write_tar(root: str, target: str, label: str) -> None:
    """Pack the layout at ``root`` into ``target`` atomically (blocking)."""
    names = ["oci-layout", "index.json"]
    blobs = os.path.join(root, "blobs")
    dirs = ["blobs"]
    for alg in sorted(os.listdir(blobs)) if os.path.isdir(blobs) else []:
        dirs.append(f"blobs/{alg}")
        names.extend(f"blobs/{alg}/{h}" for h in sorted(os.listdir(os.path.join(blobs, alg))))
    parent = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(target)}.imagevet-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as out:
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

                def info(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
                    ti = tarfile.TarInfo(name)
                    ti.type, ti.size, ti.mode, ti.mtime = kind, size, mode, 0
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = ""
                    return ti

                for d in dirs:
                    tar.addfile(info(d, tarfile.DIRTYPE, 0, 0o755))
                for name in names:
                    path = os.path.join(root, name)
                    if not os.path.exists(path):
                        continue
                    with open(path, "rb") as f:
                        size = os.fstat(f.fileno()).st_size
                        tar.addfile(info(name, tarfile.REGTYPE, size, 0o644), f)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class _Archive:
    """One archive: read in place until the first write, then a temporary layout directory."""

    def __init__(self, path: str, label: str) -> None:
        self.path = path
        self.label = label
        self.tar = TarFiles(path, label)
        self.reader = Layout(self.tar)
        self.writer: DirLayout | None = None
        self._lock = asyncio.Lock()

    @property
    def current(self) -> Layout:
        return self.writer if self.writer is not None else self.reader

    async def writable(self) -> DirLayout:
        async with self._lock:
            if self.writer is None:
                self.writer = await asyncio.to_thread(self._start)
            return self.writer

    def _start(self) -> DirLayout:
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, exist_ok=True)
            tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(self.path)}.imagevet-")
        except OSError as e:
            raise LayoutError(self.label, f"cannot write next to the archive: {e.strerror}") from e
        writer = DirLayout(tmp, self.label)
        try:
            if self.tar.present():
                check_layout_file(self.tar)
                for name in self.tar.names():
                    if not _LAYOUT_FILE.match(name):
                        continue
                    f = self.tar.open(name)
                    if f is None:
                        continue
                    try:
                        dest = os.path.join(tmp, name)
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        with open(dest, "xb") as out:
                            while chunk := f.read(CHUNK_SIZE):
                                out.write(chunk)
                    finally:
                        f.close()
            writer._init()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return writer

    async def finish(self) -> None:
        writer, self.writer = self.writer, None
        self.tar.close()
        if writer is None:
            return
        try:
            await asyncio.to_thread(_write_tar, writer.root, self.path, self.label)
        finally:
            await asyncio.to_thread(shutil.rmtree, writer.root, True)

    async def discard(self) -> None:
        writer, self.writer = self.writer, None
        self.tar.close()
        if writer is not None:
            await asyncio.to_thread(shutil.rmtree, writer.root, True)


class ArchiveStore:
    """Every ``oci-archive:`` reference: each distinct file is one archive, opened on first use.

    :meth:`aclose` writes every archive that was written to (see the module docstring).
    """

    scheme = "oci-archive"

    def __init__(self) -> None:
        self._archives: dict[str, _Archive] = {}
        self._closed = False

    def _archive(self, ref: Reference) -> _Archive:
        if self._closed:
            raise LayoutError(ref.name, "the archive store is closed")
        if ref.scheme != self.scheme:
            raise LayoutError(str(ref), f"not an {self.scheme}: reference")
        found = self._archives.get(ref.repository)
        if found is None:
            found = self._archives[ref.repository] = _Archive(ref.repository, ref.name)
        return found

    async def ping(self, ref: Reference) -> None:
        """An archive that is there must be a readable layout; one that is not, creatable."""
        arch = self._archive(ref)
        if await asyncio.to_thread(os.path.exists, ref.repository):
            if not await asyncio.to_thread(arch.tar.present):
                raise LayoutError(ref.name, "is not an OCI layout archive (no index.json)")
            await arch.current.index()
            return
        parent = os.path.dirname(os.path.abspath(ref.repository))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            raise LayoutError(ref.name, f"cannot be created: {parent} is not a writable directory")

    async def head_manifest(self, ref: Reference) -> ManifestHead | None:
        return await self._archive(ref).current.head(ref)

    async def get_manifest(self, ref: Reference) -> RawManifest:
        return await self._archive(ref).current.get(ref)

    async def put_manifest(self, ref: Reference, manifest: RawManifest) -> Digest:
        writer = await self._archive(ref).writable()
        return await writer.put_manifest(ref, manifest)

    async def delete_manifest(self, ref: Reference) -> None:
        writer = await self._archive(ref).writable()
        await writer.delete(ref)

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        return await self._archive(ref).current.blob_size(digest)

    def open_blob(self, ref: Reference, desc: Descriptor) -> AbstractAsyncContextManager[BlobReader]:
        return self._open_blob(self._archive(ref), desc)

    @asynccontextmanager
    async def _open_blob(self, arch: _Archive, desc: Descriptor) -> AsyncIterator[BlobReader]:
        async with arch.current.open_blob(desc) as reader:
            yield reader

    async def push_blob(self, ref: Reference, desc: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        writer = await self._archive(ref).writable()
        await writer.push_blob(desc, chunks)

    async def list_tags(self, ref: Reference) -> list[str]:
        return await self._archive(ref).current.tags()

    async def referrers(self, ref: Reference, subject: Digest, *, tag_schema: bool = True) -> list[Descriptor]:
        return await self._archive(ref).current.referrers(subject, tag_schema=tag_schema)

    async def aclose(self) -> None:
        """Write every archive written to; the first failure is raised after all were tried."""
        if self._closed:
            return
        self._closed = True
        first: BaseException | None = None
        for arch in self._archives.values():
            try:
                await arch.finish()
            except Exception as e:  # noqa: BLE001 - the others are still written
                first = first or e
                with contextlib.suppress(Exception):
                    await arch.discard()
        self._archives.clear()
        if first is not None:
            raise first

    def __repr__(self) -> str:
        return f"<ArchiveStore {len(self._archives)} archives>"

