"""The public names of imagevet.registry: the contract the copy engine is written against."""

from __future__ import annotations

import inspect

import imagevet.registry as registry

CONTRACT = {
    "BlobStream",
    "Credential",
    "CredentialStore",
    "DockerConfigCredentials",
    "ManifestHead",
    "RegistryClient",
    "RegistryHost",
    "RequestStats",
    "RetryPolicy",
    "StaticCredentials",
    "Transport",
}
METHODS = {
    "ping",
    "head_manifest",
    "get_manifest",
    "put_manifest",
    "delete_manifest",
    "head_blob",
    "open_blob",
    "push_blob",
    "mount_blob",
    "list_tags",
    "referrers",
    "aclose",
    "__aenter__",
    "__aexit__",
}


def test_all_is_sorted_complete_and_importable() -> None:
    assert registry.__all__ == sorted(registry.__all__)
    assert set(registry.__all__) >= CONTRACT
    for name in registry.__all__:
        assert getattr(registry, name) is not None


def test_client_methods_and_keyword_only_init() -> None:
    client = registry.RegistryClient
    assert set(dir(client)) >= METHODS
    params = inspect.signature(client.__init__).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in params.items() if n != "self")
    assert {
        "credentials",
        "hosts",
        "transport",
        "max_connections_per_host",
        "retry",
        "user_agent",
    } <= set(params)
    for name in METHODS - {"open_blob"}:
        assert inspect.iscoroutinefunction(getattr(client, name)), name
    assert not inspect.iscoroutinefunction(client.open_blob)
