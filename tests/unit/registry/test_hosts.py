"""Per-registry host data: HTTPS by default, plain HTTP for loopback or hosts named insecure."""

from __future__ import annotations

import pytest

from imagevet.errors import SecurityError
from imagevet.registry import RegistryClient, RegistryHost
from imagevet.registry.hosts import is_loopback, resolve_host
from imagevet.registry.mock import MockTransport
from imagevet.registry.transport import Response


@pytest.mark.parametrize(
    ("authority", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("LOCALHOST:5000", True),
        ("127.0.0.1:5000", True),
        ("127.9.8.7", True),
        ("[::1]:5000", True),
        ("[::1]", True),
        ("registry.localhost:80", True),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io:5000", False),
        ("10.0.0.1:5000", False),
        ("[::2]:5000", False),
        ("registry.example", False),
    ],
)
def test_is_loopback(authority: str, loopback: bool) -> None:
    assert is_loopback(authority) is loopback


@pytest.mark.parametrize(
    ("registry", "host", "base"),
    [
        ("docker.io", None, "https://registry-1.docker.io"),
        ("index.docker.io", None, "https://registry-1.docker.io"),
        ("ghcr.io", None, "https://ghcr.io"),
        ("localhost:5000", None, "http://localhost:5000"),
        ("127.0.0.1:5000", None, "http://127.0.0.1:5000"),
        ("[::1]:5000", None, "http://[::1]:5000"),
        ("127.0.0.1:5000", RegistryHost(scheme="https"), "https://127.0.0.1:5000"),
        ("10.1.2.3:5000", RegistryHost(scheme="http", insecure=True), "http://10.1.2.3:5000"),
        ("10.1.2.3:5000", RegistryHost(insecure=True), "https://10.1.2.3:5000"),
        ("mirror", RegistryHost(endpoint="127.0.0.1:6000"), "http://127.0.0.1:6000"),
    ],
)
def test_base_url(registry: str, host: RegistryHost | None, base: str) -> None:
    hosts = {registry: host} if host else {}
    assert resolve_host(registry, hosts).base_url(registry) == base


def test_plain_http_refused_off_loopback() -> None:
    with pytest.raises(SecurityError, match="plain HTTP"):
        RegistryHost(scheme="http").base_url("registry.example")
    with pytest.raises(SecurityError):
        RegistryClient(
            hosts={"registry.example": RegistryHost(scheme="http")},
            transport=MockTransport(lambda r: Response.from_bytes(200)),
        )


def test_hub_aliases_share_a_host_entry() -> None:
    hosts = {"docker.io": RegistryHost(chunked_upload=True)}
    assert resolve_host("index.docker.io", hosts).chunked_upload


def test_invalid_host_values() -> None:
    with pytest.raises(ValueError):
        RegistryHost(chunk_size=0)
    with pytest.raises(ValueError):
        RegistryHost(scheme="ftp")  # type: ignore[arg-type]
