"""The request pipeline every registry call goes through: host, auth, redirects, retry, stats, logs.

One call of :meth:`Pipeline.request`:

1. resolves the registry's base URL (the plain-HTTP rule lives in :mod:`.hosts`);
2. adds ``Authorization`` only for the registry's own origin (never for a redirect or an
   upload ``Location`` on another origin);
3. follows redirects by hand for GET and HEAD only, keeping ``Location`` byte-exact; a
   redirect from HTTPS to plain HTTP is refused unless that host may use HTTP; a chain is at most
   :data:`MAX_REDIRECTS` hops and a hop back to a URL of the chain is a loop: both raise
   :class:`~imagevet.errors.LimitExceededError`, which is never retried;
4. answers one 401 by re-authenticating (when the body can be sent again);
5. raises the typed error of 429 and 5xx so the retry policy can retry replayable requests (the
   one retry layer: an error it gives up on is marked ``exhausted``, see :mod:`.retry`);
6. bounds every response body in time (:class:`.TransferTimeouts`), and hands each response the
   credential values the client knows, so error text made from it masks them;
7. counts each request in :class:`.RequestStats`, logs it at DEBUG with method, redacted URL,
   status and duration, and keeps the last rate limit each registry reported on a manifest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from imagevet.errors import LimitExceededError, SecurityError, redact_url
from imagevet.ratelimit import RateLimit
from imagevet.registry.auth import Authenticator
from imagevet.registry.credentials import CredentialStore
from imagevet.registry.hosts import RegistryHost, is_loopback, resolve_host
from imagevet.registry.responses import ERROR_BODY_LIMIT, error_for, raise_for_status
from imagevet.registry.retry import RetryPolicy
from imagevet.registry.stats import RequestStats
from imagevet.registry.transport import (
    Body,
    Request,
    Response,
    TransferTimeouts,
    Transport,
    send_watched,
)
from imagevet.registry.urls import join_url, origin, split_origin

__all__ = ["MAX_REDIRECTS", "Pipeline"]

log = logging.getLogger("imagevet.registry")

MAX_REDIRECTS = 10
"""Redirect hops followed for one request (Go's net/http stops at 10 too)."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DRAIN_LIMIT = 64 << 10


class _Target:
    """A registry's resolved host settings, base URL and origin (computed once per registry)."""

    __slots__ = ("host", "base", "origin")

    def __init__(self, host: RegistryHost, base: str) -> None:
        self.host = host
        self.base = base
        self.origin = origin(base)


class Pipeline:
    """Sends registry requests with auth, manual redirects, retries and accounting."""

    def __init__(
        self,
        transport: Transport,
        *,
        credentials: CredentialStore | None,
        hosts: Mapping[str, RegistryHost],
        retry: RetryPolicy,
        user_agent: str,
        stats: RequestStats,
        ratelimits: dict[str, RateLimit] | None = None,
        timeouts: TransferTimeouts | None = None,
    ) -> None:
        self.transport = transport
        self.timeouts = timeouts or TransferTimeouts()
        self.hosts = dict(hosts)
        self.retry = retry
        self.user_agent = user_agent
        self.stats = stats
        self.ratelimits: dict[str, RateLimit] = {} if ratelimits is None else ratelimits
        self.auth = Authenticator(credentials, self._send_token, user_agent=user_agent)
        self._targets: dict[str, _Target] = {}
        for name in self.hosts:  # fail early on a forbidden plain-HTTP host
            self.target(name)

    def target(self, registry: str) -> _Target:
        t = self._targets.get(registry)
        if t is None:
            host = resolve_host(registry, self.hosts)
            t = self._targets[registry] = _Target(host, host.base_url(registry))
        return t

    def host(self, registry: str) -> RegistryHost:
        return self.target(registry).host

    def url(self, registry: str, path: str) -> str:
        """An absolute URL on ``registry`` for ``path`` (or ``path`` itself when absolute)."""
        if "://" in path.split("?", 1)[0]:
            return path
        return join_url(self.target(registry).base, path)

    async def request(
        self,
        method: str,
        registry: str,
        path: str,
        *,
        kind: str,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        follow_redirects: bool = False,
        retry: bool = True,
        reauth: bool = True,
    ) -> Response:
        """Send a request to ``registry`` and return its response, whatever the status, except
        429 and 5xx (but 501): those raise their typed error, after retries when the body can be
        sent again.  ``reauth=False`` answers a 401 with nothing but the response (for requests
        whose failure is harmless, so a valid token is not dropped for them)."""
        url = self.url(registry, path)

        async def attempt() -> Response:
            resp = await self._authorized(
                method, registry, url, kind, scopes, headers, body, follow_redirects, reauth
            )
            if resp.status == 429 or (resp.status >= 500 and resp.status != 501):
                data = await resp.read(ERROR_BODY_LIMIT)
                raise error_for(
                    resp.status,
                    method,
                    resp.url,
                    data[:ERROR_BODY_LIMIT],
                    resp.headers,
                    secrets=resp.secrets,
                )
            return resp

        if retry and (body is None or isinstance(body, bytes)):
            return await self.retry.call(attempt)
        return await attempt()

    async def _authorized(
        self,
        method: str,
        registry: str,
        url: str,
        kind: str,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None,
        body: Body,
        follow_redirects: bool,
        reauth: bool,
    ) -> Response:
        auth = self.auth
        target = self.target(registry)
        gate = await auth.enter_gate(registry) if not auth.known(registry) else None
        try:
            sent = await auth.header(registry, target.host, target.base, scopes)
            resp = await self._send(
                method, registry, url, kind, headers, body, sent, follow_redirects, target
            )
            if resp.status != 401 or not (reauth or gate is not None):
                return resp
            if origin(resp.url) != target.origin:
                # A 401 from a redirect hop (CDN, storage) names no realm we may trust: never
                # let another origin choose where the registry's credentials are sent.
                return resp
            challenges = resp.headers.getall("WWW-Authenticate", [])
            try:
                fresh = await auth.on_unauthorized(
                    registry, target.host, target.base, scopes, challenges, sent
                )
            except BaseException:
                await _discard(resp)
                raise
            if fresh is None or not (body is None or isinstance(body, bytes)):
                return resp
            await _discard(resp)
            return await self._send(
                method, registry, url, kind, headers, body, fresh, follow_redirects, target
            )
        finally:
            if gate is not None:
                auth.leave_gate(registry, gate)

    async def _send(
        self,
        method: str,
        registry: str,
        url: str,
        kind: str,
        headers: Mapping[str, str] | None,
        body: Body,
        authorization: str | None,
        follow_redirects: bool,
        target: _Target,
    ) -> Response:
        hops = 0
        chain = {url}
        while True:
            hdrs = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
            if headers:
                hdrs.update(headers)
            if authorization is not None and origin(url) == target.origin:
                hdrs["Authorization"] = authorization
            resp = await self.transmit(Request(method, url, hdrs, body), kind, registry)
            if not (follow_redirects and method in ("GET", "HEAD") and resp.status in _REDIRECTS):
                return resp
            location = resp.headers.get("Location")
            if not location:
                return resp
            await _discard(resp)
            new = join_url(url, location)
            if new in chain:
                raise LimitExceededError(
                    f"{method} {redact_url(url)}", f"redirect loop back to {redact_url(new)}"
                )
            hops += 1
            if hops > MAX_REDIRECTS:
                raise LimitExceededError(
                    f"{method} {redact_url(url)}", f"more than {MAX_REDIRECTS} redirects"
                )
            _check_redirect(url, new, target.host)
            chain.add(new)
            url = new

    async def transmit(self, request: Request, kind: str, registry: str) -> Response:
        """Send one request through the transport, counting and logging it."""
        start = time.perf_counter()
        try:
            if request.replayable:
                resp = await self.transport.send(request)
            else:
                resp = await send_watched(self.transport, request, self.timeouts.idle)
        except Exception as e:
            self.stats.record(request.method, kind, registry, 0)
            log.debug(
                "%s %s -> %s in %.1f ms",
                request.method,
                redact_url(request.url),
                getattr(e, "reason", None) or type(e).__name__,
                (time.perf_counter() - start) * 1000,
            )
            raise
        self.stats.record(request.method, kind, registry, resp.status)
        resp.secrets = self.auth.secrets
        resp.pace(request.method, self.timeouts)
        if kind == "manifest" and "ratelimit-remaining" in resp.headers:
            limit = RateLimit.from_headers(resp.headers)
            if limit is not None:
                self.ratelimits[registry] = limit
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %d in %.1f ms",
                request.method,
                redact_url(request.url),
                resp.status,
                (time.perf_counter() - start) * 1000,
            )
        return resp

    async def _send_token(self, request: Request, registry: str) -> Response:
        async def attempt() -> Response:
            resp = await self.transmit(request, "token", registry)
            if resp.status == 429 or (resp.status >= 500 and resp.status != 501):
                await raise_for_status(resp, request.method)
            return resp

        return await self.retry.call(attempt)


def _check_redirect(old: str, new: str, host: RegistryHost) -> None:
    """Refuse a redirect that leaves HTTP(S) or downgrades HTTPS to plain HTTP off loopback."""
    scheme = new.split("://", 1)[0].lower() if "://" in new else ""
    if scheme not in ("http", "https"):
        raise SecurityError(f"refusing redirect to {redact_url(new)}: not an http(s) URL")
    if scheme == "http" and old.lower().startswith("https://"):
        authority = split_origin(new)[0].split("://", 1)[1]
        if not (is_loopback(authority) or host.insecure):
            raise SecurityError(f"refusing redirect from HTTPS to plain HTTP {redact_url(new)}")


async def _discard(resp: Response) -> None:
    """Read and drop a small body so the connection can be reused; drop the connection otherwise."""
    length = resp.content_length
    if length is not None and length <= _DRAIN_LIMIT:
        await resp.read(_DRAIN_LIMIT)
    else:
        await resp.aclose()
