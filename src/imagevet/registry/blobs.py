"""Blob operations: HEAD, streamed and verified GET, streamed upload, cross-repository mount.

Spec: OCI distribution-spec v1.1, "Pulling blobs", "Pushing blobs" (monolithic POST then PUT,
chunked PATCH), "Mounting a blob from another repository".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, RegistryError, scrub
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.registry.pipeline import Pipeline
from imagevet.registry.responses import raise_for_status
from imagevet.registry.transport import Response
from imagevet.registry.urls import add_query, join_url

__all__ = ["BlobStream", "head_blob", "mount_blob", "open_blob", "push_blob"]

log = logging.getLogger(__name__)

OCTET_STREAM = "application/octet-stream"


class BlobStream:
    """The body of a blob as an async iterator of ``bytes`` chunks, verified as it passes.

    Each byte is hashed once.  More bytes than ``size`` raise
    :class:`~imagevet.errors.DigestMismatchError` at once; a wrong digest or a short body raise it
    after the last chunk, so a consumer never finishes with unverified content.
    """

    __slots__ = ("digest", "size", "_resp", "_what", "_started", "verified")

    def __init__(self, resp: Response, desc: Descriptor, what: str) -> None:
        self.digest = desc.digest
        self.size = desc.size
        self._resp = resp
        self._what = what
        self._started = False
        self.verified = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError(f"{self._what}: a blob stream can be read once only")
        self._started = True
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        verifier = self.digest.verifier()
        size = self.size
        update = verifier.update
        async for chunk in self._resp.aiter_bytes():
            update(chunk)
            if verifier.size > size:
                await self._resp.aclose()
                raise DigestMismatchError(
                    self._what, f"{self.digest} ({size} bytes)", f"more than {size} bytes"
                )
            yield chunk
        verifier.verify(self._what, size)
        self.verified = True

    async def aclose(self) -> None:
        await self._resp.aclose()

    def __repr__(self) -> str:
        return f"<BlobStream {self.digest} {self.size} bytes>"


def _blob_path(ref: Reference, digest: Digest) -> str:
    return f"/v2/{ref.repository}/blobs/{digest}"


def _uploads_path(ref: Reference) -> str:
    return f"/v2/{ref.repository}/blobs/uploads/"


async def head_blob(p: Pipeline, ref: Reference, digest: Digest) -> int | None:
    """The blob's size in ``ref``'s repository, or None when it is not there."""
    resp = await p.request(
        "HEAD",
        ref.registry,
        _blob_path(ref, digest),
        kind="blob",
        scopes=(ref.scope("pull"),),
        follow_redirects=True,
    )
    if resp.status == 404:
        await resp.aclose()
        return None
    await raise_for_status(resp, "HEAD")
    await resp.aclose()
    return resp.content_length if resp.content_length is not None else 0


@asynccontextmanager
async def open_blob(p: Pipeline, ref: Reference, desc: Descriptor) -> AsyncIterator[BlobStream]:
    """Stream a blob, following redirects by hand (no ``Authorization`` to another origin)."""
    what = f"blob {desc.digest} of {ref.name}"
    resp = await p.request(
        "GET",
        ref.registry,
        _blob_path(ref, desc.digest),
        kind="blob",
        scopes=(ref.scope("pull"),),
        follow_redirects=True,
    )
    try:
        await raise_for_status(resp, "GET")
        length = resp.content_length
        if length is not None and length != desc.size:
            raise DigestMismatchError(what, f"{desc.digest} ({desc.size} bytes)", f"{length} bytes")
        yield BlobStream(resp, desc, what)
    finally:
        await resp.aclose()


async def _sized(chunks: AsyncIterable[bytes], desc: Descriptor) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through, refusing more or fewer bytes than the descriptor says."""
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        if sent > desc.size:
            raise DigestMismatchError(
                f"upload of {desc.digest}", f"{desc.size} bytes", f"more than {desc.size} bytes"
            )
        yield chunk
    if sent != desc.size:
        raise DigestMismatchError(f"upload of {desc.digest}", f"{desc.size} bytes", f"{sent} bytes")


async def _start_upload(p: Pipeline, ref: Reference, scopes: tuple[str, ...]) -> str:
    resp = await p.request(
        "POST",
        ref.registry,
        _uploads_path(ref),
        kind="upload",
        scopes=scopes,
        headers={"Content-Length": "0"},
        body=b"",
    )
    await raise_for_status(resp, "POST")
    location = resp.headers.get("Location")
    await resp.read(1 << 16)
    if not location:
        raise RegistryError(resp.status, "POST", resp.url, body="upload started without a Location")
    return join_url(resp.url, location)


async def _cancel(p: Pipeline, ref: Reference, url: str, scopes: tuple[str, ...]) -> None:
    """Abandon an upload session; errors are ignored (the registry expires it anyway).

    One request with the push token: a registry wanting ``delete`` rights for it (distribution
    does) answers 401, and that is no reason to fetch a token.
    """
    try:
        resp = await p.request(
            "DELETE", ref.registry, url, kind="upload", scopes=scopes, retry=False, reauth=False
        )
        await resp.aclose()
    except Exception as e:  # best effort only
        log.debug("cancelling upload session failed: %s", e)


async def push_blob(
    p: Pipeline, ref: Reference, desc: Descriptor, chunks: AsyncIterable[bytes]
) -> None:
    """Upload a blob from ``chunks``: one streamed PUT, or PATCH chunks when the host opts in.

    The request carrying the stream is sent once; a caller retries by opening its source again.
    """
    scopes = (ref.scope("pull", "push"),)
    host = p.host(ref.registry)
    url = await _start_upload(p, ref, scopes)
    what = f"blob {desc.digest} to {ref.name}"
    try:
        if host.chunked_upload and desc.size > host.chunk_size:
            url = await _patch_chunks(p, ref, desc, chunks, url, scopes, host.chunk_size)
            headers = {"Content-Length": "0", "Content-Type": OCTET_STREAM}
            resp = await p.request(
                "PUT",
                ref.registry,
                add_query(url, "digest", str(desc.digest)),
                kind="upload",
                scopes=scopes,
                headers=headers,
                body=b"",
                retry=False,
            )
        else:
            headers = {"Content-Length": str(desc.size), "Content-Type": OCTET_STREAM}
            resp = await p.request(
                "PUT",
                ref.registry,
                add_query(url, "digest", str(desc.digest)),
                kind="upload",
                scopes=scopes,
                headers=headers,
                body=_sized(chunks, desc),
                retry=False,
            )
        await raise_for_status(resp, "PUT", what)
    except Exception:
        await _cancel(p, ref, url, scopes)
        raise
    await resp.read(1 << 16)
    echoed = (resp.headers.get("Docker-Content-Digest") or "").strip()
    # Compare like with like: distribution 2.8 stores sha512 blobs but may echo their sha256.
    if echoed.startswith(f"{desc.digest.algorithm}:") and echoed != str(desc.digest):
        raise DigestMismatchError(what, str(desc.digest), scrub(echoed, limit=200))


async def _patch_chunks(
    p: Pipeline,
    ref: Reference,
    desc: Descriptor,
    chunks: AsyncIterable[bytes],
    url: str,
    scopes: tuple[str, ...],
    chunk_size: int,
) -> str:
    buf = bytearray()
    offset = 0

    async def send(part: bytes) -> str:
        nonlocal offset
        headers = {
            "Content-Type": OCTET_STREAM,
            "Content-Length": str(len(part)),
            "Content-Range": f"{offset}-{offset + len(part) - 1}",
        }
        resp = await p.request(
            "PATCH",
            ref.registry,
            url,
            kind="upload",
            scopes=scopes,
            headers=headers,
            body=part,
            retry=False,
        )
        await raise_for_status(resp, "PATCH", f"blob {desc.digest}")
        location = resp.headers.get("Location")
        await resp.read(1 << 16)
        offset += len(part)
        return join_url(resp.url, location) if location else url

    async for chunk in _sized(chunks, desc):
        buf += chunk
        while len(buf) >= chunk_size:
            part = bytes(buf[:chunk_size])
            del buf[:chunk_size]
            url = await send(part)
    if buf:
        url = await send(bytes(buf))
    return url


async def mount_blob(p: Pipeline, ref: Reference, digest: Digest, from_ref: Reference) -> bool:
    """Mount ``digest`` from ``from_ref``'s repository into ``ref``'s (same registry only).

    True when mounted (201).  On 202 the registry opened an upload session instead: it is
    cancelled and False returned, so the caller copies the blob.
    """
    if ref.registry != from_ref.registry:
        return False
    scopes = (ref.scope("pull", "push"), from_ref.scope("pull"))
    path = (
        f"{_uploads_path(ref)}?mount={quote(str(digest), safe='')}"
        f"&from={quote(from_ref.repository, safe='')}"
    )
    resp = await p.request(
        "POST",
        ref.registry,
        path,
        kind="upload",
        scopes=scopes,
        headers={"Content-Length": "0"},
        body=b"",
    )
    if resp.status == 201:
        await resp.read(1 << 16)
        return True
    if resp.status == 202:
        location = resp.headers.get("Location")
        await resp.read(1 << 16)
        if location:
            await _cancel(p, ref, join_url(resp.url, location), scopes)
        return False
    if resp.status in (400, 404, 405):  # no mount here (unsupported, or the source is unknown)
        await resp.read(1 << 16)
        return False
    await raise_for_status(resp, "POST")
    await resp.aclose()
    return False
