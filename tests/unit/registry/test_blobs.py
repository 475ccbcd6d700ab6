"""Blobs: HEAD, verified streaming GET with hand-followed redirects, uploads, mounts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import (
    DigestMismatchError,
    LimitExceededError,
    RegistryError,
    SecurityError,
)
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.registry import Credential, RegistryHost, StaticCredentials
from imagevet.registry.mock import MockTransport, read_body
from imagevet.registry.pipeline import MAX_REDIRECTS
from imagevet.registry.transport import Request, Response
from tests.unit.registry.helpers import (
    REGISTRY,
    FakeRegistry,
    error,
    header,
    make_client,
    query_of,
    respond,
    sync,
)

DATA = bytes(range(256)) * 1000  # 256 000 bytes
DESC = Descriptor(mediatype.OCI_LAYER, Digest.of(DATA), len(DATA))
REF = Reference.parse(f"{REGISTRY}/team/app:1.0")
SRC = Reference.parse(f"{REGISTRY}/team/base")
CREDS = StaticCredentials({REGISTRY: Credential("alice", "pw-s3cret")})
BLOB_PATH = f"/v2/team/app/blobs/{DESC.digest}"
SIGNED = "https://cdn.example/blobs/abc?X-Amz-Signature=ab%2Bcd%3D%27ef&X-Expires=60"


async def aiter(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read_all(client: object, ref: Reference, desc: Descriptor) -> bytes:
    async with client.open_blob(ref, desc) as stream:  # type: ignore[attr-defined]
        assert stream.size == desc.size
        return b"".join([c async for c in stream])


async def test_head_blob() -> None:
    reg = FakeRegistry()
    reg.route("HEAD", BLOB_PATH)(lambda r: respond(200, b"", {"Content-Length": str(len(DATA))}))
    client, _ = make_client(reg)
    assert await client.head_blob(REF, DESC.digest) == len(DATA)
    assert await client.head_blob(REF, Digest.of(b"other")) is None
    assert client.stats.count("HEAD", "blob") == 2


async def test_open_blob_streams_and_verifies() -> None:
    reg = FakeRegistry()
    reg.route("GET", BLOB_PATH)(lambda r: Response.from_bytes(200, {}, DATA, chunk_size=4096))
    client, _ = make_client(reg)
    assert await read_all(client, REF, DESC) == DATA


async def test_corrupt_blob_raises_at_end() -> None:
    bad = DATA[:-1] + b"\x00"
    reg = FakeRegistry()
    reg.route("GET", BLOB_PATH)(lambda r: Response.from_bytes(200, {}, bad, chunk_size=4096))
    client, _ = make_client(reg)
    with pytest.raises(DigestMismatchError) as info:
        await read_all(client, REF, DESC)
    assert info.value.expected == str(DESC.digest)


async def test_oversized_blob_raises_as_soon_as_size_exceeded() -> None:
    big = DATA + b"x" * 100_000
    reg = FakeRegistry()
    # no Content-Length check possible: the header lies the same way the body does
    reg.route("GET", BLOB_PATH)(
        lambda r: Response.from_bytes(200, {"Content-Length": str(len(DATA))}, big, chunk_size=4096)
    )
    client, _ = make_client(reg)
    got = 0
    with pytest.raises(DigestMismatchError, match="more than"):
        async with client.open_blob(REF, DESC) as stream:
            async for chunk in stream:
                got += len(chunk)
    assert got <= len(DATA)


async def test_wrong_content_length_refused_before_reading() -> None:
    reg = FakeRegistry()
    reg.route("GET", BLOB_PATH)(lambda r: respond(200, DATA[:10]))
    client, _ = make_client(reg)
    with pytest.raises(DigestMismatchError, match="10 bytes"):
        await read_all(client, REF, DESC)


def redirecting(reg: FakeRegistry, location: str, cdn: list[Request]) -> MockTransport:
    reg.route("GET", BLOB_PATH)(lambda r: respond(307, b"", {"Location": location}))

    def handler(req: Request) -> Response:
        if req.url.startswith(("https://cdn.example/", "http://cdn.example/")):
            cdn.append(req)
            return Response.from_bytes(200, {}, DATA)
        return sync(reg, req)

    return MockTransport(handler)


async def test_redirect_cross_origin_drops_authorization_keeps_query_bytes() -> None:
    reg = FakeRegistry(auth="bearer")
    cdn: list[Request] = []
    client, transport = make_client(redirecting(reg, SIGNED, cdn), credentials=CREDS)
    assert await read_all(client, REF, DESC) == DATA
    (req,) = cdn
    assert req.url == SIGNED  # byte for byte: %2B %3D %27 untouched
    assert header(req, "Authorization") is None
    assert header(
        transport.requests[-2],
        "Authorization",
    ).startswith("Bearer ")  # type: ignore[union-attr]
    assert client.stats.count("GET", "blob") == 3  # 401, 307, CDN


async def test_a_401_from_a_redirect_hop_cannot_redirect_credentials() -> None:
    """A storage host answering 401 with its own realm must not receive the registry's password."""
    reg = FakeRegistry(auth="bearer")
    elsewhere: list[Request] = []

    def handler(req: Request) -> Response:
        if req.url.startswith("https://cdn.example/"):
            return respond(401, b"", {"WWW-Authenticate": 'Bearer realm="https://evil.example/token"'})
        if req.url.startswith("https://evil.example/"):
            elsewhere.append(req)
            return respond(200, b'{"token": "stolen"}')
        if req.method == "GET" and req.url.endswith(BLOB_PATH):
            return respond(307, b"", {"Location": SIGNED})
        return sync(reg, req)

    client, _ = make_client(MockTransport(handler), credentials=CREDS)
    for _ in range(2):
        with pytest.raises(RegistryError) as info:
            await read_all(client, REF, DESC)
        assert info.value.status == 401
    assert elsewhere == []


async def test_redirect_same_origin_keeps_authorization() -> None:
    reg = FakeRegistry(auth="basic", basic=("alice", "pw-s3cret"))
    reg.route("GET", "/v2/team/app/blobs/elsewhere")(lambda r: Response.from_bytes(200, {}, DATA))
    reg.route("GET", BLOB_PATH)(lambda r: respond(302, b"", {"Location": "elsewhere?x=%2B"}))
    client, transport = make_client(reg, credentials=CREDS)
    assert await read_all(client, REF, DESC) == DATA
    last = transport.requests[-1]
    assert last.url == f"https://{REGISTRY}/v2/team/app/blobs/elsewhere?x=%2B"
    assert header(last, "Authorization") is not None


async def test_redirect_downgrade_to_http_refused() -> None:
    cdn: list[Request] = []
    client, _ = make_client(redirecting(FakeRegistry(), "http://cdn.example/x", cdn))
    with pytest.raises(SecurityError):
        await read_all(client, REF, DESC)
    assert cdn == []


async def test_redirect_loop_is_bounded() -> None:
    reg = FakeRegistry()
    reg.route("GET", BLOB_PATH)(lambda r: respond(307, b"", {"Location": BLOB_PATH}))
    client, transport = make_client(reg, retry=None)
    with pytest.raises(LimitExceededError, match="redirect loop"):
        await read_all(client, REF, DESC)
    assert len(transport.requests) == 1  # detected at once, and not retried


async def test_redirect_chain_is_bounded_and_not_retried() -> None:
    reg = FakeRegistry()
    hops = iter(range(1000))
    reg.route("GET", BLOB_PATH)(
        lambda r: respond(307, b"", {"Location": f"{BLOB_PATH}?hop={next(hops)}"})
    )
    client, transport = make_client(reg, retry=None)
    with pytest.raises(LimitExceededError, match=f"more than {MAX_REDIRECTS} redirects"):
        await read_all(client, REF, DESC)
    assert len(transport.requests) == MAX_REDIRECTS + 1


async def test_push_monolithic_streams_with_content_length() -> None:
    reg = FakeRegistry(auth="bearer")
    puts: list[tuple[Request, bytes]] = []

    @reg.route("POST", "/v2/team/app/blobs/uploads/")
    def start(req: Request) -> Response:
        assert header(req, "Content-Length") == "0"
        return respond(202, b"", {"Location": "/v2/team/app/blobs/uploads/u1?_state=a%2Bb%3D%3D"})

    @reg.route("PUT", "/v2/team/app/blobs/uploads/u1")
    async def put(req: Request) -> Response:
        assert not isinstance(req.body, bytes)  # streamed, never joined in memory
        puts.append((req, await read_body(req)))
        return respond(201, b"", {"Docker-Content-Digest": str(DESC.digest)})

    client, transport = make_client(MockTransport(reg), credentials=CREDS)
    await client.push_blob(REF, DESC, aiter(DATA))
    ((req, body),) = puts
    assert body == DATA
    assert header(req, "Content-Length") == str(len(DATA))
    assert header(req, "Content-Type") == "application/octet-stream"
    assert req.url.endswith(f"?_state=a%2Bb%3D%3D&digest={str(DESC.digest).replace(':', '%3A')}")
    assert query_of(req)[-1] == ("digest", str(DESC.digest))
    assert client.stats.count(kind="upload") == 3  # POST 401, POST, PUT


async def test_push_put_is_never_retried_nor_redirected() -> None:
    reg = FakeRegistry()
    reg.route("POST", "/v2/team/app/blobs/uploads/")(
        lambda r: respond(202, b"", {"Location": "/v2/team/app/blobs/uploads/u1"})
    )
    reg.route("PUT", "/v2/team/app/blobs/uploads/u1")(lambda r: error(503, "UNAVAILABLE"))
    reg.route("DELETE", "/v2/team/app/blobs/uploads/u1")(lambda r: respond(204))
    client, _ = make_client(reg)
    with pytest.raises(RegistryError) as info:
        await client.push_blob(REF, DESC, aiter(DATA))
    assert info.value.status == 503
    assert client.stats.count("PUT", "upload") == 1
    assert client.stats.count("DELETE", "upload") == 1  # the session is abandoned

    reg.route("PUT", "/v2/team/app/blobs/uploads/u1")(
        lambda r: respond(307, b"", {"Location": "https://cdn.example/elsewhere"})
    )
    with pytest.raises(RegistryError) as info:
        await client.push_blob(REF, DESC, aiter(DATA))
    assert info.value.status == 307
    assert client.stats.count("PUT", "upload") == 2


async def test_post_redirect_not_followed() -> None:
    reg = FakeRegistry()
    reg.route("POST", "/v2/team/app/blobs/uploads/")(
        lambda r: respond(307, b"", {"Location": "https://cdn.example/x"})
    )
    client, transport = make_client(reg)
    with pytest.raises(RegistryError):
        await client.push_blob(REF, DESC, aiter(DATA))
    assert [r.method for r in transport.requests] == ["POST"]


async def test_push_digest_invalid_is_digest_mismatch() -> None:
    reg = FakeRegistry()
    reg.route("POST", "/v2/team/app/blobs/uploads/")(
        lambda r: respond(
            202, b"", {"Location": "https://registry.example/v2/team/app/blobs/uploads/u1"}
        )
    )
    reg.route("PUT", "/v2/team/app/blobs/uploads/u1")(
        lambda r: error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
    )
    reg.route("DELETE", "/v2/team/app/blobs/uploads/u1")(lambda r: respond(204))
    client, _ = make_client(reg)
    with pytest.raises(DigestMismatchError, match="did not match"):
        await client.push_blob(REF, DESC, aiter(DATA))


async def test_push_refuses_a_stream_of_the_wrong_size() -> None:
    reg = FakeRegistry()
    reg.route("POST", "/v2/team/app/blobs/uploads/")(
        lambda r: respond(202, b"", {"Location": "/v2/team/app/blobs/uploads/u1"})
    )

    async def put(req: Request) -> Response:
        await read_body(req)
        return respond(201)

    reg.routes[("PUT", "/v2/team/app/blobs/uploads/u1")] = put
    reg.route("DELETE", "/v2/team/app/blobs/uploads/u1")(lambda r: respond(204))
    client, _ = make_client(MockTransport(reg))
    with pytest.raises(DigestMismatchError, match="bytes"):
        await client.push_blob(REF, DESC, aiter(DATA[:-1]))
    with pytest.raises(DigestMismatchError, match="more than"):
        await client.push_blob(REF, DESC, aiter(DATA + b"!"))


async def test_chunked_upload_when_host_opts_in() -> None:
    reg = FakeRegistry()
    patches: list[tuple[str | None, bytes]] = []
    reg.route("POST", "/v2/team/app/blobs/uploads/")(
        lambda r: respond(202, b"", {"Location": "/v2/team/app/blobs/uploads/u0"})
    )
    for i in range(3):

        def patch(req: Request, i: int = i) -> Response:
            assert isinstance(req.body, bytes)
            patches.append((header(req, "Content-Range"), req.body))
            return respond(202, b"", {"Location": f"/v2/team/app/blobs/uploads/u{i + 1}?s={i}"})

        reg.route("PATCH", f"/v2/team/app/blobs/uploads/u{i}")(patch)
    finals: list[Request] = []

    def final(req: Request) -> Response:
        finals.append(req)
        return respond(201)

    reg.route("PUT", "/v2/team/app/blobs/uploads/u3")(final)
    hosts = {REGISTRY: RegistryHost(chunked_upload=True, chunk_size=100_000)}
    client, _ = make_client(reg, hosts=hosts)
    await client.push_blob(REF, DESC, aiter(DATA))
    assert [p[0] for p in patches] == ["0-99999", "100000-199999", "200000-255999"]
    assert b"".join(p[1] for p in patches) == DATA
    (put,) = finals
    assert put.url.endswith("/u3?s=2&digest=" + str(DESC.digest).replace(":", "%3A"))
    assert put.body == b""
    # a blob no larger than one chunk goes monolithic even then
    small = Descriptor(mediatype.OCI_LAYER, Digest.of(b"tiny"), 4)
    reg.route("PUT", "/v2/team/app/blobs/uploads/u0")(lambda r: respond(201))
    await client.push_blob(REF, small, aiter(b"tiny"))
    assert client.stats.count("PATCH") == 3


async def test_mount() -> None:
    reg = FakeRegistry()
    answers = [
        respond(201, b"", {"Location": f"/v2/team/app/blobs/{DESC.digest}"}),
        respond(202, b"", {"Location": "/v2/team/app/blobs/uploads/u9"}),
    ]
    mounts: list[Request] = []

    def post(req: Request) -> Response:
        mounts.append(req)
        return answers.pop(0)

    reg.route("POST", "/v2/team/app/blobs/uploads/")(post)
    deleted: list[str] = []

    def delete(req: Request) -> Response:
        deleted.append(req.url)
        return error(500, "BOOM")

    reg.route("DELETE", "/v2/team/app/blobs/uploads/u9")(delete)
    client, _ = make_client(reg, retry=None)
    assert await client.mount_blob(REF, DESC.digest, SRC) is True
    assert query_of(mounts[0]) == [("mount", str(DESC.digest)), ("from", "team/base")]
    assert header(mounts[0], "Content-Length") == "0"
    assert await client.mount_blob(REF, DESC.digest, SRC) is False
    assert deleted == [f"https://{REGISTRY}/v2/team/app/blobs/uploads/u9"]
    n = len(client.stats)
    other = Reference.parse("other.example/team/base")
    assert await client.mount_blob(REF, DESC.digest, other) is False
    assert len(client.stats) == n
