"""Test infrastructure: registry processes, token server, image builders, pusher, fault proxy, fake registry.

Modules (import them directly, e.g. ``from tests.support.images import make_multiarch``):

- ``registry_process``: start/stop/kill Debian ``docker-registry`` (distribution 2.8) processes.
- ``token_server``: a Docker/distribution token service (JWT with an ``x5c`` header) in a thread.
- ``images``: deterministic synthetic images, indexes, referrers, cosign signatures.
- ``traps``: OCI conformance byte-exactness traps (nested/sparse index, sha512, ``data`` field...).
- ``pusher``: an independent aiohttp pusher/reader to seed and inspect registries.
- ``fault_proxy``: a streaming reverse proxy that corrupts, fails, cuts, delays and rate-limits.
- ``fake_registry``: an in-memory OCI distribution 1.1 registry with the native referrers API.
- ``ports``/``server_thread``: free ports, readiness polling, aiohttp apps in background threads.
"""
