"""The copy engine: one image, byte for byte, from a source repository to a target repository,
each in any :class:`~imagevet.store.ImageStore` (a registry, an OCI layout directory or archive).

What "byte for byte" means here (and why ``docker pull`` + ``docker push`` is not it):

* the index and every platform manifest are pushed with the exact bytes the source served, so
  every digest, and every signature over a digest, stays valid;
* every config and layer blob is streamed from source to target (never whole in memory, no temp
  file), hashed on the way and refused on a digest or size mismatch;
* the OCI referrers of each manifest (signatures, SBOMs, attestations) and the cosign-style
  digest tags (``sha256-<hex>.sig``/``.att``/``.sbom``, and the referrers fallback tag
  ``sha256-<hex>``) travel with the image.

Order makes a failed copy harmless: blobs before the manifest that lists them, children before
their index, attachments after their subject, **the tag last**.  A copy that dies half way leaves
no tag pointing at a partial image, and the next run resumes (what is there is skipped).  Only
writes wait: the reads that find attachments (the source's tag listing, a referrers request per
manifest of the image) go out while the image's blobs are copied, not after.

Cost: when the target tag already holds the source digest the copy is a no-op made of HEAD
requests only (no manifest or blob GET on the source, so no Docker Hub pull is spent).  Blobs
already at the target are skipped after a HEAD; when one store serves both ends and can mount
(:class:`~imagevet.store.BlobMounter`: a registry's ``?mount=&from=``) and both repositories
are on one registry, they are mounted rather than moved.  The engine knows its stores by the
protocol alone: nothing here names a registry client.

A :class:`CopySession` shared by many copies is what makes concurrent copies into one repository
safe and bounded:

* each blob is moved at most once per (target repository, digest, size): the size is part of the
  key, so a descriptor that states a wrong size is checked on its own, never against (or in place
  of) the transfer of a correct one, and work on one digest is serialized, so the outcome for
  each image is the same whatever order the images run in;
* each manifest is pushed at most once per (target repository, reference, digest), and a PUT
  never overlaps another PUT of the same manifest or of an index that lists it (distribution
  rewrites a manifest's link file on every PUT, and an index PUT that reads it half-written is
  refused with ``DIGEST_INVALID`` or ``MANIFEST_BLOB_UNKNOWN``);
* blob transfers (``jobs``) and manifest requests (``jobs`` more) in flight are bounded, and so is
  fan-out: children and attachments are walked by a few workers, never one task each, and an
  image may reach at most ``max_manifests`` manifests through indexes nested at most
  :data:`MAX_INDEX_DEPTH` deep (beyond, a clear error fails that image only);
* shared work returns facts (manifests listed below, how deep, children absent at the source)
  and each image applies its own rules to them, so an image's outcome never depends on which
  image came first; no shared work waits on work that may wait on it (each image walks its own
  attachments, each subject once), so a digest tag naming its own subject cannot hang a copy.

The flow, one module each: :mod:`.session` (the shared work of many copies) -> :mod:`.image`
(one image: resolve, skip, walk, tag last) -> :mod:`.graph` (index -> children -> manifests) ->
:mod:`.blobs` (one blob: HEAD, mount, stream, verify) and :mod:`.attachments` (referrers and
digest tags); :mod:`.digest_tags` is ``copy --all-tags``' last step.
"""

from __future__ import annotations

from imagevet.engine.copy.attachments import DIGEST_TAG_SUFFIXES, MAX_ATTACHMENT_DEPTH
from imagevet.engine.copy.blobs import BLOB_ATTEMPTS
from imagevet.engine.copy.digest_tags import copy_digest_tags
from imagevet.engine.copy.fanout import FANOUT
from imagevet.engine.copy.graph import MAX_INDEX_DEPTH
from imagevet.engine.copy.options import DEFAULT_JOBS, MAX_MANIFESTS, CopyOptions, CopyProgress
from imagevet.engine.copy.results import CopyResult
from imagevet.engine.copy.session import CopySession, copy_image

__all__ = [
    "BLOB_ATTEMPTS",
    "DEFAULT_JOBS",
    "DIGEST_TAG_SUFFIXES",
    "FANOUT",
    "MAX_ATTACHMENT_DEPTH",
    "MAX_INDEX_DEPTH",
    "MAX_MANIFESTS",
    "CopyOptions",
    "CopyProgress",
    "CopyResult",
    "CopySession",
    "copy_digest_tags",
    "copy_image",
]
