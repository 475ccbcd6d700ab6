"""A streaming reverse proxy on 127.0.0.1 that injects faults between a client and a registry.

Rules are matched in the order they were added, on method and a substring of the path; each
fires ``times`` times (None = always) after letting ``skip`` matching requests through:

- ``fail``: answer with a status and a distribution error envelope (429 -> TOOMANYREQUESTS) and
  optional ``Retry-After``, without contacting the upstream.
- ``reset``: close the connection before any response (a transport error). Note that aiohttp's
  client retries an idempotent request once on such a drop: use ``reset(2)`` to make it surface.
- ``corrupt``: flip one byte of the response (or request) body at ``offset`` in transit.
- ``cut``: send ``after_bytes`` of the response body, then close the connection.
- ``delay``: sleep before forwarding.
- ``drip``: forward the response body ``nbytes`` at a time with ``interval`` seconds between
  pieces (a crawling source).
- ``redirect``: answer 307 with a ``Location`` (``{n}`` in it is replaced by the rule's hit
  count, so a chain never repeats a URL), without contacting the upstream.
- ``fail(..., echo=True)``: the error text repeats the request's ``Authorization`` header and the
  upstream's password, as a careless registry would (``plain=True``: a text body, no envelope).
- ``add_headers``: add response headers; ``rate_limit`` emulates Docker Hub's ``ratelimit-*``
  headers, decrementing on each manifest GET and answering 429 once exhausted.

Bodies stream in both directions (nothing is buffered whole). ``Location`` headers that point at
the upstream are rewritten to the proxy; ``Www-Authenticate`` is left alone (the realm names the
token server directly). Every request is logged in ``requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tests.support.server_thread import ServerThread

__all__ = ["FaultProxy", "RateLimit", "RequestRecord", "Rule", "error_body", "start_fault_proxy"]

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
    )
)
CHUNK = 64 * 1024


def error_body(
    status: int, path: str = "", code: str | None = None, message: str | None = None
) -> dict[str, Any]:
    """A distribution error envelope suited to ``status`` (and the kind of path)."""
    if code is None:
        if status == 404:
            code = (
                "MANIFEST_UNKNOWN"
                if "/manifests/" in path
                else "BLOB_UNKNOWN"
                if "/blobs/" in path
                else "NAME_UNKNOWN"
            )
        else:
            code = {
                400: "UNSUPPORTED",
                401: "UNAUTHORIZED",
                403: "DENIED",
                429: "TOOMANYREQUESTS",
                503: "UNAVAILABLE",
            }.get(status, "UNKNOWN")
    if message is None:
        message = (
            "You have reached your pull rate limit. You may increase the limit by authenticating "
            "and upgrading: https://www.docker.com/increase-rate-limits"
            if status == 429
            else f"injected fault: {status}"
        )
    return {"errors": [{"code": code, "message": message, "detail": None}]}


@dataclass
class RequestRecord:
    """One request seen by the proxy: what came in and what went out."""

    method: str
    path: str
    query: str
    status: int = 0
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    response_headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    fault: str | None = None


@dataclass
class Rule:
    """A fault rule; ``hits`` counts the requests it acted on. ``remove()`` disables it."""

    kind: str
    method: str | None = None
    path_contains: str | None = None
    times: int | None = 1
    skip: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0
    seen: int = 0
    _proxy: FaultProxy | None = field(default=None, repr=False)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path_contains is None or self.path_contains in path
        )

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def take(self) -> bool:
        """Count a matching request; whether the rule acts on it."""
        if self.exhausted:
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        self.hits += 1
        return True

    def remove(self) -> None:
        if self._proxy is not None:
            self._proxy.remove(self)


@dataclass
class RateLimit:
    """Docker Hub style pull accounting: ``remaining`` drops on each manifest GET (not HEAD)."""

    limit: int
    remaining: int
    window: int = 21600
    path_contains: str = "/manifests/"
    source: str = "127.0.0.1"
    enforce: bool = True

    def headers(self) -> dict[str, str]:
        return {
            "ratelimit-limit": f"{self.limit};w={self.window}",
            "ratelimit-remaining": f"{self.remaining};w={self.window}",
            "docker-ratelimit-source": self.source,
        }


class FaultProxy:
    """A reverse proxy in front of ``upstream`` with fault rules; see the module docstring."""

    def __init__(self, upstream: Any) -> None:
        self.upstream_url = (upstream if isinstance(upstream, str) else upstream.url).rstrip("/")
        self.username: str | None = (
            None if isinstance(upstream, str) else getattr(upstream, "username", None)
        )
        self.password: str | None = (
            None if isinstance(upstream, str) else getattr(upstream, "password", None)
        )
        self.upstream = upstream
        self.requests: list[RequestRecord] = []
        self.rules: list[Rule] = []
        self.ratelimit: RateLimit | None = None
        self.url = ""
        self.host = ""
        self._lock = threading.Lock()
        self._server: ServerThread | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_cleanup.append(self._close_session)
        self._server = ServerThread([app], name="fault-proxy")
        (port,) = self._server.start()
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"
        return self

    def stop(self) -> None:
        """Stop serving; idempotent."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def _close_session(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    # -- rules ----------------------------------------------------------------------------------

    def _add(self, rule: Rule) -> Rule:
        rule._proxy = self
        with self._lock:
            self.rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self.rules:
                self.rules.remove(rule)

    def fail(
        self,
        times: int | None = 1,
        status: int = 503,
        retry_after: str | None = None,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        skip: int = 0,
        code: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        echo: bool = False,
        plain: bool = False,
    ) -> Rule:
        """Answer the next ``times`` matching requests with ``status`` and an error envelope
        (``echo``: the message repeats the request's credentials; ``plain``: a text body)."""
        return self._add(
            Rule(
                "fail",
                method,
                path_contains,
                times,
                skip,
                {
                    "status": status,
                    "retry_after": retry_after,
                    "code": code,
                    "message": message,
                    "headers": dict(headers or {}),
                    "echo": echo,
                    "plain": plain,
                },
            )
        )

    def drip(
        self,
        path_contains: str | None = None,
        *,
        nbytes: int = 1,
        interval: float = 0.05,
        times: int | None = None,
        method: str | None = "GET",
        skip: int = 0,
    ) -> Rule:
        """Forward matching response bodies ``nbytes`` at a time, ``interval`` seconds apart."""
        return self._add(
            Rule(
                "drip",
                method,
                path_contains,
                times,
                skip,
                {"nbytes": nbytes, "interval": interval},
            )
        )

    def redirect(
        self,
        location: str,
        *,
        status: int = 307,
        times: int | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        skip: int = 0,
    ) -> Rule:
        """Answer matching requests with ``status`` and ``Location: location`` (``{n}``: hit count)."""
        return self._add(
            Rule(
                "redirect",
                method,
                path_contains,
                times,
                skip,
                {"location": location, "status": status},
            )
        )

    def reset(
        self,
        times: int | None = 1,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        skip: int = 0,
    ) -> Rule:
        """Close the connection without answering the next ``times`` matching requests."""
        return self._add(Rule("reset", method, path_contains, times, skip))

    def corrupt(
        self,
        path_contains: str | None = None,
        offset: int = 0,
        *,
        times: int | None = 1,
        method: str | None = "GET",
        skip: int = 0,
        in_request: bool = False,
    ) -> Rule:
        """Flip one byte (XOR 0xFF) at ``offset`` of matching response bodies (or request bodies)."""
        if in_request and method == "GET":
            method = None
        return self._add(
            Rule(
                "corrupt",
                method,
                path_contains,
                times,
                skip,
                {"offset": offset, "in_request": in_request},
            )
        )

    def cut(
        self,
        path_contains: str | None = None,
        after_bytes: int = 0,
        *,
        times: int | None = 1,
        method: str | None = "GET",
        skip: int = 0,
    ) -> Rule:
        """Send headers and ``after_bytes`` of the body, then close the connection."""
        return self._add(
            Rule("cut", method, path_contains, times, skip, {"after_bytes": after_bytes})
        )

    def delay(
        self,
        seconds: float,
        *,
        times: int | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        skip: int = 0,
    ) -> Rule:
        """Sleep ``seconds`` before forwarding matching requests."""
        return self._add(Rule("delay", method, path_contains, times, skip, {"seconds": seconds}))

    def add_headers(
        self,
        headers: Mapping[str, str],
        *,
        times: int | None = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> Rule:
        """Add ``headers`` to matching responses."""
        return self._add(
            Rule("headers", method, path_contains, times, 0, {"headers": dict(headers)})
        )

    def rate_limit(
        self,
        remaining: int,
        limit: int = 100,
        *,
        window: int = 21600,
        path_contains: str = "/manifests/",
        enforce: bool = True,
    ) -> RateLimit:
        """Emulate Hub pull limits on manifest GET/HEAD; GET spends one; 429 at zero (if ``enforce``)."""
        self.ratelimit = RateLimit(limit, remaining, window, path_contains, enforce=enforce)
        return self.ratelimit

    def clear(self) -> None:
        """Drop every rule, the rate limit and the request log."""
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.ratelimit = None

    # -- log --------------------------------------------------------------------------------------

    def find(
        self, method: str | None = None, path_contains: str | None = None, status: int | None = None
    ) -> list[RequestRecord]:
        """Logged requests matching all the given filters."""
        with self._lock:
            records = list(self.requests)
        return [
            r
            for r in records
            if (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
            and (status is None or r.status == status)
        ]

    def count(
        self, method: str | None = None, path_contains: str | None = None, status: int | None = None
    ) -> int:
        """How many logged requests match."""
        return len(self.find(method, path_contains, status))

    # -- proxying -----------------------------------------------------------------------------------

    def _take(self, method: str, path: str) -> list[Rule]:
        """The rules acting on this request: every delay and header rule, the first of each other kind."""
        chosen: list[Rule] = []
        kinds: set[str] = set()
        with self._lock:
            for r in self.rules:
                stacks = r.kind in ("delay", "headers")
                if (stacks or r.kind not in kinds) and r.matches(method, path) and r.take():
                    chosen.append(r)
                    kinds.add(r.kind)
        return chosen

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.rel_url.raw_path
        record = RequestRecord(
            method, path, request.rel_url.raw_query_string, headers=CIMultiDict(request.headers)
        )
        with self._lock:
            self.requests.append(record)
        rules = self._take(method, path)
        kinds = {r.kind: r for r in reversed(rules)}
        for r in rules:
            if r.kind == "delay":
                await asyncio.sleep(r.params["seconds"])
        if "reset" in kinds:
            record.fault = "reset"
            await self._drain(request)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # no response at all
        if "fail" in kinds:
            return await self._fail(request, record, kinds["fail"])
        if "redirect" in kinds:
            rule = kinds["redirect"]
            await self._drain(request)
            location = rule.params["location"].replace("{n}", str(rule.hits))
            resp = web.Response(status=rule.params["status"], headers={"Location": location})
            record.status, record.fault = rule.params["status"], "redirect"
            record.response_headers = CIMultiDict(resp.headers)
            return resp
        extra: dict[str, str] = {}
        for r in rules:
            if r.kind == "headers":
                extra.update(r.params["headers"])
        limited = await self._rate_limit(request, record, extra)
        if limited is not None:
            return limited
        return await self._forward(request, record, kinds, extra)

    async def _drain(self, request: web.Request) -> None:
        with contextlib.suppress(Exception):
            while await request.content.readany():
                pass

    async def _fail(self, request: web.Request, record: RequestRecord, rule: Rule) -> web.Response:
        p = rule.params
        await self._drain(request)
        headers = {"Docker-Distribution-Api-Version": "registry/2.0", **p["headers"]}
        if p["retry_after"] is not None:
            headers["Retry-After"] = p["retry_after"]
        if p["status"] == 429 and self.ratelimit is not None:
            headers.update(self.ratelimit.headers())
        message = p["message"]
        if p["echo"]:
            message = (
                f"{message or 'refused'}: Authorization: {request.headers.get('Authorization', '')}"
                f" (password {self.password or ''})"
            )
        body = error_body(p["status"], record.path, p["code"], message)
        if p["plain"]:
            text = body["errors"][0]["message"]
            resp = web.Response(text=text, status=p["status"], headers=headers)
        else:
            resp = web.json_response(body, status=p["status"], headers=headers)
        record.status, record.fault = p["status"], "fail"
        record.response_headers = CIMultiDict(resp.headers)
        return resp

    async def _rate_limit(
        self, request: web.Request, record: RequestRecord, extra: dict[str, str]
    ) -> web.Response | None:
        rl = self.ratelimit
        if (
            rl is None
            or rl.path_contains not in record.path
            or request.method not in ("GET", "HEAD")
        ):
            return None
        with self._lock:
            if request.method == "GET":
                if rl.remaining <= 0 and rl.enforce:
                    exhausted = True
                else:
                    exhausted = False
                    rl.remaining = max(0, rl.remaining - 1)
            else:
                exhausted = False
            extra.update(rl.headers())
        if not exhausted:
            return None
        resp = web.json_response(error_body(429, record.path), status=429, headers=extra)
        record.status, record.fault = 429, "ratelimit"
        record.response_headers = CIMultiDict(resp.headers)
        return resp

    async def _request_body(
        self, request: web.Request, corrupt: Rule | None
    ) -> AsyncIterator[bytes]:
        pos = 0
        target = corrupt.params["offset"] if corrupt is not None else -1
        async for chunk in request.content.iter_chunked(CHUNK):
            if pos <= target < pos + len(chunk):
                b = bytearray(chunk)
                b[target - pos] ^= 0xFF
                chunk = bytes(b)
            pos += len(chunk)
            yield chunk

    async def _forward(
        self,
        request: web.Request,
        record: RequestRecord,
        kinds: dict[str, Rule],
        extra: dict[str, str],
    ) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        url = self.upstream_url + record.path + (f"?{record.query}" if record.query else "")
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
        )
        corrupt = kinds.get("corrupt")
        req_corrupt = corrupt if corrupt is not None and corrupt.params["in_request"] else None
        resp_corrupt = corrupt if corrupt is not None and not corrupt.params["in_request"] else None
        data = self._request_body(request, req_corrupt) if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method,
                URL(url, encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Accept", "Content-Type"),
            )
        except aiohttp.ClientError as e:
            record.status, record.fault = 502, "upstream-error"
            return web.json_response(error_body(502, message=f"upstream: {e}"), status=502)
        async with upstream:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() in HOP_BY_HOP:
                    continue
                if k.lower() == "location" and v.startswith(self.upstream_url):
                    v = self.url + v[len(self.upstream_url) :]
                resp.headers.add(k, v)
            for k, v in extra.items():
                resp.headers[k] = v
            record.status = upstream.status
            record.response_headers = CIMultiDict(resp.headers)
            await resp.prepare(request)
            if request.method == "HEAD":
                await resp.write_eof()
                return resp
            drip = kinds.get("drip")
            if drip is not None:
                record.fault = "drip"
                step, pause = drip.params["nbytes"], drip.params["interval"]
                async for chunk in upstream.content.iter_chunked(CHUNK):
                    for i in range(0, len(chunk), step):
                        await resp.write(chunk[i : i + step])
                        await asyncio.sleep(pause)
                await resp.write_eof()
                return resp
            cut = kinds.get("cut")
            limit = cut.params["after_bytes"] if cut is not None else -1
            target = resp_corrupt.params["offset"] if resp_corrupt is not None else -1
            pos = 0
            async for chunk in upstream.content.iter_chunked(CHUNK):
                if pos <= target < pos + len(chunk):
                    b = bytearray(chunk)
                    b[target - pos] ^= 0xFF
                    chunk = bytes(b)
                    record.fault = "corrupt"
                if limit >= 0 and pos + len(chunk) >= limit:
                    await resp.write(chunk[: limit - pos])
                    record.fault = "cut"
                    if request.transport is not None:
                        request.transport.close()
                    raise asyncio.CancelledError
                await resp.write(chunk)
                pos += len(chunk)
            if limit >= 0:  # body shorter than the cut point: still drop the connection
                record.fault = "cut"
                if request.transport is not None:
                    request.transport.close()
                raise asyncio.CancelledError
            await resp.write_eof()
            return resp


def start_fault_proxy(upstream: Any) -> FaultProxy:
    """Start a FaultProxy in front of ``upstream`` (a RunningRegistry, FakeRegistry or base URL)."""
    return FaultProxy(upstream).start()
