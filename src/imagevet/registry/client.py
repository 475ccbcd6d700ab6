"""``RegistryClient``: the public face of the OCI distribution client.

One client holds one connection pool (one aiohttp session), the auth state of every registry it
talks to, the request counters and the last rate limit each registry reported.  Use it as an
async context manager, or call :meth:`RegistryClient.aclose`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING

from imagevet import __version__
from imagevet.digest import Digest
from imagevet.errors import RegistryError, UnauthorizedError
from imagevet.manifest import Descriptor, RawManifest
from imagevet.ratelimit import RateLimit
from imagevet.reference import Reference
from imagevet.registry import blobs, manifests, tags
from imagevet.registry import referrers as referrers_mod
from imagevet.registry.blobs import BlobStream
from imagevet.registry.credentials import CredentialStore
from imagevet.registry.hosts import RegistryHost
from imagevet.registry.manifests import ManifestHead
from imagevet.registry.pipeline import Pipeline
from imagevet.registry.responses import raise_for_status
from imagevet.registry.retry import RetryPolicy
from imagevet.registry.stats import RequestStats
from imagevet.registry.transport import AiohttpTransport, TransferTimeouts, Transport
from imagevet.store.protocol import BlobMounter, ImageStore, RateLimited

__all__ = ["DEFAULT_USER_AGENT", "RegistryClient"]

DEFAULT_USER_AGENT = f"imagevet/{__version__}"


class RegistryClient:
    """An async client for OCI distribution registries (Docker Hub included).

    Every argument is optional: ``credentials`` (anonymous when None), ``hosts`` (per-registry
    quirks, see :class:`RegistryHost`), ``transport`` (an :class:`AiohttpTransport` with
    ``max_connections_per_host`` when None), ``retry`` (``RetryPolicy()``), ``timeouts``
    (:class:`TransferTimeouts`: how long a connection, a response or a body may stall or crawl;
    the default transport uses its ``connect`` and ``idle`` too) and ``user_agent``.
    """

    def __init__(
        self,
        *,
        credentials: CredentialStore | None = None,
        hosts: Mapping[str, RegistryHost] | None = None,
        transport: Transport | None = None,
        max_connections_per_host: int = 16,
        retry: RetryPolicy | None = None,
        timeouts: TransferTimeouts | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.stats = RequestStats()
        self.ratelimits: dict[str, RateLimit] = {}
        self.timeouts = timeouts or TransferTimeouts()
        self._own_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(
            max_connections_per_host=max_connections_per_host,
            connect_timeout=self.timeouts.connect,
            read_timeout=self.timeouts.idle,
        )
        self._p = Pipeline(
            self._transport,
            credentials=credentials,
            hosts=hosts or {},
            retry=retry or RetryPolicy(),
            user_agent=user_agent,
            stats=self.stats,
            ratelimits=self.ratelimits,
            timeouts=self.timeouts,
        )
        self._referrers = referrers_mod.ReferrersSupport()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (a transport passed in is closed too)."""
        await self._transport.aclose()

    def host(self, registry: str) -> RegistryHost:
        """The settings used for ``registry`` (configured, or the defaults)."""
        return self._p.host(registry)

    # -- registry ------------------------------------------------------------------------------

    async def ping(self, ref: Reference) -> None:
        """Check that ``ref``'s registry speaks the v2 API and, when credentials exist, that they
        work."""
        resp = await self._p.request("GET", ref.registry, "/v2/", kind="ping", scopes=())
        if resp.status == 401:
            await resp.read(1 << 16)
            raise UnauthorizedError(
                401, "GET", resp.url, body="the registry requires credentials or refused them"
            )
        await raise_for_status(resp, "GET")
        await resp.read(1 << 16)
        if resp.status != 200:
            raise RegistryError(resp.status, "GET", resp.url, body="not a v2 registry")

    # -- manifests -----------------------------------------------------------------------------

    async def head_manifest(self, ref: Reference) -> ManifestHead | None:
        """Digest, media type and size of the manifest ``ref`` names; None on 404."""
        return await manifests.head_manifest(self._p, ref)

    async def get_manifest(self, ref: Reference) -> RawManifest:
        """The exact bytes of a manifest, verified against ``ref.digest`` and the digest header."""
        return await manifests.get_manifest(self._p, ref)

    async def put_manifest(self, ref: Reference, manifest: RawManifest) -> Digest:
        """Push ``manifest``'s exact bytes at ``ref.tag``, else ``ref.digest``, else its digest."""
        return await manifests.put_manifest(self._p, ref, manifest)

    async def delete_manifest(self, ref: Reference) -> None:
        """Delete the manifest ``ref`` names."""
        await manifests.delete_manifest(self._p, ref)

    # -- blobs ---------------------------------------------------------------------------------

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        """The size of blob ``digest`` in ``ref``'s repository, or None when absent."""
        return await blobs.head_blob(self._p, ref, digest)

    def open_blob(
        self, ref: Reference, desc: Descriptor
    ) -> AbstractAsyncContextManager[BlobStream]:
        """Stream a blob, verifying digest and size as bytes pass (see :class:`BlobStream`)."""
        return blobs.open_blob(self._p, ref, desc)

    async def push_blob(
        self, ref: Reference, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        """Upload a blob streamed from ``chunks`` (sent once: to retry, open the source again)."""
        await blobs.push_blob(self._p, ref, desc, chunks)

    async def mount_blob(self, ref: Reference, digest: Digest, from_ref: Reference) -> bool:
        """Mount a blob from another repository of the same registry; False when not mounted."""
        return await blobs.mount_blob(self._p, ref, digest, from_ref)

    # -- tags and referrers --------------------------------------------------------------------

    async def list_tags(self, ref: Reference, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``ref``'s repository, all pages."""
        return await tags.list_tags(self._p, ref, page_size=page_size)

    async def referrers(
        self, ref: Reference, subject: Digest, *, tag_schema: bool = True
    ) -> list[Descriptor]:
        """Descriptors of the manifests referring to ``subject`` (API, else the tag schema).

        ``tag_schema=False`` skips the fallback tag (a manifest GET, which Docker Hub may count as
        a pull) when the caller already knows from the tag list that there is no such tag.
        """
        return await referrers_mod.referrers(
            self._p, ref, subject, self._referrers, tag_schema=tag_schema
        )

    def request_counts(self) -> dict[str, int]:
        """Requests made so far, by method and kind (``HEAD manifest``: 12, ...)."""
        out: dict[str, int] = {}
        for record in self.stats:
            key = f"{record.method} {record.kind}"
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    def __repr__(self) -> str:
        return f"<RegistryClient {len(self.stats)} requests>"


if TYPE_CHECKING:  # the registry client is an image store with both optional abilities

    def _conforms(client: RegistryClient) -> tuple[ImageStore, BlobMounter, RateLimited]:
        return client, client, client
