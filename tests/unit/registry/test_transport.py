"""AiohttpTransport against a real aiohttp server on 127.0.0.1: bytes on the wire as we mean them."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from imagevet.errors import TransportError
from imagevet.registry import AiohttpTransport
from imagevet.registry.transport import Request

SIGNED_QUERY = "X-Amz-Signature=ab%2Bcd%3D%27ef&X-Amz-Credential=a%2Fb"


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []
    raw: list[str] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        raw.append(request.raw_path)
        if request.path == "/gzip":
            return web.Response(
                body=gzip.compress(b"payload"), headers={"Content-Encoding": "gzip"}
            )
        if request.path == "/redirect":
            raise web.HTTPTemporaryRedirect("/elsewhere")
        if request.path == "/upload":
            body = await request.read()
            return web.Response(
                text=f"{len(body)} {request.headers.get('Content-Length')} "
                f"{request.headers.get('Transfer-Encoding')}"
            )
        return web.Response(text=request.raw_path)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_query_sent_byte_exact_and_identity_encoding(
    server: tuple[str, list[web.Request]],
) -> None:
    base, seen = server
    t = AiohttpTransport()
    try:
        resp = await t.send(Request("GET", f"{base}/b?{SIGNED_QUERY}"))
        body = await resp.read(1 << 20)
        assert body.decode() == f"/b?{SIGNED_QUERY}"
        assert seen[0].headers["Accept-Encoding"] == "identity"
        assert "User-Agent" not in seen[0].headers or "aiohttp" not in seen[0].headers["User-Agent"]
        resp = await t.send(Request("GET", f"{base}/gzip"))
        assert await resp.read(1 << 20) == gzip.compress(b"payload")  # not decompressed
    finally:
        await t.aclose()


async def test_no_redirect_following(server: tuple[str, list[web.Request]]) -> None:
    base, seen = server
    t = AiohttpTransport()
    try:
        resp = await t.send(Request("GET", f"{base}/redirect"))
        assert resp.status == 307 and resp.headers["Location"] == "/elsewhere"
        await resp.aclose()
        assert len(seen) == 1
    finally:
        await t.aclose()


async def test_streamed_body_with_length_is_not_chunked(
    server: tuple[str, list[web.Request]],
) -> None:
    base, _ = server

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 100_000

    t = AiohttpTransport()
    try:
        resp = await t.send(Request("PUT", f"{base}/upload", {"Content-Length": "1000000"}, body()))
        assert (await resp.read(1000)).decode() == "1000000 1000000 None"
    finally:
        await t.aclose()


async def test_body_stream_error_reaches_caller_as_is(
    server: tuple[str, list[web.Request]],
) -> None:
    base, _ = server

    class Boom(Exception):
        pass

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise Boom("source failed")

    t = AiohttpTransport()
    try:
        with pytest.raises(Boom):
            await t.send(Request("PUT", f"{base}/upload", {"Content-Length": "5000"}, body()))
        resp = await t.send(Request("GET", f"{base}/after"))  # the pool still works
        assert resp.status == 200
        await resp.aclose()
    finally:
        await t.aclose()


async def test_connection_refused_is_transport_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = AiohttpTransport(connect_timeout=2)
    try:
        with pytest.raises(TransportError, match="cannot connect") as info:
            await t.send(Request("GET", f"http://127.0.0.1:{port}/v2/?token=s3cret"))
        assert "s3cret" not in str(info.value)
    finally:
        await t.aclose()


async def test_a_closed_transport_opens_no_new_session(server: tuple[str, list[web.Request]]) -> None:
    """A straggling request after ``aclose`` is refused (and not retried) instead of opening a
    session nobody closes ("Unclosed client session" at exit)."""
    url, seen = server
    t = AiohttpTransport()
    resp = await t.send(Request("GET", f"{url}/before"))
    await resp.aclose()
    await t.aclose()
    with pytest.raises(TransportError, match="closed") as info:
        await t.send(Request("GET", f"{url}/after"))
    assert info.value.exhausted
    assert [r.path for r in seen] == ["/before"]
    assert t._session is None
