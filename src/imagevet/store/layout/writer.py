"""Writing an OCI layout directory: blobs and ``index.json`` written atomically."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import threading
from collections.abc import AsyncIterable, Callable
from typing import Any

from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, ImagevetError, LayoutError
from imagevet.manifest import Descriptor, ManifestFormatError, RawManifest
from imagevet.reference import Reference
from imagevet.store.layout.files import CHUNK_SIZE, DirFiles, blob_name
from imagevet.store.layout.index import (
    LAYOUT_VERSION,
    MAX_INDEX_ENTRIES,
    REF_NAME,
    Index,
    check_layout_file,
    empty_index_doc,
    parse_index,
    read_index,
)
from imagevet.store.layout.reader import MAX_MANIFEST_SIZE, Layout


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


class _ThreadedFile:
    """A temporary file that worker threads write: its descriptor is closed only when no thread
    uses it.

    A copy cancelled while a thread writes (``imagevet watch`` stopping after its grace period)
    must not close the descriptor under that thread: the number would be reused by the next file
    opened, and the thread's remaining bytes would land there.  So each use holds a lock and
    first checks that the file is still open, and :meth:`discard` (from the event loop) closes
    and removes the file at once when no thread holds it, else in a worker once the thread is
    done; the event loop never waits for a disk write.
    """

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self._lock = threading.Lock()
        self._closed = False

    def use(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(fd, *args)`` in the calling (worker) thread, unless the file was discarded."""
        with self._lock:
            if self._closed:
                raise OSError(errno.EBADF, "the temporary file was discarded")
            fn(self.fd, *args)

    def _close_locked(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    def close(self) -> None:
        """Close after the last use (no thread uses it: each use was awaited)."""
        with self._lock:
            self._close_locked()

    def _discard_locked(self) -> None:
        self._close_locked()
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def _discard_waiting(self) -> None:
        with self._lock:
            self._discard_locked()

    def discard(self) -> None:
        """Close and remove the file: now, or (a thread still writes) once that thread is done."""
        if self._lock.acquire(blocking=False):
            try:
                self._discard_locked()
            finally:
                self._lock.release()
            return
        asyncio.get_running_loop().run_in_executor(None, self._discard_waiting)


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

        temp = _ThreadedFile(fd, tmp)

        def write(fd: int, buf: list[bytes]) -> None:
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
                    await asyncio.to_thread(temp.use, write, buf)
                    buf, pending = [], 0
            if buf:
                await asyncio.to_thread(temp.use, write, buf)
            verifier.verify(what, desc.size)
            await asyncio.to_thread(temp.use, os.fsync)
            temp.close()
            await asyncio.to_thread(os.replace, tmp, final)
        except BaseException:
            temp.discard()
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
