"""One blob at the target: HEAD first (skip), mount on the same store, else stream and verify.

Each blob is moved at most once per (target repository, digest, size): the size is part of the
key, so a descriptor that states a wrong size is checked on its own, never against (or in place
of) the transfer of a correct one; and work on one digest is serialized, so the outcome for each
image is the same whatever order the images run in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING

from imagevet.engine.copy.options import CopyProgress
from imagevet.errors import DigestMismatchError, NotFoundError, RegistryError, TransportError
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.store import BlobMounter

if TYPE_CHECKING:
    from imagevet.engine.copy.image import ImageCopy

__all__ = ["BLOB_ATTEMPTS", "copy_blob", "distributable"]

log = logging.getLogger(__name__)

BLOB_ATTEMPTS = 3
"""Whole-blob transfers (each re-opens the source stream) when a transfer broke where the store
cannot retry it: a body cut, stalled or too slow after its answer came
(:class:`~imagevet.errors.TransferTimeoutError`), or the one-shot upload refused with a
temporary error.

One retry layer per failure: a request the store may send again (a registry's blob GET, the
upload's POST) is retried there, and its error comes back ``exhausted``: the copy does not send
it again (a GET answered 5xx every time is sent ``RetryPolicy.attempts`` times, not 3 times
that).  When the copy's own tries are spent it marks the error ``exhausted`` too, so the
session's other images that need the blob get that answer without sending anything (a body cut
every time is fetched 3 times for the whole run, not 3 times per image)."""


def distributable(desc: Descriptor) -> bool:
    """Foreign (non-distributable) layers are not pushed to registries; their URLs stay as-is."""
    return "nondistributable" not in desc.media_type and "foreign" not in desc.media_type


async def copy_blob(job: ImageCopy, desc: Descriptor) -> None:
    """Blob ``desc`` at the target, once per session; counted by the image that moved it."""
    key = (job.target.name, desc.digest, desc.size)
    how, mine = await job.session.shared(job.session.blobs, key, lambda: _transfer(job, desc))
    c = job.counters
    if not mine:  # another image of this run moved it: count it once, there
        c.blobs_skipped += 1
    elif how == "copied":
        c.blobs_copied += 1
        c.bytes_copied += desc.size
    elif how == "mounted":
        c.blobs_mounted += 1
    else:
        c.blobs_skipped += 1


async def _transfer(job: ImageCopy, desc: Descriptor) -> str:
    """Skip, mount or stream one blob; returns ``"skipped"``, ``"mounted"`` or ``"copied"``.

    One digest is worked on by one task at a time (whatever the sizes callers state), so a
    second descriptor of it finds the blob there and is checked against the real size.
    """
    src, dst = job.source.repo(), job.target.repo()
    s, store = job.session, job.target_store
    async with s.blob_lock(dst.name, desc.digest), s.blob_slots:
        have = await store.head_blob(dst, desc.digest)
        if have is not None:
            check_size(desc, have, src, dst)
            how = "skipped"
        elif await _mounted(job, desc):
            # a mount does not say the size: check the descriptor against the mounted blob
            mounted = await store.head_blob(dst, desc.digest)
            check_size(desc, mounted, src, dst)
            how = "mounted"
        else:
            await _stream(job, desc)
            how = "copied"
    if s.progress is not None:
        s.progress.blob_finished(desc.digest, how)
    return how


async def _mounted(job: ImageCopy, desc: Descriptor) -> bool:
    """Mount the blob from the source repository when that is possible: one store serving both
    ends, able to mount, and both repositories on one registry (a mount never crosses stores)."""
    src, dst, store = job.source.repo(), job.target.repo(), job.target_store
    if not isinstance(store, BlobMounter) or job.source_store is not store:
        return False
    if src.registry != dst.registry or src.repository == dst.repository:
        return False
    return await store.mount_blob(dst, desc.digest, src)


async def _stream(job: ImageCopy, desc: Descriptor) -> None:
    src, dst = job.source.repo(), job.target.repo()
    source, target, progress = job.source_store, job.target_store, job.session.progress
    for attempt in range(1, BLOB_ATTEMPTS + 1):
        if progress is not None:
            progress.blob_started(desc.digest, desc.size)
        try:
            async with source.open_blob(src, desc) as stream:
                if progress is None:
                    await target.push_blob(dst, desc, stream)
                else:
                    await target.push_blob(dst, desc, _reporting(stream, desc, progress))
            return
        except (TransportError, RegistryError) as e:
            if not e.temporary or e.exhausted:
                raise  # not worth another try, or the client's retries are spent already
            if attempt == BLOB_ATTEMPTS:
                e.exhausted = True  # this layer's tries are spent: no one sends it again
                raise
            log.warning("blob %s: %s; retrying (%d/%d)", desc.digest, e, attempt, BLOB_ATTEMPTS)
            await asyncio.sleep(0.2 * attempt)


async def _reporting(
    stream: AsyncIterable[bytes], desc: Descriptor, progress: CopyProgress
) -> AsyncIterator[bytes]:
    async for chunk in stream:
        progress.blob_advanced(desc.digest, len(chunk))
        yield chunk


def check_size(desc: Descriptor, have: int | None, src: Reference, dst: Reference) -> None:
    """Refuse a blob whose real size is not the one its descriptor states (0: not reported).

    Worded as a read from the source refuses it, so the image fails with the same message
    whether its blob was already at the target or not.
    """
    if have is None:
        raise NotFoundError(404, "HEAD", f"{dst.name}/blobs/{desc.digest}", body="blob unknown")
    if have != desc.size and have != 0:
        raise DigestMismatchError(
            f"blob {desc.digest} of {src.name}", f"{desc.digest} ({desc.size} bytes)", f"{have} bytes"
        )
