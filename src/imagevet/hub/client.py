"""HubClient: login, JWT reuse and renewal, rate limits, pagination and typed errors for the Hub API.

It sends through the registry client's HTTP stack: the :class:`~imagevet.registry.transport.Transport`
seam (:class:`~imagevet.registry.transport.AiohttpTransport`, or
:class:`~imagevet.registry.mock.MockTransport` in tests), the same
:class:`~imagevet.registry.retry.RetryPolicy` and the same bounds on bodies and stalls.
One call, as :meth:`HubClient.request` runs it::

    an OAT on a route off /v2/namespaces/ (and the org's teams)?  HubTokenError, nothing sent
    token fresh for RENEW_MARGIN more seconds?  no -> POST /v2/auth/token {"identifier","secret"}
    RetryPolicy.call (the one retry layer):
        last X-RateLimit-Remaining was 0?  wait until X-RateLimit-Reset (at most max_retry_after)
        send with Authorization: Bearer <JWT>
        429, 5xx but 501, no answer -> retried with backoff; Retry-After honoured as seconds, an
        HTTP date or a unix time (else X-Retry-After, else X-RateLimit-Reset)
    401 -> log in again and resend, once
    3xx -> HubError naming the URL and where it pointed: never followed, so a POST never turns
           into a GET
    other 4xx/5xx -> HubError with Docker's message, scrubbed of every secret the client knows

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
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from imagevet import __version__
from imagevet.errors import (
    CredentialsError,
    HubError,
    HubTokenError,
    LimitExceededError,
    SecurityError,
    TransportError,
    redact_url,
    scrub,
)
from imagevet.hub.credentials import DEFAULT_HUB_URL, HubCredentials, SecretKind
from imagevet.hub.responses import hub_error
from imagevet.hub.throttle import ApiRateLimit
from imagevet.hub.token import AccessToken
from imagevet.registry.responses import ERROR_BODY_LIMIT
from imagevet.registry.retry import RetryPolicy
from imagevet.registry.transport import AiohttpTransport, Request, TransferTimeouts, Transport

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_RENEW_MARGIN",
    "DEFAULT_TIMEOUTS",
    "HubClient",
    "HubResponse",
    "MAX_BODY",
    "MAX_ITEMS",
    "MAX_PAGES",
    "OAT_ROUTES",
    "PAGE_SIZE_CAP",
    "oat_accepted",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUTS = TransferTimeouts(connect=30.0, idle=30.0, window=30.0)
"""A Hub call answers small JSON: 30 s without a byte (or at less than 1 KiB/s) fails it."""
DEFAULT_RENEW_MARGIN = 30.0
"""A JWT is renewed when it has fewer seconds than this left."""
PAGE_SIZE_CAP = 100
"""The Hub caps ``page_size`` at 100 (badges/shields#4562): no request asks for more."""
DEFAULT_PAGE_SIZE = PAGE_SIZE_CAP
MAX_PAGES = 10_000
"""A listing longer than this many pages is an error, never a silently short list."""
MAX_ITEMS = 1_000_000
"""A listing with more items than this is an error."""
MAX_BODY = 16 << 20
"""The largest Hub answer read (a repository with a 25000-character README is ~30 KiB)."""
OAT_ROUTES = ("/v2/auth/token", "/v2/namespaces/", "/api/search/")
"""Where an organization access token is accepted (plus ``/v2/orgs/{org}/groups``): the
namespace-scoped routes, per Docker's OAT reference (dockerhub-api.md §1, §12)."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = f"imagevet/{__version__}"

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
        """The body as JSON; HubError (its cause kept) when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as e:
            raise HubError(self.status, self.method, self.url, "response is not JSON") from e


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def oat_accepted(path: str) -> bool:
    """Whether Docker Hub takes an organization access token on ``path``."""
    if path.startswith(OAT_ROUTES):
        return True
    parts = path.split("/")  # "", "v2", "orgs", org, "groups", ...
    return len(parts) >= 5 and parts[1:3] == ["v2", "orgs"] and parts[4] == "groups"


class HubClient:
    """A Docker Hub API client over the registry client's transport and retry policy.

    ``credentials`` may be None for anonymous calls (public repositories, catalog search).
    ``transport`` defaults to an :class:`AiohttpTransport` of its own (closed by :meth:`aclose`,
    like a transport passed in); ``retry`` to ``RetryPolicy()``, the registry client's default;
    ``timeouts`` to :data:`DEFAULT_TIMEOUTS`.  ``clock`` and ``sleep`` are injectable so tests
    can run the wait for an exhausted ``X-RateLimit-Remaining`` without waiting.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_HUB_URL,
        credentials: HubCredentials | None = None,
        *,
        transport: Transport | None = None,
        retry: RetryPolicy | None = None,
        timeouts: TransferTimeouts | None = None,
        renew_margin: float = DEFAULT_RENEW_MARGIN,
        user_agent: str = _USER_AGENT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Hub base URL must be http(s) and absolute: {redact_url(base_url)!r}")
        if parts.username is not None or parts.password is not None:
            # never sent, never shown: the URL appears in logs, errors and doctor's report
            raise CredentialsError(
                f"the Hub URL {redact_url(base_url)} holds credentials (user:password@): "
                "give them as HubCredentials (DOCKER_HUB_USERNAME/DOCKER_HUB_TOKEN)"
            )
        self._base = base_url.rstrip("/")
        self._credentials = credentials
        self._timeouts = timeouts or DEFAULT_TIMEOUTS
        self._transport: Transport = transport or AiohttpTransport(
            max_connections_per_host=8,
            connect_timeout=self._timeouts.connect,
            read_timeout=self._timeouts.idle,
        )
        self._retry = retry or RetryPolicy()
        self._renew_margin = renew_margin
        self._user_agent = user_agent
        self._clock = clock
        self._sleep = sleep
        self._closed = False
        self._token: AccessToken | None = None
        self._login_lock = asyncio.Lock()
        self._rate: ApiRateLimit | None = None
        self.logins = 0
        """How many times this client logged in (tests and --debug read it)."""

    def __repr__(self) -> str:
        who = self._credentials.identifier if self._credentials else "anonymous"
        return f"HubClient({self._base!r}, {who!r})"

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def credentials(self) -> HubCredentials | None:
        return self._credentials

    @property
    def rate_limit(self) -> ApiRateLimit | None:
        """The ``X-RateLimit-*`` values of the last response."""
        return self._rate

    @property
    def retry(self) -> RetryPolicy:
        return self._retry

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
        """Close the transport; the client sends nothing afterwards."""
        self._closed = True
        await self._transport.aclose()

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (``/v2/...``) on the Hub, each segment percent-encoded."""
        return self._base + quote(path, safe="/:@!$&'()*+,;=-._~?%")

    def _secrets(self) -> list[str]:
        values = [self._token.value] if self._token is not None else []
        if self._credentials is not None:
            values.append(self._credentials.secret)
        return values

    # -- authentication -------------------------------------------------------------------

    async def login(self) -> None:
        """Exchange the credentials for a JWT (``POST /v2/auth/token``)."""
        if self._credentials is None:
            raise HubError(401, "POST", self.url("/v2/auth/token"), "no credentials given")
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
            creds = self._credentials
            assert creds is not None
            url = self.url("/v2/auth/token")
            body = json.dumps({"identifier": creds.identifier, "secret": creds.secret}).encode()
            response = await self._retry.call(lambda: self._attempt("POST", url, None, body))
            if not response.ok:
                error = self._error(response)
                if response.status in (401, 403):
                    hint = ""
                    if creds.kind is SecretKind.PASSWORD:
                        hint = " (an organization that enforces single sign-on refuses passwords: use a personal access token)"
                    error = HubError(
                        response.status,
                        "POST",
                        url,
                        f"login as {creds.identifier!r} failed: {error.message}{hint}",
                    )
                raise error
            data = response.json()
            value = data.get("access_token") if isinstance(data, dict) else None
            if not isinstance(value, str) or not value:
                raise HubError(response.status, "POST", url, "login answer has no access_token")
            self._token = AccessToken.issued(value, self._clock())
            self.logins += 1
            log.debug("logged in to %s as %s", self._base, creds.identifier)
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
        link, used verbatim).  With ``auth`` and credentials, the call carries the JWT; an
        organization access token is refused before sending on a route that does not take it
        (:class:`~imagevet.errors.HubTokenError`).  A ``page_size`` above the Hub's cap is sent
        as the cap.
        """
        url = self._resolve(path_or_url)
        if params:
            query = {k: str(v) for k, v in params.items()}
            if "page_size" in query and query["page_size"].isdigit():
                query["page_size"] = str(min(int(query["page_size"]), PAGE_SIZE_CAP))
            base, _, existing = url.partition("?")
            merged = dict(parse_qsl(existing, keep_blank_values=True))
            merged.update(query)
            url = base + "?" + urlencode(merged)
        token: AccessToken | None = None
        if auth and self._credentials is not None:
            path = urlsplit(url).path
            if self._credentials.kind is SecretKind.OAT and not oat_accepted(path):
                raise HubTokenError(
                    403,
                    method,
                    url,
                    "needs a personal access token: Docker Hub accepts organization access "
                    "tokens only on the namespace-scoped routes (/v2/namespaces/..., the org's "
                    "teams), and this is not one",
                )
            token = await self._ensure_token()
        body = None if json_body is None else json.dumps(json_body).encode()
        response = await self._retry.call(lambda: self._attempt(method, url, token, body))
        if response.status == 401 and token is not None:
            log.debug("%s %s: 401, logging in again", method, redact_url(url))
            token = await self._ensure_token(stale=token)
            response = await self._retry.call(lambda: self._attempt(method, url, token, body))
        if response.status in _REDIRECTS:
            location = scrub(redact_url(response.headers.get("Location") or "nowhere"), limit=300)
            raise HubError(
                response.status,
                method,
                url,
                f"redirected to {redact_url(location)}: Hub redirects are never followed (a "
                f"{method} must not be re-sent as a GET); the route is wrong, e.g. without "
                "its trailing slash",
            )
        if not response.ok and response.status not in accept:
            raise self._error(response)
        return response

    async def get_json(
        self, path_or_url: str, *, params: Params | None = None, auth: bool = True
    ) -> Any:
        """GET and decode the JSON body."""
        return (await self.request("GET", path_or_url, params=params, auth=auth)).json()

    async def paginate(
        self, path: str, *, params: Params | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[Any]:
        """Yield the ``results`` of every page, following the absolute ``next`` URL verbatim.

        Bounded: a ``next`` back to a page already read, more than :data:`MAX_PAGES` pages or
        more than :data:`MAX_ITEMS` items is a :class:`~imagevet.errors.LimitExceededError`.
        """
        query: dict[str, str | int] = dict(params or {})
        query["page_size"] = min(page_size, PAGE_SIZE_CAP)
        response = await self.request("GET", path, params=query)
        seen = {response.url}
        pages = items = 0
        while True:
            page = response.json()
            if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                raise HubError(200, "GET", response.url, "list answer has no results")
            pages += 1
            items += len(page["results"])
            if items > MAX_ITEMS:
                raise LimitExceededError(
                    f"GET {redact_url(self.url(path))}", f"more than {MAX_ITEMS} items"
                )
            for item in page["results"]:
                yield item
            next_url = page.get("next")
            if not next_url:
                return
            if not isinstance(next_url, str):
                raise HubError(200, "GET", response.url, "list answer has a malformed next link")
            if next_url in seen:
                raise LimitExceededError(
                    f"GET {redact_url(self.url(path))}",
                    f"the next link goes back to a page already read ({redact_url(next_url)})",
                )
            if pages >= MAX_PAGES:
                raise LimitExceededError(
                    f"GET {redact_url(self.url(path))}", f"more than {MAX_PAGES} pages"
                )
            seen.add(next_url)
            response = await self.request("GET", next_url)

    def _resolve(self, path_or_url: str) -> str:
        if path_or_url.startswith("/"):
            return self.url(path_or_url)
        if "://" not in path_or_url or _origin(path_or_url) != _origin(self._base):
            raise SecurityError(
                f"refusing to follow {redact_url(path_or_url)} from the Hub API at {self._base}: "
                "not the same origin"
            )
        return path_or_url

    def _error(self, response: HubResponse) -> HubError:
        return hub_error(
            response.status,
            response.method,
            response.url,
            response.body,
            headers=response.headers,
            now=self._clock(),
            secrets=self._secrets(),
        )

    async def _attempt(
        self, method: str, url: str, token: AccessToken | None, body: bytes | None
    ) -> HubResponse:
        """One send; raises the typed error of a status the retry policy retries."""
        await self._respect_remaining()
        response = await self._send(method, url, token, body)
        if response.status == 429 or (response.status >= 500 and response.status != 501):
            raise self._error(response)
        return response

    async def _respect_remaining(self) -> None:
        rate = self._rate
        if rate is None or not rate.exhausted or rate.reset is None:
            return
        self._rate = None  # wait once per exhaustion, not once per waiting task
        wait = min(max(0.0, rate.reset - self._clock()), self._retry.max_retry_after)
        if wait > 0:
            log.info("Hub API rate limit used up, waiting %.1fs for the reset", wait)
            await self._sleep(wait)

    async def _send(
        self, method: str, url: str, token: AccessToken | None, body: bytes | None
    ) -> HubResponse:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        if self._closed:  # a task still running after the client closed must not send
            refused = TransportError(method, url, "the Hub client is closed")
            refused.exhausted = True
            raise refused
        started = time.perf_counter()
        try:
            resp = await self._transport.send(Request(method, url, headers, body))
        except Exception as e:
            log.debug(
                "%s %s -> %s in %.1f ms",
                method,
                redact_url(url),
                getattr(e, "reason", None) or type(e).__name__,
                (time.perf_counter() - started) * 1000,
            )
            raise
        resp.secrets = self._secrets()
        resp.pace(method, self._timeouts)
        limit = MAX_BODY if 200 <= resp.status < 300 else ERROR_BODY_LIMIT
        data = await resp.read(limit)
        if len(data) > limit:
            if 200 <= resp.status < 300:
                raise LimitExceededError(
                    f"{method} {redact_url(url)}", f"answer larger than {limit >> 20} MiB"
                )
            data = data[:limit]
        rate = ApiRateLimit.from_headers(resp.headers)
        if rate is not None:
            self._rate = rate
        log.debug(
            "%s %s -> %d in %.1f ms",
            method,
            redact_url(url),
            resp.status,
            (time.perf_counter() - started) * 1000,
        )
        return HubResponse(method, url, resp.status, resp.headers, data)
