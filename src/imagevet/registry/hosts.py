"""Per-registry quirks as data: endpoint, scheme, upload mode, referrers API, concurrency.

Rules (no flow elsewhere tests a host name):

* HTTPS by default.  Plain HTTP is the default only for loopback registries (``localhost``,
  ``127.0.0.0/8``, ``[::1]``), and is refused for any other host unless it is named insecure.
* Docker Hub's registry is ``docker.io``; its API endpoint is ``registry-1.docker.io``.
* Chunked (PATCH) uploads are an opt-in per host: some registries mishandle them (ECR keeps only
  the first chunk), and one streamed PUT is faster everywhere else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from imagevet.errors import SecurityError
from imagevet.reference import DOCKER_HUB, canonical_registry

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DOCKER_HUB_ENDPOINT",
    "RegistryHost",
    "is_loopback",
    "resolve_host",
]

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
DEFAULT_CHUNK_SIZE = 16 << 20

Scheme = Literal["http", "https"]


def _hostname(authority: str) -> str:
    """``host`` from ``host[:port]`` or ``[v6][:port]``, lowercased, without brackets."""
    authority = authority.rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority[1 : authority.find("]")].lower()
    return authority.rsplit(":", 1)[0].lower() if authority.count(":") == 1 else authority.lower()


def is_loopback(authority: str) -> bool:
    """Whether ``host[:port]`` names this machine: ``localhost``, 127.0.0.0/8 or ::1."""
    host = _hostname(authority)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RegistryHost:
    """How to talk to one registry.  Every field has a working default.

    * ``endpoint``: ``host[:port]`` to connect to (default: the registry name; Hub's API host
      for ``docker.io``).
    * ``scheme``: ``"https"`` or ``"http"``; ``None`` picks HTTPS, or HTTP for loopback.
    * ``insecure``: allow plain HTTP to a host that is not loopback.
    * ``chunked_upload``: upload blobs larger than ``chunk_size`` with PATCH requests of that
      size instead of one streamed PUT.
    * ``referrers_api``: ``None`` probes the OCI 1.1 referrers API; ``False`` always uses the
      ``sha256-<hex>`` tag schema; ``True`` never falls back.
    * ``concurrency``: how many blob transfers the copy engine should run against this host
      (``None``: its own default).
    """

    endpoint: str | None = None
    scheme: Scheme | None = None
    insecure: bool = False
    chunked_upload: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    referrers_api: bool | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        if self.scheme not in (None, "http", "https"):
            raise ValueError(f"scheme must be 'http' or 'https', not {self.scheme!r}")
        if self.chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        if self.concurrency is not None and self.concurrency <= 0:
            raise ValueError("concurrency must be positive")

    def base_url(self, registry: str) -> str:
        """``scheme://endpoint`` for ``registry``, checking the plain-HTTP rule."""
        endpoint = self.endpoint or default_endpoint(registry)
        scheme = self.scheme or ("http" if is_loopback(endpoint) else "https")
        if scheme == "http" and not (self.insecure or is_loopback(endpoint)):
            raise SecurityError(
                f"refusing plain HTTP to {endpoint}: only loopback registries may use HTTP "
                "unless the host is configured as insecure"
            )
        return f"{scheme}://{endpoint}"

    def allows_plain_http_to(self, authority: str) -> bool:
        """Whether credentials may be sent over plain HTTP to ``authority`` (a token realm)."""
        return is_loopback(authority) or self.insecure


def default_endpoint(registry: str) -> str:
    """The API host of ``registry``: Hub's is ``registry-1.docker.io``, others are themselves."""
    return DOCKER_HUB_ENDPOINT if canonical_registry(registry) == DOCKER_HUB else registry


def resolve_host(registry: str, hosts: Mapping[str, RegistryHost]) -> RegistryHost:
    """The configured host for ``registry`` (Hub's aliases folded), else the defaults."""
    host = hosts.get(registry) or hosts.get(canonical_registry(registry))
    if host is None:
        host = RegistryHost()
    if host.endpoint is None:
        host = replace(host, endpoint=default_endpoint(registry))
    return host
