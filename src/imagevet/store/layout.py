"""OCI image layout directories as an image store: ``oci:PATH[:TAG|@DIGEST]``.

The layout follows image-spec ``image-layout.md`` (v1.1):

* ``oci-layout`` holds ``{"imageLayoutVersion": "1.0.0"}``;
* ``index.json`` is an OCI image index whose ``manifests`` are the stored top-level manifests; a
  tag is the ``org.opencontainers.image.ref.name`` annotation of one entry (a tag moves: the entry
  with that name is replaced); a manifest stored by digest is an entry without a name, so it is
  kept (the children of an index copied into a layout are such entries);
* every blob, manifests included, is ``blobs/<alg>/<hex>``.

Behaviour, beyond the :mod:`store protocol <imagevet.store.protocol>` contract:

* **Absent.** A path with neither ``index.json`` nor ``oci-layout`` (missing, or an empty
  directory) is an absent layout: ``head_manifest``/``head_blob`` return None,
  ``get_manifest``/``open_blob`` raise :class:`~imagevet.errors.NotFoundError`, and
  ``list_tags`` raises NotFoundError too, as a registry answers ``NAME_UNKNOWN`` for a repository
  that does not exist.  Nothing is created by a read; the directory (with ``oci-layout``) is
  created by the first write.
* **Tags.** ``list_tags`` returns the ``ref.name`` annotations that are valid tag names (the
  spec also allows full reference names there; they are not tags and are left out).
* **No tag, no digest.** ``oci:DIR`` means ``latest`` or, when there is no such tag and the
  index holds exactly one manifest, that manifest (what skopeo reads).
* **Delete.** Deleting a tag removes its entry; deleting a digest removes every entry of that
  digest and the manifest's blob.  Other blobs are never removed (no garbage collection).
* **Writes.** A blob is streamed to a temporary file in the layout, checked against its digest and
  size, synced, then renamed: a partial or wrong blob never has its final name.  ``index.json`` is
  rewritten atomically (temporary file, fsync, rename, directory fsync) under one asyncio lock per
  layout and an ``flock`` on the layout directory, so concurrent tasks and processes never lose
  each other's tags.  Files are read and written in 1 MiB steps off the event loop.
* **Hostile layouts.** ``index.json`` larger than :data:`MAX_INDEX_SIZE`, with more than
  :data:`MAX_INDEX_ENTRIES` entries, not JSON or not an index; a manifest larger than
  :data:`MAX_MANIFEST_SIZE`; a path inside the layout that resolves outside it (a symlinked
  ``blobs/`` or blob); a blob that is not a regular file: each raises
  :class:`~imagevet.errors.LayoutError` naming the file.  A blob whose size or digest is not what
  its descriptor says raises :class:`~imagevet.errors.DigestMismatchError`.  Nothing is written
  outside the layout directory, and never through a symlink.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from imagevet import mediatype
from imagevet.digest import Digest, DigestVerifier
from imagevet.errors import (
    DigestMismatchError,
    ImagevetError,
    LayoutError,
    NotFoundError,
)
from imagevet.manifest import Descriptor, ManifestFormatError, RawManifest
from imagevet.reference import Reference, is_valid_tag
from imagevet.store.protocol import BlobReader, ManifestHead

__all__ = [
    "CHUNK_SIZE",
    "LAYOUT_VERSION",
    "MAX_INDEX_ENTRIES",
    "MAX_INDEX_SIZE",
    "MAX_MANIFEST_SIZE",
    "REF_NAME",
    "LayoutStore",
]

LAYOUT_VERSION = "1.0.0"
REF_NAME = "org.opencontainers.image.ref.name"
MAX_INDEX_SIZE = 32 << 20
"""Largest ``index.json`` read (bytes)."""
MAX_INDEX_ENTRIES = 100_000
"""Most entries an ``index.json`` may list."""
MAX_MANIFEST_SIZE = 4 << 20
"""Largest manifest read or written (the limit distribution and containerd use)."""
MAX_SMALL_FILE = 64 << 10
"""Largest ``oci-layout`` file read."""
MAX_SCANNED = 200_000
"""Most manifests read to find referrers in one layout."""
CHUNK_SIZE = 1 << 20


# -- files: a directory or (in archive.py) a tar, read through one small interface ------------


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


# -- the index -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Index:
    """A parsed ``index.json``: the document as read (kept for rewrites) and its entries."""

    doc: dict[str, Any]
    entries: tuple[Descriptor, ...]

    def find_tag(self, tag: str) -> Descriptor | None:
        found = None
        for d in self.entries:
            if d.annotations.get(REF_NAME) == tag:
                found = d
        return found

    def find_digest(self, digest: Digest) -> Descriptor | None:
        for d in self.entries:
            if d.digest == digest:
                return d
        return None


def empty_index_doc() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mediatype.OCI_INDEX, "manifests": []}


def parse_index(data: bytes, label: str) -> Index:
    """Parse ``index.json`` bytes; LayoutError saying what is wrong."""
    what = f"{label}: index.json"
    if len(data) > MAX_INDEX_SIZE:
        raise LayoutError(what, f"larger than {MAX_INDEX_SIZE >> 20} MiB")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise LayoutError(what, f"is not JSON ({str(e)[:100]})") from None
    if not isinstance(doc, dict):
        raise LayoutError(what, "is not a JSON object")
    manifests = doc.get("manifests")
    if manifests is None:
        manifests = doc["manifests"] = []
    if not isinstance(manifests, list):
        raise LayoutError(what, "'manifests' is not a list")
    if len(manifests) > MAX_INDEX_ENTRIES:
        raise LayoutError(what, f"lists {len(manifests)} manifests; at most {MAX_INDEX_ENTRIES}")
    entries = []
    for i, obj in enumerate(manifests):
        try:
            entries.append(Descriptor.from_json(obj))
        except (ImagevetError, TypeError, ValueError) as e:
            raise LayoutError(what, f"manifests[{i}]: {str(e)[:200]}") from e
    return Index(doc, tuple(entries))


def check_layout_file(files: LayoutFiles) -> None:
    """Refuse an ``oci-layout`` file that is not JSON or names another layout version."""
    what = f"{files.label}: oci-layout"
    f = files.open("oci-layout")
    if f is None:
        return
    try:
        if f.size > MAX_SMALL_FILE:
            raise LayoutError(what, f"larger than {MAX_SMALL_FILE} bytes")
        data = f.read_all()
    finally:
        f.close()
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise LayoutError(what, "is not JSON") from None
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if version != LAYOUT_VERSION:
        raise LayoutError(what, f"imageLayoutVersion {str(version)[:40]!r} is not {LAYOUT_VERSION!r}")


def read_index(files: LayoutFiles) -> Index | None:
    """The layout's index, None when no layout is there (blocking: call in a thread)."""
    if not files.present():
        return None
    check_layout_file(files)
    f = files.open("index.json")
    if f is None:
        return Index(empty_index_doc(), ())
    try:
        if f.size > MAX_INDEX_SIZE:
            raise LayoutError(f"{files.label}: index.json", f"larger than {MAX_INDEX_SIZE >> 20} MiB")
        data = f.read_all()
    finally:
        f.close()
    return parse_index(data, files.label)


def _sniff_media_type(data: bytes) -> str | None:
    """The ``mediaType`` of manifest JSON, or None when ``data`` is not a manifest."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    if "manifests" in doc:
        return mediatype.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mediatype.OCI_MANIFEST
    return None


# -- reading a layout ------------------------------------------------------------------------


class _Reader:
    """A blob's bytes from a :class:`BlobFile`, hashed and checked off the event loop."""

    def __init__(self, f: BlobFile, desc: Descriptor, what: str) -> None:
        self.digest = desc.digest
        self.size = desc.size
        self._f = f
        self._what = what
        self._started = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError(f"{self._what}: a blob stream can be read once only")
        self._started = True
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        verifier = self.digest.verifier()

        def step() -> bytes:
            chunk = self._f.read(CHUNK_SIZE)
            verifier.update(chunk)
            return chunk

        while chunk := await asyncio.to_thread(step):
            yield chunk
        verifier.verify(self._what, self.size)


class Layout:
    """One OCI layout (directory or tar) read through :class:`LayoutFiles`, with its caches."""

    def __init__(self, files: LayoutFiles) -> None:
        self.files = files
        self.label = files.label
        self.lock = asyncio.Lock()
        self._index: tuple[object, Index | None] | None = None
        self._referrers: tuple[object, dict[Digest, list[Descriptor]]] | None = None

    def not_found(self, what: str, method: str = "GET") -> NotFoundError:
        return NotFoundError(404, method, self.label, body=what)

    async def index(self) -> Index | None:
        sig = await asyncio.to_thread(self.files.signature)
        if self._index is not None and self._index[0] == sig and sig is not None:
            return self._index[1]
        index = await asyncio.to_thread(read_index, self.files)
        self._index = (sig, index)
        return index

    def remember(self, sig: object, index: Index) -> None:
        self._index = (sig, index)

    async def read_manifest_blob(self, digest: Digest) -> bytes | None:
        """A manifest's bytes (at most :data:`MAX_MANIFEST_SIZE`), verified; None when absent."""
        name = blob_name(digest)

        def read() -> bytes | None:
            f = self.files.open(name)
            if f is None:
                return None
            try:
                if f.size > MAX_MANIFEST_SIZE:
                    raise LayoutError(
                        f"{self.label}: {name}", f"manifest larger than {MAX_MANIFEST_SIZE >> 20} MiB"
                    )
                return f.read_all()
            finally:
                f.close()

        data = await asyncio.to_thread(read)
        if data is not None:
            v = DigestVerifier(digest)
            v.update(data)
            v.verify(f"manifest {digest} in {self.label}")
        return data

    async def resolve(self, ref: Reference) -> Descriptor | None:
        """The descriptor ``ref`` names (digest first, then tag, then ``latest``/the only one)."""
        index = await self.index()
        if index is None:
            return None
        if ref.digest is not None:
            found = index.find_digest(ref.digest)
            if found is not None:
                return found
            size = await asyncio.to_thread(self.files.size, blob_name(ref.digest))
            if size is None or size > MAX_MANIFEST_SIZE:
                return None
            data = await self.read_manifest_blob(ref.digest)
            kind = _sniff_media_type(data) if data is not None else None
            return Descriptor(kind, ref.digest, size) if kind is not None else None
        if ref.tag is not None:
            return index.find_tag(ref.tag)
        found = index.find_tag("latest")
        if found is None and len(index.entries) == 1:
            found = index.entries[0]
        return found

    async def head(self, ref: Reference) -> ManifestHead | None:
        desc = await self.resolve(ref)
        if desc is None:
            return None
        size = await asyncio.to_thread(self.files.size, blob_name(desc.digest))
        if size is None:
            return None
        kind = desc.media_type
        if not kind:
            data = await self.read_manifest_blob(desc.digest)
            kind = (_sniff_media_type(data) if data is not None else None) or ""
        return ManifestHead(desc.digest, kind, size, None)

    async def get(self, ref: Reference) -> RawManifest:
        desc = await self.resolve(ref)
        if desc is None:
            raise self.not_found(f"MANIFEST_UNKNOWN: {ref.identifier} is not in the layout")
        data = await self.read_manifest_blob(desc.digest)
        if data is None:
            raise self.not_found(f"MANIFEST_UNKNOWN: blob {desc.digest} is missing from the layout")
        kind = desc.media_type or _sniff_media_type(data) or None
        raw = RawManifest.from_bytes(data, kind, algorithm=desc.digest.algorithm)
        if ref.digest is not None:
            raw.verify(ref.digest, f"manifest {ref}")
        return raw

    async def blob_size(self, digest: Digest) -> int | None:
        if not await asyncio.to_thread(self.files.present):
            return None
        return await asyncio.to_thread(self.files.size, blob_name(digest))

    @asynccontextmanager
    async def open_blob(self, desc: Descriptor) -> AsyncIterator[BlobReader]:
        what = f"blob {desc.digest} of {self.label}"
        present = await asyncio.to_thread(self.files.present)
        f = await asyncio.to_thread(self.files.open, blob_name(desc.digest)) if present else None
        if f is None:
            raise self.not_found(f"BLOB_UNKNOWN: {desc.digest} is not in the layout")
        try:
            if f.size != desc.size:
                raise DigestMismatchError(what, f"{desc.digest} ({desc.size} bytes)", f"{f.size} bytes")
            yield _Reader(f, desc, what)
        finally:
            f.close()

    async def tags(self) -> list[str]:
        index = await self.index()
        if index is None:
            raise self.not_found(f"NAME_UNKNOWN: no OCI layout at {self.label}")
        names = {d.annotations.get(REF_NAME) for d in index.entries}
        return sorted(n for n in names if is_valid_tag(n))

    async def referrers(self, subject: Digest, *, tag_schema: bool) -> list[Descriptor]:
        index = await self.index()
        if index is None:
            return []
        sig = self._index[0] if self._index is not None else None
        if self._referrers is None or self._referrers[0] != sig or sig is None:
            self._referrers = (sig, await self._scan(index))
        found = list(self._referrers[1].get(subject, ()))
        if tag_schema:
            tag = subject.tag()
            tagged = index.find_tag(tag) if tag is not None else None
            if tagged is not None:
                data = await self.read_manifest_blob(tagged.digest)
                if data is not None:
                    with contextlib.suppress(ImagevetError):
                        seen = {d.digest for d in found}
                        for d in RawManifest.from_bytes(data, tagged.media_type or None).children():
                            if d.digest not in seen:
                                found.append(d)
                                seen.add(d.digest)
        return found

    async def _scan(self, index: Index) -> dict[Digest, list[Descriptor]]:
        """Every stored manifest with a ``subject`` (top-level entries and the children of
        indexes), read once per layout."""
        out: dict[Digest, list[Descriptor]] = {}
        todo = [d.digest for d in index.entries]
        seen: set[Digest] = set()
        while todo and len(seen) < MAX_SCANNED:
            digest = todo.pop()
            if digest in seen:
                continue
            seen.add(digest)
            try:
                data = await self.read_manifest_blob(digest)
                if data is None:
                    continue
                raw = RawManifest.from_bytes(data, _sniff_media_type(data) or None)
                todo.extend(d.digest for d in raw.children())
                self.add_referrer(out, raw)
            except (ImagevetError, ValueError):
                continue  # not a manifest, or broken: it refers to nothing
        return out

    @staticmethod
    def add_referrer(out: dict[Digest, list[Descriptor]], raw: RawManifest) -> None:
        subject = raw.subject
        if subject is None:
            return
        notes = raw.json.get("annotations")
        annotations = (
            {k: v for k, v in notes.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(notes, dict)
            else {}
        )
        desc = Descriptor(
            raw.media_type, raw.digest, raw.size, artifact_type=raw.artifact_type,
            annotations=annotations,
        )
        listed = out.setdefault(subject.digest, [])
        if all(d.digest != raw.digest for d in listed):
            listed.append(desc)

    def note_referrer(self, raw: RawManifest) -> None:
        """Record a manifest just written (the map stays valid without a rescan)."""
        if self._referrers is not None:
            self.add_referrer(self._referrers[1], raw)


# -- writing a layout directory ----------------------------------------------------------------


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _real_dir(path: str, label: str, *, create: bool) -> None:
    """``path`` is a real directory (created when missing), never a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
        st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise LayoutError(f"{label}: {os.path.basename(path)}", "is not a directory (a symlink?): refusing to write")


FILE_MODE = 0o644
"""Mode of the files written (readable by a server of the layout; temporary files start 0600)."""


def _write_atomic(root: str, final: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".imagevet-")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class DirLayout(Layout):
    """A layout directory that can be written."""

    files: DirFiles

    def __init__(self, root: str, label: str) -> None:
        super().__init__(DirFiles(root, label))
        self.root = root
        self._ready = False

    def _init(self) -> None:
        """Create the directory, ``oci-layout`` and ``blobs/`` on first write (blocking)."""
        if os.path.lexists(self.root) and not os.path.isdir(self.root):
            raise LayoutError(self.label, "exists and is not a directory")
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise LayoutError(self.label, f"cannot create the directory: {e.strerror}") from e
        marker = os.path.join(self.root, "oci-layout")
        if os.path.lexists(marker):
            check_layout_file(self.files)
        else:
            data = json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode()
            _write_atomic(self.root, marker, data)
        _real_dir(os.path.join(self.root, "blobs"), self.label, create=True)

    def _blob_dir(self, digest: Digest) -> str:
        path = os.path.join(self.root, "blobs", digest.algorithm)
        _real_dir(path, self.label, create=True)
        return path

    async def ensure(self) -> None:
        if not self._ready:
            await asyncio.to_thread(self._init)
            self._ready = True

    async def push_blob(self, desc: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        await self.ensure()
        final = os.path.join(await asyncio.to_thread(self._blob_dir, desc.digest), desc.digest.hex)
        fd, tmp = await asyncio.to_thread(tempfile.mkstemp, dir=self.root, prefix=".imagevet-")
        os.fchmod(fd, FILE_MODE)
        what = f"blob {desc.digest} for {self.label}"
        verifier = desc.digest.verifier()

        def write(buf: list[bytes]) -> None:
            for b in buf:
                verifier.update(b)
                view = memoryview(b)
                while view:
                    view = view[os.write(fd, view) :]

        try:
            buf: list[bytes] = []
            pending = 0
            seen = 0
            async for chunk in chunks:
                seen += len(chunk)
                if seen > desc.size:
                    raise DigestMismatchError(what, f"{desc.digest} ({desc.size} bytes)", f"more than {desc.size} bytes")
                buf.append(chunk)
                pending += len(chunk)
                if pending >= CHUNK_SIZE:
                    await asyncio.to_thread(write, buf)
                    buf, pending = [], 0
            if buf:
                await asyncio.to_thread(write, buf)
            verifier.verify(what, desc.size)
            await asyncio.to_thread(os.fsync, fd)
            os.close(fd)
            fd = -1
            await asyncio.to_thread(os.replace, tmp, final)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def put_blob_bytes(self, digest: Digest, data: bytes) -> None:
        """Store small content (a manifest) under its digest, unless the same bytes are there."""
        await self.ensure()

        def put() -> None:
            final = os.path.join(self._blob_dir(digest), digest.hex)
            f = self.files.open(blob_name(digest))
            if f is not None:
                try:
                    same = f.size == len(data) and f.read_all() == data
                finally:
                    f.close()
                if same:
                    return
            _write_atomic(self.root, final, data)

        await asyncio.to_thread(put)

    async def update_index(self, change: Callable[[list[Any]], bool]) -> None:
        """Apply ``change`` to the ``manifests`` of a fresh read of ``index.json`` and write it
        back atomically, holding the layout's asyncio lock and an flock on the directory."""
        await self.ensure()
        async with self.lock:
            sig, index = await asyncio.to_thread(self._update_locked, change)
        self.remember(sig, index)

    def _update_locked(self, change: Callable[[list[Any]], bool]) -> tuple[object, Index]:
        dfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(dfd, fcntl.LOCK_EX)
            index = read_index(self.files) or Index(empty_index_doc(), ())
            doc = index.doc
            manifests: list[Any] = doc["manifests"]
            if change(manifests):
                if len(manifests) > MAX_INDEX_ENTRIES:
                    raise LayoutError(f"{self.label}: index.json", f"would list more than {MAX_INDEX_ENTRIES} manifests")
                data = json.dumps(doc, separators=(",", ":")).encode()
                _write_atomic(self.root, os.path.join(self.root, "index.json"), data)
                _fsync_dir(self.root)
                index = parse_index(data, self.label)
            return self.files.signature(), index
        finally:
            os.close(dfd)  # releases the flock

    async def put_manifest(self, ref: Reference, raw: RawManifest) -> Digest:
        digest = ref.digest or raw.digest
        if ref.digest is not None:
            raw.verify(ref.digest, f"manifest for {ref}")
        if raw.size > MAX_MANIFEST_SIZE:
            raise LayoutError(f"{self.label}: manifest {digest}", f"larger than {MAX_MANIFEST_SIZE >> 20} MiB")
        await self.put_blob_bytes(digest, raw.data)
        entry: dict[str, Any] = {"mediaType": raw.media_type, "digest": str(digest), "size": raw.size}
        with contextlib.suppress(ManifestFormatError):
            at = raw.json.get("artifactType")
            if isinstance(at, str) and at:
                entry["artifactType"] = at
        tag = ref.tag

        def change(manifests: list[Any]) -> bool:
            def name(e: Any) -> object:
                notes = e.get("annotations") if isinstance(e, dict) else None
                return notes.get(REF_NAME) if isinstance(notes, dict) else None

            if tag is None:
                if any(isinstance(e, dict) and e.get("digest") == str(digest) for e in manifests):
                    return False
                manifests.append(entry)
                return True
            manifests[:] = [
                e for e in manifests
                if name(e) != tag and not (name(e) is None and isinstance(e, dict) and e.get("digest") == str(digest))
            ]
            manifests.append({**entry, "annotations": {REF_NAME: tag}})
            return True

        await self.update_index(change)
        with contextlib.suppress(ImagevetError):
            self.note_referrer(raw)
        return digest

    async def delete(self, ref: Reference) -> None:
        removed: list[bool] = []
        index = await self.index()
        if index is None:
            raise self.not_found(f"MANIFEST_UNKNOWN: no OCI layout at {self.label}", "DELETE")
        digest = ref.digest
        tag = ref.tag if digest is None else None

        def change(manifests: list[Any]) -> bool:
            def gone(e: Any) -> bool:
                if not isinstance(e, dict):
                    return False
                if digest is not None:
                    return bool(e.get("digest") == str(digest))
                notes = e.get("annotations")
                return isinstance(notes, dict) and notes.get(REF_NAME) == (tag or "latest")

            kept = [e for e in manifests if not gone(e)]
            removed.append(len(kept) != len(manifests))
            manifests[:] = kept
            return removed[-1]

        await self.update_index(change)
        if digest is not None:
            path = os.path.join(self.root, blob_name(digest))

            def unlink() -> bool:
                try:
                    if self.files.size(blob_name(digest)) is None:
                        return False
                    os.unlink(path)
                    return True
                except FileNotFoundError:
                    return False

            if await asyncio.to_thread(unlink):
                removed.append(True)
            self._referrers = None
        if not any(removed):
            raise self.not_found(f"MANIFEST_UNKNOWN: {ref.identifier} is not in the layout", "DELETE")

    async def link_blob(self, digest: Digest, source: DirLayout) -> bool:
        """Make ``source``'s blob ``digest`` available here (a hard link, else a verified copy)."""
        src = await asyncio.to_thread(source.files._resolve, blob_name(digest))
        if src is None:
            return False
        await self.ensure()

        def link() -> None:
            final = os.path.join(self._blob_dir(digest), digest.hex)
            tmp = os.path.join(self.root, f".imagevet-link-{os.getpid()}-{id(self)}-{digest.hex[:16]}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            try:
                os.link(src, tmp, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                f = source.files.open(blob_name(digest))
                if f is None:
                    raise FileNotFoundError(src) from None
                try:
                    v = digest.verifier()
                    with open(tmp, "xb") as out:
                        while chunk := f.read(CHUNK_SIZE):
                            v.update(chunk)
                            out.write(chunk)
                        out.flush()
                        os.fsync(out.fileno())
                    v.verify(f"blob {digest} of {source.label}")
                finally:
                    f.close()
            try:
                os.replace(tmp, final)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

        try:
            await asyncio.to_thread(link)
        except FileNotFoundError:
            return False
        return True


# -- the store ---------------------------------------------------------------------------------


class LayoutStore:
    """Every ``oci:`` reference: each distinct path is one layout directory, opened on first use.

    Implements :class:`~imagevet.store.ImageStore` and :class:`~imagevet.store.BlobMounter`
    (a blob "mounted" from another layout of this store is hard-linked, or copied and verified).
    """

    scheme = "oci"

    def __init__(self) -> None:
        self._layouts: dict[str, DirLayout] = {}
        self._closed = False

    def layout(self, ref: Reference) -> DirLayout:
        if self._closed:
            raise LayoutError(ref.name, "the layout store is closed")
        if ref.scheme != self.scheme:
            raise LayoutError(str(ref), f"not an {self.scheme}: reference")
        found = self._layouts.get(ref.repository)
        if found is None:
            found = self._layouts[ref.repository] = DirLayout(ref.repository, ref.name)
        return found

    async def ping(self, ref: Reference) -> None:
        """A layout that is there must be readable; one that is not must be creatable."""
        layout = self.layout(ref)
        if await asyncio.to_thread(layout.files.present):
            await layout.index()
            return
        parent = os.path.abspath(ref.repository)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            raise LayoutError(ref.name, f"cannot be created: {parent} is not a writable directory")

    async def head_manifest(self, ref: Reference) -> ManifestHead | None:
        return await self.layout(ref).head(ref)

    async def get_manifest(self, ref: Reference) -> RawManifest:
        return await self.layout(ref).get(ref)

    async def put_manifest(self, ref: Reference, manifest: RawManifest) -> Digest:
        return await self.layout(ref).put_manifest(ref, manifest)

    async def delete_manifest(self, ref: Reference) -> None:
        await self.layout(ref).delete(ref)

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        return await self.layout(ref).blob_size(digest)

    def open_blob(self, ref: Reference, desc: Descriptor) -> AbstractAsyncContextManager[BlobReader]:
        return self.layout(ref).open_blob(desc)

    async def push_blob(self, ref: Reference, desc: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        await self.layout(ref).push_blob(desc, chunks)

    async def mount_blob(self, ref: Reference, digest: Digest, from_ref: Reference) -> bool:
        target, source = self.layout(ref), self.layout(from_ref)
        if target is source:
            return await target.blob_size(digest) is not None
        return await target.link_blob(digest, source)

    async def list_tags(self, ref: Reference) -> list[str]:
        return await self.layout(ref).tags()

    async def referrers(self, ref: Reference, subject: Digest, *, tag_schema: bool = True) -> list[Descriptor]:
        return await self.layout(ref).referrers(subject, tag_schema=tag_schema)

    async def aclose(self) -> None:
        self._closed = True
        self._layouts.clear()

    def __repr__(self) -> str:
        return f"<LayoutStore {len(self._layouts)} layouts>"
