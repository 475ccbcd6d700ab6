"""``MockTransport``: a transport that hands each request to a function (httpx's idea), for tests."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Awaitable, Callable

from imagevet.registry.transport import Request, Response

__all__ = ["Handler", "MockTransport", "read_body"]

Handler = Callable[[Request], Response | Awaitable[Response]]


async def read_body(request: Request) -> bytes:
    """The whole body of ``request`` (an async-iterable body is consumed)."""
    body = request.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return b"".join([chunk async for chunk in _iterate(body)])


async def _iterate(body: AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    async for chunk in body:
        yield chunk


class MockTransport:
    """Answers each request with ``handler(request)``; records every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.closed = False

    async def send(self, request: Request) -> Response:
        self.requests.append(request)
        result = self.handler(request)
        resp = await result if inspect.isawaitable(result) else result
        if not resp.url:
            resp.url = request.url
        return resp

    async def aclose(self) -> None:
        self.closed = True
