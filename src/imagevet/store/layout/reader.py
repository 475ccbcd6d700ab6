"""Reading an OCI layout (directory or tar): manifests, tags, referrers, and verified blob
streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from imagevet.digest import Digest, DigestVerifier
from imagevet.errors import (
    DigestMismatchError,
    ImagevetError,
    LayoutError,
    NotFoundError,
)
from imagevet.manifest import Descriptor, RawManifest
from imagevet.reference import Reference, is_valid_tag
from imagevet.store.layout.files import CHUNK_SIZE, BlobFile, LayoutFiles, blob_name
from imagevet.store.layout.index import REF_NAME, Index, read_index, sniff_media_type
from imagevet.store.protocol import BlobReader, ManifestHead

MAX_MANIFEST_SIZE = 4 << 20
"""Largest manifest read or written (the limit distribution and containerd use)."""
MAX_SCANNED = 200_000
"""Most manifests read to find referrers in one layout."""


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
            kind = sniff_media_type(data) if data is not None else None
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
            kind = (sniff_media_type(data) if data is not None else None) or ""
        return ManifestHead(desc.digest, kind, size, None)

    async def get(self, ref: Reference) -> RawManifest:
        desc = await self.resolve(ref)
        if desc is None:
            raise self.not_found(f"MANIFEST_UNKNOWN: {ref.identifier} is not in the layout")
        data = await self.read_manifest_blob(desc.digest)
        if data is None:
            raise self.not_found(f"MANIFEST_UNKNOWN: blob {desc.digest} is missing from the layout")
        kind = desc.media_type or sniff_media_type(data) or None
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
                raw = RawManifest.from_bytes(data, sniff_media_type(data) or None)
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
