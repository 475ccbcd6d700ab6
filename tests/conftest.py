"""Shared fixtures: real registries (plain, basic, token), token server, per-test repositories,
fault proxy, fake registry, and an environment scrubbed of the developer's Docker credentials.

Registries and servers are session-scoped and started only when a test asks for them; a missing
tool is a fixture error with the reason, never a skip. Nothing here outlives the test session.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_hub import fake_hub, fake_hub_registry  # noqa: F401  (fixtures for every test)
from tests.support.fake_registry import FakeRegistry, start_fake_registry
from tests.support.fault_proxy import FaultProxy, start_fault_proxy
from tests.support.registry_process import (
    ALICE,
    ALICE_PASSWORD,
    READER,
    READER_PASSWORD,
    RunningRegistry,
    start_registry,
)
from tests.support.token_server import TokenServer, start_token_server

TOKEN_USERS = {ALICE: ALICE_PASSWORD, READER: READER_PASSWORD}


def token_acl(user: str | None, repository: str, wanted: set[str]) -> set[str]:
    """ACL of the shared token server: alice gets everything, reader and anonymous pull only."""
    if user is None or user == READER:
        return wanted & {"pull"}
    return set(wanted)


# -- environment -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_imagevet_logger() -> Iterator[None]:
    """In-process CLI runs configure the ``imagevet`` logger; give later tests (caplog) it back."""
    logger = logging.getLogger("imagevet")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


@pytest.fixture(autouse=True)
def _isolated_docker_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Point HOME at an empty directory and drop every Docker/containers credential variable."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var in (
        "DOCKER_CONFIG",
        "DOCKER_AUTH_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
    ):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return home


# -- registries --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A ``docker-registry`` with no auth, shared by the session (use ``unique_repo``)."""
    reg = start_registry(tmp_path_factory.mktemp("plain-registry"))
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A ``docker-registry`` with htpasswd Basic auth: alice / alice-pw-s3cret."""
    reg = start_registry(tmp_path_factory.mktemp("basic-registry"), auth="basic")
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """The token server behind ``token_registry`` (alice: all; reader: pull; anonymous: pull)."""
    ts = start_token_server(
        tmp_path_factory.mktemp("token-server"), users=TOKEN_USERS, acl=token_acl
    )
    yield ts
    ts.stop()


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[RunningRegistry]:
    """A ``docker-registry`` with token auth via ``token_server``; ``.username`` is alice."""
    reg = start_registry(
        tmp_path_factory.mktemp("token-registry"), auth="token", token_server=token_server
    )
    yield reg
    reg.close()


@pytest.fixture(autouse=True)
def _restore_token_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """Undo a test's changes to the shared token server (acl, users, expires_in)."""
    if "token_server" not in request.fixturenames and "token_registry" not in request.fixturenames:
        yield
        return
    ts: TokenServer = request.getfixturevalue("token_server")
    saved = (ts.acl, dict(ts.users), ts.expires_in)
    yield
    ts.acl, ts.users, ts.expires_in = saved[0], saved[1], saved[2]


RegistryFactory = Callable[..., RunningRegistry]


@pytest.fixture
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """``registry_factory(auth="none"|"basic"|"token", **kw)``: a private registry, closed after the test.

    A token registry gets its own token server (``reg.token_server``) with alice and reader.
    """
    started: list[RunningRegistry] = []

    def make(auth: str = "none", **kw: Any) -> RunningRegistry:
        workdir = tmp_path_factory.mktemp(f"registry-{auth}")
        if auth == "token" and "token_server" not in kw:
            kw["token_server"] = start_token_server(
                workdir / "token-server", users=TOKEN_USERS, acl=token_acl
            )
            kw["_owned"] = True
        owned = kw.pop("_owned", False)
        try:
            reg = start_registry(workdir, auth=auth, **kw)
        except BaseException:
            if owned:
                kw["token_server"].stop()
            raise
        reg._owns_token_server = reg._owns_token_server or owned
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.close()


_repo_counter = itertools.count()


@pytest.fixture
def unique_repo(request: pytest.FixtureRequest) -> str:
    """A fresh repository path for this test: ``test/<test-name>-<n>``."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-") or "t"
    return f"test/{name}-{next(_repo_counter)}"


# -- fault proxy -------------------------------------------------------------------------------------

FaultProxyFactory = Callable[[Any], FaultProxy]


@pytest.fixture
def fault_proxy() -> Iterator[FaultProxyFactory]:
    """``fault_proxy(upstream)``: a FaultProxy in front of a registry (object or URL), stopped after the test.

    Point the client at ``proxy.url``/``proxy.host``; ``proxy.username``/``password`` mirror the upstream's.
    """
    started: list[FaultProxy] = []

    def make(upstream: Any) -> FaultProxy:
        proxy = start_fault_proxy(upstream)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


# -- fake registry -----------------------------------------------------------------------------------

FakeRegistryFactory = Callable[..., FakeRegistry]


@pytest.fixture
def fake_registry_factory() -> Iterator[FakeRegistryFactory]:
    """``fake_registry_factory(**options)``: FakeRegistry instances (options: require_auth,
    token_server, referrers_api, redirect_blobs, mount, check_blobs, check_children,
    tags_page_size), stopped after the test."""
    started: list[FakeRegistry] = []

    def make(**options: Any) -> FakeRegistry:
        fake = start_fake_registry(**options)
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def fake_registry(fake_registry_factory: FakeRegistryFactory) -> FakeRegistry:
    """A running FakeRegistry with default options (no auth, referrers API on, no redirects)."""
    return fake_registry_factory()
