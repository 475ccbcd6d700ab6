"""A scriptable registry for MockTransport tests: routes, Bearer/Basic auth, token service."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from imagevet.registry import RegistryClient, RegistryHost, RetryPolicy, TransferTimeouts
from imagevet.registry.credentials import CredentialStore
from imagevet.registry.mock import MockTransport
from imagevet.registry.transport import Request, Response

REGISTRY = "registry.example"
BASE = f"https://{REGISTRY}"
REALM = "https://auth.example/token"
SERVICE = "registry.example"

Route = Callable[[Request], Response | Awaitable[Response]]


def respond(
    status: int = 200, body: bytes | str = b"", headers: dict[str, str] | None = None
) -> Response:
    data = body.encode() if isinstance(body, str) else body
    return Response.from_bytes(status, headers or {}, data)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return respond(status, json.dumps(obj), {"Content-Type": "application/json", **(headers or {})})


def error(status: int, code: str, message: str = "") -> Response:
    return json_response({"errors": [{"code": code, "message": message}]}, status)


def path_of(req: Request) -> str:
    return urlsplit(req.url).path


def query_of(req: Request) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(req.url).query, keep_blank_values=True)


def header(req: Request, name: str) -> str | None:
    for k, v in req.headers.items():
        if k.lower() == name.lower():
            return v
    return None


@dataclass
class FakeRegistry:
    """Routes keyed by (method, path); auth ``"none"``, ``"basic"`` or ``"bearer"``.

    The token service issues ``tok-<n>`` for any request (``token_status`` to refuse) and records
    the query of each token request in ``token_queries``.
    """

    auth: str = "none"
    realm: str = REALM
    basic: tuple[str, str] = ("alice", "pw-s3cret")
    expires_in: int | None = 300
    token_status: int = 200
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    valid_tokens: set[str] = field(default_factory=set)
    token_queries: list[list[tuple[str, str]]] = field(default_factory=list)
    token_requests: list[Request] = field(default_factory=list)
    _n: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def route(self, method: str, path: str) -> Callable[[Route], Route]:
        def deco(fn: Route) -> Route:
            self.routes[(method, path)] = fn
            return fn

        return deco

    def challenge(self) -> str:
        if self.auth == "basic":
            return 'Basic realm="registry"'
        return f'Bearer realm="{self.realm}",service="{SERVICE}"'

    def authorized(self, req: Request) -> bool:
        value = header(req, "Authorization")
        if self.auth == "none":
            return True
        if self.auth == "basic":
            want = base64.b64encode(":".join(self.basic).encode()).decode()
            return value == f"Basic {want}"
        return value is not None and value.removeprefix("Bearer ") in self.valid_tokens

    def issue(self, req: Request) -> Response:
        self.token_requests.append(req)
        self.token_queries.append(query_of(req))
        if self.token_status != 200:
            return error(self.token_status, "UNAUTHORIZED", "bad credentials")
        token = f"tok-{next(self._n)}"
        self.valid_tokens.add(token)
        body: dict[str, Any] = {"token": token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return json_response(body)

    def __call__(self, req: Request) -> Response | Awaitable[Response]:
        if req.url.split("?", 1)[0] == self.realm:
            return self.issue(req)
        if not req.url.startswith(BASE):
            raise AssertionError(f"unexpected request to {req.url}")
        if not self.authorized(req):
            return respond(401, "", {"WWW-Authenticate": self.challenge()})
        fn = self.routes.get((req.method, path_of(req)))
        if fn is None:
            return error(404, "NAME_UNKNOWN", "no route")
        return fn(req)


def sync(reg: FakeRegistry, req: Request) -> Response:
    """``reg(req)`` for routes known to answer synchronously."""
    resp = reg(req)
    assert isinstance(resp, Response)
    return resp


def make_client(
    handler: Callable[[Request], Response | Awaitable[Response]] | MockTransport,
    *,
    credentials: CredentialStore | None = None,
    hosts: dict[str, RegistryHost] | None = None,
    retry: RetryPolicy | None = None,
    timeouts: TransferTimeouts | None = None,
) -> tuple[RegistryClient, MockTransport]:
    transport = handler if isinstance(handler, MockTransport) else MockTransport(handler)
    client = RegistryClient(
        transport=transport,
        credentials=credentials,
        hosts=hosts,
        retry=retry or RetryPolicy.no_wait(attempts=4),
        timeouts=timeouts,
    )
    return client, transport
