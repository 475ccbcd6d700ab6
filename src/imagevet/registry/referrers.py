"""Referrers of a manifest: the OCI 1.1 referrers API, else the referrers tag schema.

``GET /v2/<name>/referrers/<digest>`` answers an OCI index of descriptors.  A registry without
the API (Debian's distribution 2.8 answers 404) is asked for the fallback tag
``<alg>-<hex>`` instead (distribution-spec v1.1, "Referrers tag schema").  Whether a registry
has the API is remembered for a while, so the probe costs one request per registry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import NotFoundError, RegistryError
from imagevet.manifest import Descriptor, ManifestFormatError
from imagevet.reference import Reference
from imagevet.registry.manifests import get_manifest
from imagevet.registry.pipeline import Pipeline
from imagevet.registry.responses import ERROR_BODY_LIMIT, parse_diagnostics, raise_for_status
from imagevet.registry.urls import join_url, next_link

__all__ = ["PROBE_TTL", "ReferrersSupport", "fallback_tag", "referrers"]

PROBE_TTL = 300.0
INDEX_BODY_LIMIT = 4 << 20
MAX_PAGES = 100
_UNSUPPORTED = frozenset({400, 404, 405, 501})


def fallback_tag(subject: Digest) -> str:
    """The referrers tag of ``subject``: ``<alg>-<hex>``, cut to the 128 characters a tag may have."""
    tag = subject.tag()
    assert tag is not None  # the unsuffixed tag always fits
    return tag


class ReferrersSupport:
    """Per registry: whether the referrers API answered, remembered for ``ttl`` seconds."""

    def __init__(self, ttl: float = PROBE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[bool, float]] = {}

    def get(self, registry: str) -> bool | None:
        entry = self._known.get(registry)
        if entry is None or self._clock() >= entry[1]:
            return None
        return entry[0]

    def set(self, registry: str, supported: bool) -> None:
        self._known[registry] = (supported, self._clock() + self._ttl)


def _descriptors(data: bytes, what: str) -> list[Descriptor]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ManifestFormatError(f"{what}: not JSON") from None
    items = obj.get("manifests") if isinstance(obj, dict) else None
    return [Descriptor.from_json(d) for d in items or []]


async def referrers(
    p: Pipeline,
    ref: Reference,
    subject: Digest,
    support: ReferrersSupport,
    *,
    tag_schema: bool = True,
) -> list[Descriptor]:
    """The descriptors of the manifests whose ``subject`` is ``subject``, in ``ref``'s repository.

    Without the API, the fallback tag is read only when ``tag_schema`` is true.
    """
    registry = ref.registry
    configured = p.host(registry).referrers_api
    known = support.get(registry) if configured is None else configured
    if known is not False:
        found = await _from_api(p, ref, subject, support, configured)
        if found is not None:
            return found
    if not tag_schema:
        return []
    try:
        index = await get_manifest(p, ref.repo().with_tag(fallback_tag(subject)))
    except NotFoundError:
        return []
    return index.children() if index.data else []


async def _from_api(
    p: Pipeline,
    ref: Reference,
    subject: Digest,
    support: ReferrersSupport,
    configured: bool | None,
) -> list[Descriptor] | None:
    """The API's answer, or None when the registry does not have the API."""
    what = f"referrers of {subject} in {ref.name}"
    url: str | None = p.url(ref.registry, f"/v2/{ref.repository}/referrers/{subject}")
    out: list[Descriptor] = []
    pages = 0
    while url is not None and pages < MAX_PAGES:
        pages += 1
        resp = await p.request(
            "GET",
            ref.registry,
            url,
            kind="referrers",
            scopes=(ref.scope("pull"),),
            headers={"Accept": mediatype.OCI_INDEX},
        )
        if pages == 1 and resp.status in _UNSUPPORTED and configured is None:
            body = await resp.read(ERROR_BODY_LIMIT)
            codes = {d.code for d in parse_diagnostics(body)}
            if "NAME_UNKNOWN" not in codes:  # a missing repository says nothing about the API
                support.set(ref.registry, False)
            return None
        await raise_for_status(resp, "GET")
        data = await resp.read(INDEX_BODY_LIMIT)
        if len(data) > INDEX_BODY_LIMIT:
            raise RegistryError(resp.status, "GET", resp.url, body=f"{what}: index over 4 MiB")
        out.extend(_descriptors(data, what))
        support.set(ref.registry, True)
        nxt = next_link(resp.headers.getall("Link", []))
        url = join_url(resp.url, nxt) if nxt else None
    return out
