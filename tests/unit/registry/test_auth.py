"""Token auth: challenges, one token fetch per scope set, expiry, re-auth, realm safety, Basic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import SecurityError, UnauthorizedError
from imagevet.reference import Reference
from imagevet.registry import Credential, RegistryHost, StaticCredentials
from imagevet.registry.mock import MockTransport
from imagevet.registry.transport import Request, Response
from tests.unit.registry.helpers import (
    REGISTRY,
    SERVICE,
    FakeRegistry,
    error,
    header,
    make_client,
    respond,
    sync,
)

DIGEST = Digest.of(b"manifest")
REF = Reference.parse(f"{REGISTRY}/team/app:1.0")
SRC = Reference.parse(f"{REGISTRY}/team/base:1.0")
CREDS = StaticCredentials({REGISTRY: Credential("alice", "pw-s3cret")})


def manifest_head(req: Request) -> Response:
    return respond(
        200,
        b"",
        {
            "Docker-Content-Digest": str(DIGEST),
            "Content-Type": mediatype.OCI_MANIFEST,
            "Content-Length": "8",
        },
    )


def with_manifest(reg: FakeRegistry) -> FakeRegistry:
    reg.route("HEAD", "/v2/team/app/manifests/1.0")(manifest_head)
    return reg


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_first_head_learns_then_one_request_per_head() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer"))
    client, transport = make_client(reg, credentials=CREDS)
    head = await client.head_manifest(REF)
    assert head is not None and head.digest == DIGEST
    # 401, token, retry
    assert [r.method for r in transport.requests] == ["HEAD", "GET", "HEAD"]
    assert reg.token_queries == [[("service", SERVICE), ("scope", "repository:team/app:pull")]]
    # the token request carried the Basic credentials, the registry got the Bearer token
    assert (
        header(
            transport.requests[1],
            "Authorization",
        )
        == "Basic YWxpY2U6cHctczNjcmV0"
    )
    assert header(transport.requests[2], "Authorization") == "Bearer tok-1"
    before = len(client.stats)
    for _ in range(5):
        await client.head_manifest(REF)
    assert len(client.stats) - before == 5
    assert client.stats.count("HEAD", "manifest") == 7
    assert client.stats.count(kind="token") == 1


async def test_concurrent_first_requests_share_one_challenge_and_token() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer"))
    client, transport = make_client(reg, credentials=CREDS)
    await asyncio.gather(*(client.head_manifest(REF) for _ in range(20)))
    assert client.stats.count(kind="token") == 1
    assert sum(1 for r in client.stats if r.status == 401) == 1
    assert client.stats.count("HEAD", "manifest") == 21


async def test_anonymous_token_has_no_authorization() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer"))
    client, transport = make_client(reg)
    await client.head_manifest(REF)
    assert header(reg.token_requests[0], "Authorization") is None


async def test_token_expiry_and_refresh_ahead() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer", expires_in=300))
    client, _ = make_client(reg, credentials=CREDS)
    clock = Clock()
    client._p.auth.clock = clock
    await client.head_manifest(REF)
    clock.now += 265  # inside the lifetime, before the refresh-ahead margin (30 s)
    await client.head_manifest(REF)
    assert len(reg.token_requests) == 1
    clock.now += 10  # 275 s: less than 30 s left, refreshed ahead of expiry
    await client.head_manifest(REF)
    assert len(reg.token_requests) == 2


async def test_default_lifetime_is_60_seconds() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer", expires_in=None))
    client, _ = make_client(reg, credentials=CREDS)
    clock = Clock()
    client._p.auth.clock = clock
    await client.head_manifest(REF)
    clock.now += 50
    await client.head_manifest(REF)
    assert len(reg.token_requests) == 1
    clock.now += 5  # 55 s: within the last 10 % (6 s)
    await client.head_manifest(REF)
    assert len(reg.token_requests) == 2


async def test_scopes_per_operation_and_cache_key() -> None:
    reg = FakeRegistry(auth="bearer")

    @reg.route("POST", "/v2/team/app/blobs/uploads/")
    def mount(req: Request) -> Response:
        return respond(201, b"", {"Location": f"/v2/team/app/blobs/{DIGEST}"})

    with_manifest(reg)
    client, _ = make_client(reg, credentials=CREDS)
    assert await client.mount_blob(REF, DIGEST, SRC) is True
    assert reg.token_queries[0] == [
        ("service", SERVICE),
        ("scope", "repository:team/app:pull,push"),
        ("scope", "repository:team/base:pull"),
    ]
    # a second mount and a pull need no new token for the mount, one for the pull scope
    await client.mount_blob(REF, DIGEST, SRC)
    await client.head_manifest(REF)
    await client.head_manifest(REF)
    assert [q[1:] for q in reg.token_queries] == [
        [("scope", "repository:team/app:pull,push"), ("scope", "repository:team/base:pull")],
        [("scope", "repository:team/app:pull")],
    ]
    keys = client._p.auth.cached_keys()
    assert ("https://auth.example/token", SERVICE, ("repository:team/app:pull",)) in keys


async def test_mid_run_401_reauthenticates_once() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer"))
    client, transport = make_client(reg, credentials=CREDS)
    await client.head_manifest(REF)
    reg.valid_tokens.clear()  # the registry forgets the token (revoked, clock skew ...)
    assert await client.head_manifest(REF) is not None
    assert len(reg.token_requests) == 2
    # a token that never works: one re-auth, then the 401 is an error
    reg.valid_tokens.clear()
    original = reg.issue

    def useless(req: Request) -> Response:
        resp = original(req)
        reg.valid_tokens.clear()
        return resp

    reg.issue = useless  # type: ignore[method-assign]
    n = len(transport.requests)
    with pytest.raises(UnauthorizedError):
        await client.head_manifest(REF)
    assert [r.method for r in transport.requests[n:]] == ["HEAD", "GET", "HEAD"]


async def test_refused_credentials() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer", token_status=401))
    client, _ = make_client(reg, credentials=CREDS)
    with pytest.raises(UnauthorizedError) as info:
        await client.head_manifest(REF)
    assert "s3cret" not in str(info.value)
    assert "refused the credentials" in str(info.value)


async def test_http_realm_refused_for_https_registry() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer", realm="http://auth.example/token"))
    client, transport = make_client(reg, credentials=CREDS)
    with pytest.raises(SecurityError, match="plain-HTTP token realm"):
        await client.head_manifest(REF)
    assert not any(r.url.startswith("http://auth.example") for r in transport.requests)


@pytest.mark.parametrize(
    ("realm", "host", "allowed"),
    [
        ("http://127.0.0.1:9000/token", RegistryHost(), True),
        ("http://evil.example/token", RegistryHost(), False),
        ("http://evil.example/token", RegistryHost(insecure=True), True),
        ("ftp://127.0.0.1/token", RegistryHost(), False),
        ("/relative/token", RegistryHost(), False),
    ],
)
async def test_realm_rules_for_plain_http_registry(
    realm: str, host: RegistryHost, allowed: bool
) -> None:
    ref = Reference.parse("127.0.0.1:5000/team/app:1.0")
    tokens: list[str] = []

    def handler(req: Request) -> Response:
        if req.url.startswith(realm):
            tokens.append(req.url)
            return respond(200, '{"token": "t1"}')
        if header(req, "Authorization") == "Bearer t1":
            return manifest_head(req)
        return respond(401, b"", {"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})

    client, _ = make_client(handler, hosts={"127.0.0.1:5000": host}, credentials=CREDS)
    if allowed:
        assert await client.head_manifest(ref) is not None
        assert len(tokens) == 1
    else:
        with pytest.raises(SecurityError):
            await client.head_manifest(ref)
        assert tokens == []


async def test_basic_auth() -> None:
    reg = with_manifest(FakeRegistry(auth="basic", basic=("alice", "pw-s3cret")))
    client, transport = make_client(reg, credentials=CREDS)
    assert await client.head_manifest(REF) is not None
    await client.head_manifest(REF)
    assert [r.method for r in transport.requests] == ["HEAD", "HEAD", "HEAD"]
    assert header(transport.requests[2], "Authorization") == "Basic YWxpY2U6cHctczNjcmV0"
    anonymous, _ = make_client(with_manifest(FakeRegistry(auth="basic")))
    with pytest.raises(UnauthorizedError):
        await anonymous.head_manifest(REF)
    wrong, t2 = make_client(
        with_manifest(FakeRegistry(auth="basic")),
        credentials=StaticCredentials({REGISTRY: Credential("alice", "wrong")}),
    )
    with pytest.raises(UnauthorizedError):
        await wrong.head_manifest(REF)
    assert len(t2.requests) == 2  # one retry with the credentials, no loop


async def test_identity_token_posts_refresh_token() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer"))
    creds = StaticCredentials({REGISTRY: Credential(identity_token="idt-s3cret")})
    client, _ = make_client(reg, credentials=creds)
    await client.head_manifest(REF)
    (req,) = reg.token_requests
    assert req.method == "POST"
    assert header(req, "Content-Type") == "application/x-www-form-urlencoded"
    from urllib.parse import parse_qsl

    assert isinstance(req.body, bytes)
    form = dict(parse_qsl(req.body.decode()))
    assert form == {
        "grant_type": "refresh_token",
        "service": SERVICE,
        "client_id": "imagevet",
        "refresh_token": "idt-s3cret",
        "scope": "repository:team/app:pull",
    }


async def test_identity_token_falls_back_to_basic_get() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer"))
    original = reg.issue

    def no_oauth(req: Request) -> Response:
        if req.method == "POST":
            return error(404, "NOT_FOUND")
        return original(req)

    reg.issue = no_oauth  # type: ignore[method-assign]
    creds = StaticCredentials({REGISTRY: Credential("bob", identity_token="idt-s3cret")})
    client, transport = make_client(reg, credentials=creds)
    assert await client.head_manifest(REF) is not None
    methods = [(r.method, r.url.split("?")[0]) for r in transport.requests]
    assert methods[1:3] == [
        ("POST", "https://auth.example/token"),
        ("GET", "https://auth.example/token"),
    ]
    assert header(transport.requests[2], "Authorization") == "Basic Ym9iOmlkdC1zM2NyZXQ="


async def test_token_not_sent_to_other_origin_upload_location() -> None:
    reg = FakeRegistry(auth="bearer")
    seen: list[Request] = []

    @reg.route("POST", "/v2/team/app/blobs/uploads/")
    def start(req: Request) -> Response:
        return respond(202, b"", {"Location": "https://storage.example/up/1?sig=a%2Bb"})

    def handler(req: Request) -> Response:
        if req.url.startswith("https://storage.example/"):
            seen.append(req)
            return respond(201, b"", {"Docker-Content-Digest": str(Digest.of(b"abc"))})
        return sync(reg, req)

    from imagevet.manifest import Descriptor

    client, _ = make_client(MockTransport(handler), credentials=CREDS)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"

    desc = Descriptor(mediatype.OCI_LAYER, Digest.of(b"abc"), 3)
    await client.push_blob(REF, desc, chunks())
    (put,) = seen
    assert header(put, "Authorization") is None
    assert (
        put.url
        == f"https://storage.example/up/1?sig=a%2Bb&digest={str(desc.digest).replace(':', '%3A')}"
    )


async def test_token_fetch_failure_reaches_every_waiter() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer", token_status=401))
    client, _ = make_client(reg, credentials=CREDS)
    results = await asyncio.gather(
        *(client.head_manifest(REF) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, UnauthorizedError) for r in results)


async def test_cancelled_token_fetch_does_not_fail_the_waiters() -> None:
    reg = with_manifest(FakeRegistry(auth="bearer"))
    reg.route("HEAD", "/v2/team/other/manifests/latest")(lambda r: respond(404))
    release = asyncio.Event()
    hung: list[Request] = []

    async def handler(req: Request) -> Response:
        if req.url.startswith("https://auth.example/") and "team%2Fapp" in req.url and not hung:
            hung.append(req)
            await release.wait()  # the first fetch of this scope never answers
        return sync(reg, req)

    client, _ = make_client(MockTransport(handler), credentials=CREDS)
    assert await client.head_manifest(Reference.parse(f"{REGISTRY}/team/other")) is None
    first = asyncio.create_task(client.head_manifest(REF))
    for _ in range(1000):
        if hung:
            break
        await asyncio.sleep(0.001)
    assert hung
    second = asyncio.create_task(client.head_manifest(REF))
    await asyncio.sleep(0.01)
    first.cancel()
    head = await asyncio.wait_for(second, 5)
    assert head is not None and head.digest == DIGEST
    assert first.cancelled()
