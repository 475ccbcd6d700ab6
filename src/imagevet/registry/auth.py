"""Registry authentication: Basic, and Bearer tokens from the distribution token service.

The handshake (distribution token spec, docs.docker.com "registry token authentication"):

1. A request without credentials gets ``401`` with ``WWW-Authenticate: Bearer realm=...,
   service=...``.  The first request to a registry learns the challenge while later requests
   to it wait, so a burst of requests does not become a burst of 401s.
2. The token is fetched from the realm with one ``scope=`` parameter per resource
   (``repository:src:pull`` and ``repository:dst:pull,push`` for a mount), anonymously, with
   Basic credentials, or by POSTing an identity token (``grant_type=refresh_token``).
3. Tokens are cached per (realm, service, sorted scopes) until shortly before they expire
   (``expires_in``, 60 s when absent or shorter); concurrent requests share one fetch.
4. A ``401`` on a request sent with a cached token drops that token and re-authenticates once.

Safety: an ``http`` realm is refused for an ``https`` registry, and for a plain-HTTP registry
unless the realm is on loopback (or the host is configured insecure); credentials and tokens
are never logged nor put in exception messages.  :attr:`Authenticator.secrets` holds every
credential value met (passwords, identity tokens, Basic values and what they decode to, issued
tokens), so error text a registry sends back can be masked with them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from imagevet.errors import RegistryError, SecurityError, UnauthorizedError, redact_url
from imagevet.registry.challenge import Challenge, parse_challenges, pick_challenge
from imagevet.registry.credentials import Credential, CredentialStore
from imagevet.registry.hosts import RegistryHost
from imagevet.registry.responses import raise_for_status
from imagevet.registry.transport import Request, Response
from imagevet.registry.urls import split_origin

__all__ = ["DEFAULT_TOKEN_LIFETIME", "Authenticator", "TokenKey", "basic_header"]

log = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME = 60.0
TOKEN_BODY_LIMIT = 1 << 20
CLIENT_ID = "imagevet"

TokenKey = tuple[str, str, tuple[str, ...]]
#: Sends a token request (the client counts it as kind ``token``) and returns the response.
TokenSender = Callable[[Request, str], Awaitable[Response]]


def basic_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(slots=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float
    expires_at: float


class Authenticator:
    """Per-registry auth state: the challenge each registry sent and the tokens it granted."""

    def __init__(
        self,
        credentials: CredentialStore | None,
        send: TokenSender,
        *,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = "",
    ) -> None:
        self._credentials = credentials
        self._send = send
        self.clock = clock
        self._user_agent = user_agent
        self._challenges: dict[str, Challenge | None] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._tokens: dict[TokenKey, _Token] = {}
        self._inflight: dict[TokenKey, asyncio.Future[_Token]] = {}
        self.secrets: set[str] = set()
        """Every credential value met so far: masked in error text (never shown, only grown)."""

    # -- learning the challenge -----------------------------------------------------------------

    def known(self, registry: str) -> bool:
        """Whether a request to ``registry`` has already shown whether (and how) it wants auth."""
        return registry in self._challenges

    async def enter_gate(self, registry: str) -> asyncio.Event | None:
        """Let the first request to ``registry`` through alone; the others wait for its outcome.

        Returns the gate to pass to :meth:`leave_gate` when this caller is the first one.
        """
        gate = self._gates.get(registry)
        if gate is None:
            gate = self._gates[registry] = asyncio.Event()
            return gate
        await gate.wait()
        return None

    def leave_gate(self, registry: str, gate: asyncio.Event) -> None:
        self._challenges.setdefault(registry, None)
        gate.set()

    def challenge(self, registry: str) -> Challenge | None:
        return self._challenges.get(registry)

    # -- headers ---------------------------------------------------------------------------------

    async def header(
        self, registry: str, host: RegistryHost, base_url: str, scopes: tuple[str, ...]
    ) -> str | None:
        """The ``Authorization`` value for a request to ``registry`` needing ``scopes``."""
        challenge = self._challenges.get(registry)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            cred = await self._credential(registry)
            return (
                basic_header(cred.username, cred.password) if cred and cred.has_password else None
            )
        token = await self._token(registry, host, base_url, challenge, scopes)
        return f"Bearer {token.value}"

    async def on_unauthorized(
        self,
        registry: str,
        host: RegistryHost,
        base_url: str,
        scopes: tuple[str, ...],
        www_authenticate: Iterable[str],
        sent: str | None,
    ) -> str | None:
        """Learn from a 401; return a new ``Authorization`` value worth one retry, else None."""
        challenge = pick_challenge(parse_challenges(www_authenticate))
        if challenge is None:
            return None
        old = self._challenges.get(registry)
        self._challenges[registry] = challenge
        if sent is not None and sent.startswith("Bearer "):
            self._drop_token(sent[len("Bearer ") :])
        if challenge.scheme == "bearer" and not scopes and challenge.scope:
            scopes = (challenge.scope,)
        header = await self.header(registry, host, base_url, scopes)
        if header is None or header == sent:
            return None
        if old is not None and old.scheme == "basic" and header == sent:
            return None
        return header

    def _drop_token(self, value: str) -> None:
        for key, token in list(self._tokens.items()):
            if token.value == value:
                del self._tokens[key]

    async def _credential(self, registry: str) -> Credential | None:
        if self._credentials is None:
            return None
        cred = await self._credentials.get(registry)
        if cred is not None:
            self._remember(cred)
        return cred

    def _remember(self, cred: Credential) -> None:
        for secret in (cred.password, cred.identity_token):
            if secret:
                self.secrets.add(secret)
                pair = f"{cred.username or '<token>'}:{secret}"
                self.secrets.update((pair, base64.b64encode(pair.encode()).decode("ascii")))

    # -- tokens ------------------------------------------------------------------------------------

    def cached_keys(self) -> list[TokenKey]:
        """The keys of the tokens held now (for tests and diagnostics; values are not exposed)."""
        return list(self._tokens)

    async def _token(
        self,
        registry: str,
        host: RegistryHost,
        base_url: str,
        challenge: Challenge,
        scopes: tuple[str, ...],
    ) -> _Token:
        key: TokenKey = (challenge.realm, challenge.service, tuple(sorted(set(scopes))))
        while True:
            token = self._tokens.get(key)
            if token is not None and self.clock() < token.refresh_at:
                return token
            pending = self._inflight.get(key)
            if pending is None:
                return await self._fetch_shared(key, registry, host, base_url, challenge)
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and task is not None and not task.cancelling():
                    continue  # the fetching request was cancelled, not this one: fetch anew
                raise

    async def _fetch_shared(
        self,
        key: TokenKey,
        registry: str,
        host: RegistryHost,
        base_url: str,
        challenge: Challenge,
    ) -> _Token:
        """Fetch the token for ``key`` while concurrent requests for it wait on the same future."""
        pending: asyncio.Future[_Token] = asyncio.get_running_loop().create_future()
        self._inflight[key] = pending
        try:
            fresh = await self._fetch(registry, host, base_url, challenge, key[2])
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except BaseException as e:
            pending.set_exception(e)
            pending.exception()  # retrieved: the waiters re-raise it
            raise
        finally:
            self._inflight.pop(key, None)
        self._tokens[key] = fresh
        pending.set_result(fresh)
        return fresh

    async def _fetch(
        self,
        registry: str,
        host: RegistryHost,
        base_url: str,
        challenge: Challenge,
        scopes: tuple[str, ...],
    ) -> _Token:
        realm = challenge.realm
        _check_realm(realm, base_url, host)
        cred = await self._credential(registry)
        params: list[tuple[str, str]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        headers = {"Accept": "application/json"}
        if self._user_agent:
            headers["User-Agent"] = self._user_agent
        if cred is not None and cred.identity_token:
            form = [
                ("grant_type", "refresh_token"),
                *params,
                ("client_id", CLIENT_ID),
                ("refresh_token", cred.identity_token),
            ]
            if scopes:
                form.append(("scope", " ".join(scopes)))
            post = Request(
                "POST",
                realm,
                {**headers, "Content-Type": "application/x-www-form-urlencoded"},
                urlencode(form).encode(),
            )
            resp = await self._send(post, registry)
            if resp.status not in (404, 405):
                return await self._read_token(resp, "POST", registry)
            await resp.aclose()
            # no OAuth2 endpoint: present the identity token with Basic, as Docker does
            headers["Authorization"] = basic_header(cred.username or "<token>", cred.identity_token)
        elif cred is not None and cred.has_password:
            headers["Authorization"] = basic_header(cred.username, cred.password)
        params.extend(("scope", s) for s in scopes)
        url = realm
        if params:
            url += ("&" if "?" in realm else "?") + urlencode(params)
        resp = await self._send(Request("GET", url, headers), registry)
        return await self._read_token(resp, "GET", registry)

    async def _read_token(self, resp: Response, method: str, registry: str) -> _Token:
        try:
            await raise_for_status(resp, method)
        except UnauthorizedError as e:
            why = "; ".join(d.message or d.code for d in e.diagnostics) or e.body.strip()[:200]
            raise UnauthorizedError(
                e.status,
                method,
                e.url,
                body=f"the token service refused the credentials for {registry}"
                + (f" ({why})" if why else ""),
            ) from None
        body = await resp.read(TOKEN_BODY_LIMIT)
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        value = obj.get("token") or obj.get("access_token") if isinstance(obj, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryError(
                resp.status, method, resp.url, body="token response without a token"
            )
        lifetime = DEFAULT_TOKEN_LIFETIME
        expires_in = obj.get("expires_in") if isinstance(obj, dict) else None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            lifetime = max(float(expires_in), DEFAULT_TOKEN_LIFETIME)
        self.secrets.add(value)
        now = self.clock()
        ahead = min(30.0, lifetime * 0.1)
        log.debug("token for %s from %s, lifetime %.0f s", registry, redact_url(resp.url), lifetime)
        return _Token(value, now + lifetime - ahead, now + lifetime)


def _check_realm(realm: str, base_url: str, host: RegistryHost) -> None:
    """Refuse a realm that would send credentials in clear or is not an http(s) URL."""
    scheme, sep, _ = realm.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise SecurityError(f"refusing token realm {redact_url(realm)!r}: not an http(s) URL")
    if scheme == "https":
        return
    if base_url.startswith("https://"):
        raise SecurityError(
            f"refusing plain-HTTP token realm {redact_url(realm)} for HTTPS registry {base_url}"
        )
    authority = split_origin(realm)[0].split("://", 1)[1]
    if not host.allows_plain_http_to(authority):
        raise SecurityError(
            f"refusing plain-HTTP token realm {redact_url(realm)}: not loopback and the "
            "registry is not configured insecure"
        )
