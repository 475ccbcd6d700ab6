"""The OCI distribution client: manifests, blobs, tags and referrers over HTTP, byte for byte.

Layers, bottom up: :mod:`.transport` (the HTTP seam; aiohttp stays below it), :mod:`.hosts`
(per-registry quirks as data), :mod:`.credentials` and :mod:`.auth` (Docker credentials, token
service), :mod:`.retry`, :mod:`.pipeline` (one request: auth, redirects, retries, accounting),
then one module per resource (:mod:`.manifests`, :mod:`.blobs`, :mod:`.tags`,
:mod:`.referrers`) and :mod:`.client`, which ties them together as :class:`RegistryClient`.
"""

from __future__ import annotations

from imagevet.registry.blobs import BlobStream
from imagevet.registry.client import RegistryClient
from imagevet.registry.credentials import (
    ChainCredentials,
    Credential,
    CredentialStore,
    DockerConfigCredentials,
    StaticCredentials,
)
from imagevet.registry.hosts import RegistryHost
from imagevet.registry.manifests import ManifestHead
from imagevet.registry.retry import RetryPolicy
from imagevet.registry.stats import RequestRecord, RequestStats
from imagevet.registry.transport import (
    AiohttpTransport,
    Request,
    Response,
    TransferTimeouts,
    Transport,
)

__all__ = [
    "AiohttpTransport",
    "BlobStream",
    "ChainCredentials",
    "Credential",
    "CredentialStore",
    "DockerConfigCredentials",
    "ManifestHead",
    "RegistryClient",
    "RegistryHost",
    "Request",
    "RequestRecord",
    "RequestStats",
    "Response",
    "RetryPolicy",
    "StaticCredentials",
    "TransferTimeouts",
    "Transport",
]
