"""The HTTP seam: a one-method ``Transport`` Protocol and its aiohttp implementation.

Everything above this module speaks :class:`Request` and :class:`Response`; nothing above it
imports aiohttp.  ``AiohttpTransport`` is the one place where aiohttp exceptions are translated
into :class:`~imagevet.errors.TransportError`, and where aiohttp's defaults that would break
byte-exact copies are turned off:

* ``Accept-Encoding: identity`` and ``auto_decompress=False`` (a gzip layer must not be undone);
* URLs are passed with ``encoded=True`` so presigned query strings are sent byte for byte;
* redirects are never followed here (``allow_redirects=False``): the client follows them by
  hand, for GET and HEAD only, and decides which headers may go to another origin.

Bounded time: :class:`TransferTimeouts` says how long a connection, a response and a body may
stall or crawl; :meth:`Response.pace` makes a body fail with
:class:`~imagevet.errors.TransferTimeoutError` when it does (curl's low-speed limit, plus an idle
timeout per read).
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
)
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from imagevet.errors import TransferTimeoutError, TransportError, redact_url

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AiohttpTransport",
    "Body",
    "Request",
    "Response",
    "TransferTimeouts",
    "Transport",
    "send_watched",
]

#: Largest piece a response body stream yields (it yields what is buffered, up to this).
DEFAULT_CHUNK_SIZE = 1 << 20
#: aiohttp's per-connection read buffer (backpressure starts at twice this).
DEFAULT_READ_BUFSIZE = 1 << 18

Body = bytes | AsyncIterable[bytes] | None


@dataclass(frozen=True, slots=True)
class TransferTimeouts:
    """How long a transfer may stall or crawl before it fails (seconds, bytes per second).

    * ``connect``: to open a connection;
    * ``idle``: without a byte, waiting for a response's headers or for the next piece of its body;
    * ``min_rate`` over ``window``: a body must deliver at least ``min_rate * window`` bytes in
      each ``window`` seconds spent waiting for it, else it fails as too slow.

    So a body that stops fails after ``min(idle, window)`` seconds of waiting, and one that
    crawls fails within ``window`` seconds of its last good window: a source sending a byte every
    20 s fails after 120 s with the defaults.  A body that keeps the minimum rate takes at most
    about ``size / min_rate + window`` seconds of waiting.
    """

    connect: float = 30.0
    idle: float = 120.0
    min_rate: float = 1024.0
    window: float = 120.0

    def __post_init__(self) -> None:
        spans = (self.connect, self.idle, self.window)
        if not all(math.isfinite(x) and x > 0 for x in spans) or not (
            math.isfinite(self.min_rate) and self.min_rate >= 0
        ):
            raise ValueError("timeouts must be positive and min_rate not negative")

    @classmethod
    def within(cls, seconds: float) -> TransferTimeouts:
        """One knob (``IMAGEVET_TRANSFER_TIMEOUT``): idle timeout and rate window of ``seconds``."""
        return cls(connect=min(30.0, seconds), idle=seconds, window=seconds)


@dataclass(slots=True)
class Request:
    """One HTTP request.  ``url`` is sent exactly as written (already percent-encoded).

    A ``bytes`` body can be sent again; an async-iterable body can be sent once only.
    """

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = None

    @property
    def replayable(self) -> bool:
        """Whether the same request can be sent again (its body is not a one-shot stream)."""
        return self.body is None or isinstance(self.body, bytes)

    def __repr__(self) -> str:  # never show headers: they may hold credentials
        return f"<Request {self.method} {redact_url(self.url)}>"


class Response:
    """An HTTP response whose body is read as a stream of ``bytes`` chunks.

    Call :meth:`aclose` (or read the body to its end) to give the connection back.
    """

    __slots__ = ("status", "headers", "url", "secrets", "_stream", "_close", "_done")

    def __init__(
        self,
        status: int,
        headers: CIMultiDictProxy[str],
        url: str,
        stream: AsyncIterator[bytes],
        close: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.url = url
        self.secrets: Collection[str] = ()
        """Credential values the client knows (masked in any error text made from this body)."""
        self._stream = stream
        self._close = close
        self._done = False

    @classmethod
    def from_bytes(
        cls,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        url: str = "",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Response:
        """A response with an in-memory body (for mock transports and tests)."""
        hdrs: CIMultiDict[str] = CIMultiDict(headers or {})
        if "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(len(body))

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(body), chunk_size):
                yield body[i : i + chunk_size]

        return cls(status, CIMultiDictProxy(hdrs), url, chunks())

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None or not value.strip().isdigit():
            return None
        return int(value)

    def pace(self, method: str, timeouts: TransferTimeouts) -> None:
        """Make reading the body fail when it stalls or crawls (see :class:`TransferTimeouts`)."""
        self._stream = _paced(self._stream, method, self.url, timeouts)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body in chunks; the connection is released at the end."""
        try:
            async for chunk in self._stream:
                if chunk:
                    yield chunk
            self._done = True
        finally:
            await self.aclose()

    async def read(self, limit: int) -> bytes:
        """Read the whole body if it is at most ``limit`` bytes, else return the first ``limit + 1``."""
        parts: list[bytes] = []
        got = 0
        try:
            async for chunk in self._stream:
                parts.append(chunk)
                got += len(chunk)
                if got > limit:
                    break
            else:
                self._done = True
        finally:
            await self.aclose()
        return b"".join(parts)[: limit + 1]

    async def aclose(self) -> None:
        """Release the connection (reused if the body was read to its end, else dropped)."""
        close, self._close = self._close, None
        if close is not None:
            await close(self._done)

    def __repr__(self) -> str:
        return f"<Response {self.status} {redact_url(self.url)}>"


@runtime_checkable
class Transport(Protocol):
    """Sends one request and returns its response with the body not yet read; never follows redirects."""

    async def send(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """The real transport: one aiohttp session, pooled keep-alive connections per host."""

    def __init__(
        self,
        *,
        max_connections_per_host: int = 16,
        max_connections: int = 0,
        connect_timeout: float = 30.0,
        read_timeout: float = 120.0,
        ssl_context: ssl.SSLContext | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self._limit_per_host = max_connections_per_host
        self._limit = max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._chunk_size = chunk_size
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _get_session(self, request: Request) -> aiohttp.ClientSession:
        if self._closed:  # a straggling task after aclose: a new session would never be closed
            refused = TransportError(request.method, request.url, "the client is closed")
            refused.exhausted = True
            raise refused
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                ssl=self._ssl,
                enable_cleanup_closed=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                requote_redirect_url=False,
                read_bufsize=DEFAULT_READ_BUFSIZE,
                trust_env=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def send(self, request: Request) -> Response:
        session = self._get_session(request)
        headers = dict(request.headers)
        if not any(k.lower() == "accept-encoding" for k in headers):
            headers["Accept-Encoding"] = "identity"
        failure: list[BaseException] = []
        data: object = request.body
        if request.body is not None and not isinstance(request.body, bytes):
            data = _guarded(request.body, failure)
        try:
            resp = await session.request(
                request.method,
                URL(request.url, encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
            if failure:
                raise failure[0] from None
            if isinstance(e, TimeoutError):
                raise TransferTimeoutError(request.method, request.url, "timed out") from None
            raise TransportError(request.method, request.url, _describe(e)) from None
        except BaseException:
            if failure:
                raise failure[0] from None
            raise
        return Response(
            resp.status,
            resp.headers,
            request.url,
            _stream(resp, request.method, request.url, self._chunk_size),
            _closer(resp),
        )

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None


async def send_watched(transport: Transport, request: Request, idle: float) -> Response:
    """Send a request whose body is a one-shot stream, failing with
    :class:`TransferTimeoutError` when the receiver takes none of it for ``idle`` seconds.

    Time spent waiting for the body's own source does not count (that source is paced itself);
    once the body is sent, the transport's read timeout covers the wait for the answer.
    """
    loop = asyncio.get_running_loop()
    last = loop.time()
    pulling = finished = False

    async def watched(body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        nonlocal last, pulling, finished
        it = aiter(body)
        while True:
            pulling = True
            try:
                chunk = await anext(it)
            except StopAsyncIteration:
                finished = True
                return
            finally:
                pulling, last = False, loop.time()
            yield chunk

    assert request.body is not None and not isinstance(request.body, bytes)
    task = asyncio.ensure_future(
        transport.send(Request(request.method, request.url, request.headers, watched(request.body)))
    )
    try:
        while True:
            wait = idle if pulling or finished else max(last + idle - loop.time(), 0.0)
            done, _ = await asyncio.wait({task}, timeout=wait)
            if done:
                return task.result()
            if not (pulling or finished) and loop.time() - last >= idle:
                raise TransferTimeoutError(
                    request.method, request.url, f"sending the body: stalled for {idle:g} s"
                )
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _paced(
    stream: AsyncIterator[bytes], method: str, url: str, t: TransferTimeouts
) -> AsyncIterator[bytes]:
    """Pass ``stream`` through; raise :class:`TransferTimeoutError` when a read waits longer
    than ``t.idle`` or a window of ``t.window`` seconds of waiting brings less than
    ``t.min_rate * t.window`` bytes.  Only time spent waiting counts (not the consumer's)."""
    loop = asyncio.get_running_loop()
    need = t.min_rate * t.window
    waited = 0.0  # seconds spent waiting in the current window
    got = 0  # bytes received in the current window
    while True:
        budget = min(t.idle, t.window - waited)
        started = loop.time()
        try:
            async with asyncio.timeout(max(budget, 0.0)) as deadline:
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if not deadline.expired():
                raise
            if budget >= t.idle:
                why = f"stalled: no data for {t.idle:g} s"
            else:
                why = (
                    f"too slow: {got} bytes in {t.window:g} s "
                    f"(the minimum is {t.min_rate:g} bytes/s)"
                )
            raise TransferTimeoutError(method, url, f"reading the body: {why}") from None
        waited += loop.time() - started
        got += len(chunk)
        if got >= need:
            waited, got = 0.0, 0
        yield chunk


async def _guarded(
    body: AsyncIterable[bytes], failure: list[BaseException]
) -> AsyncIterator[bytes]:
    """Pass ``body`` through, remembering an exception it raises so it reaches the caller as is."""
    try:
        async for chunk in body:
            yield chunk
    except Exception as e:
        failure.append(e)
        raise


async def _stream(
    resp: aiohttp.ClientResponse, method: str, url: str, chunk_size: int
) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_chunked(chunk_size):
            yield chunk
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        resp.close()
        kind = TransferTimeoutError if isinstance(e, TimeoutError) else TransportError
        raise kind(method, url, f"reading the body: {_describe(e)}") from None


def _closer(resp: aiohttp.ClientResponse) -> Callable[[bool], Awaitable[None]]:
    async def close(done: bool) -> None:
        if done:
            resp.release()
        else:
            resp.close()  # a body left unread: drop the connection rather than drain it

    return close


def _describe(e: BaseException) -> str:
    """A message for ``e`` that names its kind and never includes a URL with a query string."""
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect: {e.os_error.strerror or type(e.os_error).__name__}"
    if isinstance(e, aiohttp.ClientPayloadError):
        return "truncated or malformed body"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(e, aiohttp.ClientResponseError):
        return f"bad response ({e.status})"
    text = str(e)
    # aiohttp messages may embed the full URL; keep only the exception kind then.
    if "?" in text or "://" in text:
        return type(e).__name__
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
