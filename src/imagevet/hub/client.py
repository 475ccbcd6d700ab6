"""HubClient: login, JWT reuse and renewal, rate limits, pagination and typed errors for the Hub API.

One request, as :meth:`HubClient.request` runs it::

    token fresh for RENEW_MARGIN more seconds?  no -> POST /v2/auth/token {"identifier","secret"}
    last X-RateLimit-Remaining was 0?          yes -> wait until X-RateLimit-Reset (at most max_wait)
    send with Authorization: Bearer <JWT>
    401 -> log in again and resend, once
    429 -> wait Retry-After seconds (or until X-Retry-After), resend; at most max_retries times,
           then HubRateLimitedError
    other 4xx/5xx -> HubError with Docker's message (unless the caller accepts that status)

The JWT is only ever sent to the origin of ``base_url``: a pagination ``next`` URL on another
origin is refused (SecurityError).  Credentials and tokens never appear in logs, errors or reprs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from imagevet.errors import CredentialsError, HubError, SecurityError, TransportError, redact_url
from imagevet.hub.credentials import DEFAULT_HUB_URL, HubCredentials
from imagevet.hub.responses import hub_error
from imagevet.hub.throttle import ApiRateLimit, retry_after
from imagevet.hub.token import AccessToken

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_RENEW_MARGIN",
    "DEFAULT_TIMEOUT",
    "HubClient",
    "HubResponse",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
"""Seconds one request may take, connection included."""
DEFAULT_MAX_RETRIES = 3
"""How many times a request answered 429 is sent again before HubRateLimitedError."""
DEFAULT_MAX_WAIT = 60.0
"""The longest single wait for a rate limit; a longer Retry-After fails at once."""
DEFAULT_RENEW_MARGIN = 30.0
"""A JWT is renewed when it has fewer seconds than this left."""
DEFAULT_PAGE_SIZE = 100
"""Hub list calls accept at most 100 items per page."""
_FALLBACK_BACKOFF = 1.0

Params = Mapping[str, str | int]


@dataclass(frozen=True, slots=True)
class HubResponse:
    """A finished Hub response: status, headers and the body bytes."""

    method: str
    url: str
    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON; HubError when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise HubError(self.status, self.method, self.url, "response is not JSON") from None


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


class HubClient:
    """A Docker Hub API client over one aiohttp session.

    ``credentials`` may be None for anonymous calls (public repositories, catalog search).
    ``clock`` and ``sleep`` are injectable so tests can run the waits without waiting.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_HUB_URL,
        credentials: HubCredentials | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_wait: float = DEFAULT_MAX_WAIT,
        renew_margin: float = DEFAULT_RENEW_MARGIN,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._base = URL(base_url.rstrip("/"))
        if not self._base.is_absolute() or self._base.scheme not in ("http", "https"):
            raise ValueError(f"Hub base URL must be http(s) and absolute: {redact_url(base_url)!r}")
        if self._base.user is not None or self._base.password is not None:
            # never sent, never shown: the URL appears in logs, errors and doctor's report
            raise CredentialsError(
                f"the Hub URL {redact_url(base_url)} holds credentials (user:password@): "
                "give them as HubCredentials (DOCKER_HUB_USERNAME/DOCKER_HUB_TOKEN)"
            )
        self._credentials = credentials
        self._session = session
        self._own_session = session is None
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._max_wait = max_wait
        self._renew_margin = renew_margin
        self._clock = clock
        self._sleep = sleep
        self._token: AccessToken | None = None
        self._login_lock = asyncio.Lock()
        self._rate: ApiRateLimit | None = None
        self.logins = 0
        """How many times this client logged in (tests and --debug read it)."""

    def __repr__(self) -> str:
        who = self._credentials.identifier if self._credentials else "anonymous"
        return f"HubClient({str(self._base)!r}, {who!r})"

    @property
    def base_url(self) -> str:
        return str(self._base)

    @property
    def credentials(self) -> HubCredentials | None:
        return self._credentials

    @property
    def rate_limit(self) -> ApiRateLimit | None:
        """The ``X-RateLimit-*`` values of the last response."""
        return self._rate

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this client opened it; the client sends nothing afterwards."""
        self._closed = True
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def url(self, path: str) -> URL:
        """The absolute URL of ``path`` (``/v2/...``) on the Hub."""
        return URL(str(self._base) + path, encoded=False)

    # -- authentication -------------------------------------------------------------------

    async def login(self) -> None:
        """Exchange the credentials for a JWT (``POST /v2/auth/token``)."""
        if self._credentials is None:
            raise HubError(401, "POST", str(self.url("/v2/auth/token")), "no credentials given")
        self._token = None
        await self._ensure_token()

    async def _ensure_token(self, stale: AccessToken | None = None) -> AccessToken:
        async with self._login_lock:
            token = self._token
            if (
                token is not None
                and token is not stale
                and token.fresh(self._clock(), self._renew_margin)
            ):
                return token
            assert self._credentials is not None
            url = self.url("/v2/auth/token")
            body = {"identifier": self._credentials.identifier, "secret": self._credentials.secret}
            response = await self._send_with_retries("POST", url, None, body)
            if not response.ok:
                error = hub_error(response.status, "POST", str(url), response.body)
                if response.status in (401, 403):
                    error = HubError(
                        response.status,
                        "POST",
                        str(url),
                        f"login as {self._credentials.identifier!r} failed: {error.message}",
                    )
                raise error
            data = response.json()
            value = data.get("access_token") if isinstance(data, dict) else None
            if not isinstance(value, str) or not value:
                raise HubError(
                    response.status, "POST", str(url), "login answer has no access_token"
                )
            self._token = AccessToken.issued(value, self._clock())
            self.logins += 1
            log.debug("logged in to %s as %s", self._base, self._credentials.identifier)
            return self._token

    # -- requests -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Params | None = None,
        json_body: Any = None,
        auth: bool = True,
        accept: Collection[int] = (),
    ) -> HubResponse:
        """Send one API call; raise HubError for an error status not listed in ``accept``.

        ``path_or_url`` is a path on the Hub or an absolute URL on the same origin (a ``next``
        link, used verbatim).  With ``auth`` and credentials, the call carries the JWT.
        """
        url = self._resolve(path_or_url)
        if params:
            url = url.update_query({k: str(v) for k, v in params.items()})
        token: AccessToken | None = None
        if auth and self._credentials is not None:
            token = await self._ensure_token()
        response = await self._send_with_retries(method, url, token, json_body)
        if response.status == 401 and token is not None:
            log.debug("%s %s: 401, logging in again", method, url.with_query(None))
            token = await self._ensure_token(stale=token)
            response = await self._send_with_retries(method, url, token, json_body)
        if not response.ok and response.status not in accept:
            raise hub_error(response.status, method, str(url), response.body)
        return response

    async def get_json(
        self, path_or_url: str, *, params: Params | None = None, auth: bool = True
    ) -> Any:
        """GET and decode the JSON body."""
        return (await self.request("GET", path_or_url, params=params, auth=auth)).json()

    async def paginate(
        self, path: str, *, params: Params | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[Any]:
        """Yield the ``results`` of every page, following the absolute ``next`` URL verbatim."""
        query: dict[str, str | int] = {"page_size": min(page_size, DEFAULT_PAGE_SIZE)}
        query.update(params or {})
        page = await self.get_json(path, params=query)
        while True:
            if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                raise HubError(200, "GET", str(self.url(path)), "list answer has no results")
            for item in page["results"]:
                yield item
            next_url = page.get("next")
            if not next_url:
                return
            page = await self.get_json(str(next_url))

    def _resolve(self, path_or_url: str) -> URL:
        if path_or_url.startswith("/"):
            return self.url(path_or_url)
        url = URL(path_or_url, encoded=True)
        if not url.is_absolute() or _origin(url) != _origin(self._base):
            raise SecurityError(
                f"refusing to follow {url.with_query(None)} from the Hub API at {self._base}: "
                "not the same origin"
            )
        return url

    async def _send_with_retries(
        self,
        method: str,
        url: URL,
        token: AccessToken | None,
        json_body: Any,
    ) -> HubResponse:
        for attempt in range(self._max_retries + 1):
            await self._respect_remaining()
            response = await self._send(method, url, token, json_body)
            if response.status != 429:
                return response
            wait = retry_after(response.headers, self._clock())
            if wait is None:
                wait = _FALLBACK_BACKOFF * 2**attempt
            if attempt == self._max_retries or wait > self._max_wait:
                raise hub_error(429, method, str(url), response.body, retry_after=wait)
            log.info("%s %s: rate limited, retrying in %.1fs", method, url.with_query(None), wait)
            await self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _respect_remaining(self) -> None:
        rate = self._rate
        if rate is None or not rate.exhausted or rate.reset is None:
            return
        self._rate = None  # wait once per exhaustion, not once per waiting task
        wait = min(max(0.0, rate.reset - self._clock()), self._max_wait)
        if wait > 0:
            log.info("Hub API rate limit used up, waiting %.1fs for the reset", wait)
            await self._sleep(wait)

    async def _send(
        self, method: str, url: URL, token: AccessToken | None, json_body: Any
    ) -> HubResponse:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        if self._closed:  # a task still running after the client closed must not open a new session
            raise TransportError(method, str(url), "the Hub client is closed")
        session = self._ensure_session()
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                json=json_body,
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                body = await resp.read()
                status = resp.status
                resp_headers = CIMultiDict(resp.headers)
        except TimeoutError:
            raise TransportError(
                method, str(url), f"timed out after {self._timeout.total}s"
            ) from None
        except aiohttp.ClientError as e:
            raise TransportError(method, str(url), f"{type(e).__name__}: {e}") from None
        rate = ApiRateLimit.from_headers(resp_headers)
        if rate is not None:
            self._rate = rate
        log.debug("%s %s -> %d", method, url.with_query(None), status)
        return HubResponse(method, str(url), status, resp_headers, body)

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, requote_redirect_url=False)
            self._own_session = True
        return self._session
