"""Manifest operations on exact bytes: HEAD, GET (verified), PUT, DELETE.

Spec: OCI distribution-spec v1.1, "Pulling manifests", "Pushing manifests", "Deleting manifests".
Rate-limit headers (Docker Hub, dockerhub-api.md §7) come back in :class:`ManifestHead`; the
pipeline records the last ones of each registry from every manifest response, 429s included.
"""

from __future__ import annotations

import json

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, InvalidDigestError, RegistryError, scrub
from imagevet.manifest import ManifestFormatError, RawManifest
from imagevet.ratelimit import RateLimit
from imagevet.reference import Reference
from imagevet.registry.pipeline import Pipeline
from imagevet.registry.responses import raise_for_status
from imagevet.registry.transport import Response
from imagevet.store.protocol import ManifestHead

__all__ = [
    "MAX_MANIFEST_SIZE",
    "ManifestHead",
    "delete_manifest",
    "get_manifest",
    "head_manifest",
    "put_manifest",
]

#: Largest manifest accepted (the limit distribution and containerd use).
MAX_MANIFEST_SIZE = 4 << 20
_GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})


def _path(ref: Reference, identifier: str | None = None) -> str:
    return f"/v2/{ref.repository}/manifests/{identifier or ref.identifier}"


def _ratelimit(resp: Response) -> RateLimit | None:
    headers = resp.headers
    if "ratelimit-limit" not in headers and "ratelimit-remaining" not in headers:
        return None
    return RateLimit.from_headers(headers)


def _header_digest(resp: Response, what: str) -> Digest | None:
    value = resp.headers.get("Docker-Content-Digest")
    if not value:
        return None
    try:
        return Digest.parse(value.strip())
    except InvalidDigestError:
        raise DigestMismatchError(
            what, "a valid Docker-Content-Digest", scrub(value.strip(), limit=100)
        ) from None


def _media_type(resp: Response) -> str:
    return resp.headers.get("Content-Type", "").split(";", 1)[0].strip()


async def head_manifest(p: Pipeline, ref: Reference) -> ManifestHead | None:
    """HEAD the manifest ``ref`` names; None when it does not exist.  No body is read.

    A registry that sends no ``Docker-Content-Digest`` costs one GET more (the digest is then
    computed from the bytes).
    """
    resp = await p.request(
        "HEAD",
        ref.registry,
        _path(ref),
        kind="manifest",
        scopes=(ref.scope("pull"),),
        headers={"Accept": mediatype.MANIFEST_ACCEPT},
    )
    limit = _ratelimit(resp)
    if resp.status == 404:
        await resp.aclose()
        return None
    await raise_for_status(resp, "HEAD")
    await resp.aclose()
    what = f"manifest {ref}"
    digest = _header_digest(resp, what)
    if ref.digest is not None and digest is not None and digest != ref.digest:
        if digest.algorithm == ref.digest.algorithm:
            raise DigestMismatchError(what, str(ref.digest), str(digest))
        digest = ref.digest
    size = resp.content_length
    media_type = _media_type(resp)
    if digest is None or size is None or media_type in _GENERIC_TYPES:
        manifest = await get_manifest(p, ref)
        return ManifestHead(manifest.digest, manifest.media_type, manifest.size, limit)
    return ManifestHead(digest, media_type, size, limit)


async def get_manifest(p: Pipeline, ref: Reference) -> RawManifest:
    """GET the exact bytes of a manifest, verified against ``ref.digest`` and the digest header."""
    what = f"manifest {ref}"
    resp = await p.request(
        "GET",
        ref.registry,
        _path(ref),
        kind="manifest",
        scopes=(ref.scope("pull"),),
        headers={"Accept": mediatype.MANIFEST_ACCEPT},
    )
    await raise_for_status(resp, "GET")
    length = resp.content_length
    if length is not None and length > MAX_MANIFEST_SIZE:
        await resp.aclose()
        raise ManifestFormatError(f"{what}: {length} bytes is more than the 4 MiB limit")
    data = await resp.read(MAX_MANIFEST_SIZE)
    if len(data) > MAX_MANIFEST_SIZE:
        raise ManifestFormatError(f"{what}: more than the 4 MiB limit")
    echoed = _header_digest(resp, what)
    algorithm = (ref.digest or echoed or Digest.of(b"")).algorithm
    media_type = _media_type(resp)
    if media_type in _GENERIC_TYPES:
        media_type = _embedded_media_type(data, what)
    manifest = RawManifest(media_type, data, Digest.of(data, algorithm))
    if ref.digest is not None:
        manifest.verify(ref.digest, what)
    if echoed is not None:
        manifest.verify(echoed, f"{what} (Docker-Content-Digest)")
    return manifest


def _embedded_media_type(data: bytes, what: str) -> str:
    """The ``mediaType`` inside the bytes, else a guess (the field is optional in OCI)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ManifestFormatError(f"{what}: not JSON and no Content-Type") from None
    if not isinstance(obj, dict):
        raise ManifestFormatError(f"{what}: not a JSON object")
    found = obj.get("mediaType")
    if isinstance(found, str) and found:
        return found
    return mediatype.OCI_INDEX if "manifests" in obj else mediatype.OCI_MANIFEST


async def put_manifest(p: Pipeline, ref: Reference, manifest: RawManifest) -> Digest:
    """PUT the exact bytes at ``ref.tag``, else ``ref.digest``, else the manifest's own digest."""
    what = f"manifest {manifest.digest} to {ref.name}"
    if ref.digest is not None and ref.tag is None:
        manifest.verify(ref.digest, what)
    identifier = ref.tag or str(ref.digest or manifest.digest)
    resp = await p.request(
        "PUT",
        ref.registry,
        _path(ref, identifier),
        kind="manifest",
        scopes=(ref.scope("pull", "push"),),
        headers={"Content-Type": manifest.media_type, "Content-Length": str(manifest.size)},
        body=manifest.data,
    )
    # no ``what``: the bytes were verified before the PUT, so a 400 DIGEST_INVALID here is the
    # registry's verdict on something the manifest refers to, reported in its own words
    await raise_for_status(resp, "PUT")
    await resp.read(1 << 16)
    echoed = _header_digest(resp, what)
    if echoed is not None:
        manifest.verify(echoed, f"{what} (Docker-Content-Digest)")
    return manifest.digest


async def delete_manifest(p: Pipeline, ref: Reference) -> None:
    """DELETE the manifest ``ref`` names (by digest; registries that allow it, by tag)."""
    resp = await p.request(
        "DELETE",
        ref.registry,
        _path(ref),
        kind="manifest",
        scopes=(ref.scope("delete"),),
    )
    await raise_for_status(resp, "DELETE")
    await resp.read(1 << 16)
    if resp.status not in (200, 202, 204):
        raise RegistryError(resp.status, "DELETE", resp.url, body="unexpected status")
