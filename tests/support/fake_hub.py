"""A fake Docker Hub that follows ``shared/dockerhub-api.md`` to the letter, for tests.

It serves the §11 surface on 127.0.0.1 from a background thread (so sync tests, async tests and
CLI runs all reach it)::

    POST /v2/auth/token                                    users (password, PATs), OATs (org name)
    GET|POST /v2/namespaces/{ns}/repositories              paginated list / create (strict body)
    GET|HEAD|PATCH /v2/namespaces/{ns}/repositories/{r}    PATCH: descriptions (hub-mcp), OATs too
    GET|HEAD /v2/namespaces/{ns}/repositories/{r}/tags[/{tag}]
    PATCH|DELETE /v2/repositories/{ns}/{r}/                legacy [client] routes
    POST /v2/repositories/{ns}/{r}/privacy/
    POST /v2/repositories/{ns}/{r}/groups                  grant a team
    GET|PATCH|DELETE /v2/repositories/{ns}/{r}/groups/{id}/
    GET /v2/repositories/{ns}/{r}/, /v2/repositories/{ns}/, /v2/users/{u}/repositories
                                                           legacy reads: OATs refused (403)
    GET /v2/orgs/{org}/groups[/{name}]
    GET|PUT /v2/orgs/{org}/settings                        PAT or password only
    GET /api/search/v4, /api/search/v3/catalog/search      fuzzy, like the real one; v4 gives
                                                           community badges as null
    GET /token                                             the registry token service (pluggable)

Every response carries ``X-RateLimit-*``; :meth:`FakeHub.throttle` makes the next calls answer
429 with ``Retry-After`` in seconds, ``Retry-After`` as a unix time (as a live 429 did,
dockerhub-api.md §12) or the older ``X-Retry-After``.  Lists paginate with absolute ``next``
URLs built from the fake's own base, a page past the end is 404, and a ``page_size`` above 100
is capped to 100 (as the real Hub does; the request is recorded as a violation).  Errors use
the §2 bodies.

As strict as the real Hub on what dockerhub-api.md §12 corrected:

* the legacy ``/v2/repositories/...`` routes exist only with their trailing slash: without it
  every method is answered ``301`` to the slashed URL (a client must not turn a POST into a GET);
* organization access tokens are accepted on the namespace-scoped routes
  (``/v2/namespaces/...``, plus the org's teams) only: any ``/v2/repositories/...`` or
  ``/v2/users/...`` call with one is answered ``403 token issued from organization access token
  is not allowed``, and so are the IAM settings;
* creating repositories, editing descriptions, changing privacy and granting teams need a PAT of
  level ``repo:admin`` ("Read, Write, Delete"); ``repo:write`` is refused with 403;
* the create body requires ``namespace`` (equal to the path's);
* an org in :attr:`FakeHub.sso_orgs` refuses password logins of its members (PAT required).

Requests are checked strictly: an unknown route, an unknown query parameter or body field, a
missing required field, a wrong type, an over-long description or an ``Authorization: JWT``
header is answered 400 (or 404) *and* recorded in :attr:`FakeHub.violations`; the
``fake_hub`` fixture fails the test when that list is not empty at teardown.

Fixtures: ``fake_hub`` (started, seeded by :meth:`FakeHub.seed_default`: org ``acme``, team
``developers``, owner ``alice`` with a password and a ``repo:admin`` PAT, an OAT with every scope
imagevet uses; ``hub.seed`` holds them) and ``fake_hub_registry`` (the same plus a real
token-auth ``docker-registry`` whose token service is the fake Hub's ``/token``).

Access rules the reference leaves open are our assumptions, kept simple: org owners and
editors may create and edit repositories and team permissions with a ``repo:admin`` PAT; any org
member may read teams and settings (owners may PUT them); OATs carry explicit scopes.
"Already exists" on create answers :attr:`FakeHub.exists_status`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import jwt
import pytest
from aiohttp import web

from tests.support.registry_process import RunningRegistry, start_registry
from tests.support.server_thread import ServerThread
from tests.support.token_server import TokenServer

__all__ = [
    "DEFAULT_ORG",
    "DEFAULT_TEAM",
    "DEFAULT_USER",
    "FakeHub",
    "HubRegistry",
    "LoggedRequest",
    "Seed",
    "TokenService",
    "fake_hub",
    "fake_hub_registry",
    "start_hub_registry",
]

DEFAULT_ORG = "acme"
DEFAULT_TEAM = "developers"
DEFAULT_USER = "alice"

PAT_LEVELS = ("repo:public_read", "repo:read", "repo:write", "repo:admin")
OAT_REFUSED = "token issued from organization access token is not allowed"
_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_PAGE_PARAMS = {"page", "page_size"}
_SEARCH_FILTERS = {"type", "source", "official", "open_source", "badges", "sort", "order"}
_SEARCH_V4_PARAMS = {
    "query", "from", "size", "sort", "order", "type", "badges", "categories", "architectures",
    "operating_systems", "extension_reviewed", "images", "custom_boosted_results",
}
PAGE_SIZE_CAP = 100
SSO_REFUSED = "Password login is not allowed: single sign-on is enforced, use a personal access token"
_NOW = "2025-01-20T10:30:00Z"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenService(Protocol):
    """What :meth:`FakeHub.attach_token_service` needs: ``tests.support.token_server.TokenServer``."""

    users: dict[str, str]
    acl: Callable[[str | None, str, set[str]], set[str]]
    url: str

    async def handle(self, request: web.Request) -> web.Response: ...


class HubHTTPError(Exception):
    """Raised inside a handler to answer with an error body."""

    def __init__(self, status: int, message: str, *, detail: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        body: dict[str, Any] = {"errinfo": None, "detail": detail or message, "message": message}
        body.update(extra)
        self.body = body


@dataclass
class LoggedRequest:
    """One request the fake saw (the Authorization value is never kept)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    principal: str | None
    status: int = 0


@dataclass
class Principal:
    """Who a JWT belongs to."""

    kind: str  # "password" | "pat" | "oat"
    name: str  # username, or org name for an OAT
    pat_level: str | None = None
    oat_scopes: frozenset[str] = frozenset()


@dataclass
class Seed:
    """What :meth:`FakeHub.seed_default` created."""

    org: str
    team: str
    team_id: int
    username: str
    password: str
    pat: str
    oat: str


@dataclass
class _Org:
    name: str
    members: dict[str, str] = field(default_factory=dict)  # username -> owner|editor|member
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> org_group + members
    oats: dict[str, frozenset[str]] = field(default_factory=dict)
    settings: dict[str, bool] = field(
        default_factory=lambda: {
            "enabled": False,
            "allow_official_images": True,
            "allow_verified_publishers": True,
        }
    )


@dataclass
class _Rule:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: Callable[..., Awaitable[web.StreamResponse]]
    query: frozenset[str] = frozenset()


def _ok_type(value: Any, kind: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and kind is int:
        return False
    return isinstance(value, kind)


class FakeHub:
    """The fake Hub: seed it with Python calls, start it, point a client at :attr:`url`."""

    def __init__(self, *, jwt_lifetime: float = 600.0, rate_limit: int = 180) -> None:
        self.jwt_lifetime = jwt_lifetime
        self.rate_limit = rate_limit
        self.rate_window = 60.0
        self.exists_status = 400
        self.catalog_status: int | None = None
        self.catalog_delay = 0.0
        self.next_base: str | None = None  # emit `next` on another origin (to test refusal)
        self.next_loop = False  # every `next` points back at page 1 (to test bounded paging)
        self.search_v4 = True  # False: /api/search/v4 answers 404 (v3 is the fallback)
        self.search_v3 = True  # False: the undocumented v3 route is gone (404)
        self.sso_orgs: set[str] = set()
        self.requests: list[LoggedRequest] = []
        self.violations: list[str] = []
        self.logins = 0
        self.url = ""
        self.seed: Seed | None = None
        self._lock = threading.RLock()
        self._key = secrets.token_bytes(32)
        self._generation = 0
        self._passwords: dict[str, str] = {}
        self._pats: dict[str, tuple[str, str]] = {}  # token -> (username, level)
        self._orgs: dict[str, _Org] = {}
        self._repos: dict[tuple[str, str], dict[str, Any]] = {}
        self._catalog: list[dict[str, Any]] = []
        self._ids = itertools.count(1000)
        self._window_start = time.time()
        self._window_count = 0
        self._throttle: list[tuple[float, str]] = []
        self._token_service: TokenService | None = None
        self._server: ServerThread | None = None
        self._rules = self._routes()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeHub:
        """Serve on a free port of 127.0.0.1; :attr:`url` is then ``http://127.0.0.1:PORT``."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._server = ServerThread([app], name="fake-hub")
        (port,) = self._server.start()
        # ServerThread.start returns while its loop may still be ending run_until_complete(setup);
        # a stop() landing then is lost (join waits 10 s).  Two loop turns put it in run_forever.
        self._server.call(asyncio.sleep(0))
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- seeding --------------------------------------------------------------------------

    def add_user(self, username: str, *, password: str | None = None) -> str:
        """Create a user; return its password."""
        with self._lock:
            self._passwords[username] = password or "pw-" + secrets.token_hex(8)
            self._sync_token_users()
            return self._passwords[username]

    def add_pat(self, username: str, *, level: str = "repo:admin", token: str | None = None) -> str:
        """Give ``username`` a personal access token of ``level``; return it."""
        assert level in PAT_LEVELS, level
        value = token or "dckr_pat_" + secrets.token_urlsafe(20)
        with self._lock:
            assert username in self._passwords, f"unknown user {username}"
            self._pats[value] = (username, level)
            self._sync_token_users()
        return value

    def add_org(self, name: str, *, members: Mapping[str, str] | None = None) -> None:
        """Create an org; ``members`` maps username -> ``owner``/``editor``/``member``."""
        with self._lock:
            org = self._orgs.setdefault(name, _Org(name))
            org.members.update(members or {})

    def add_oat(
        self, org: str, scopes: set[str] | frozenset[str], *, token: str | None = None
    ) -> str:
        """Create an organization access token with ``scopes``; its identifier is ``org``."""
        value = token or "dckr_oat_" + secrets.token_urlsafe(20)
        with self._lock:
            self._orgs[org].oats[value] = frozenset(scopes)
            self._sync_token_users()
        return value

    def add_team(self, org: str, name: str, *, members: tuple[str, ...] = ()) -> int:
        """Create a team ("group"); return its numeric id."""
        with self._lock:
            gid = next(self._ids)
            self._orgs[org].teams[name] = {
                "id": gid,
                "uuid": str(uuid.uuid4()),
                "name": name,
                "description": "",
                "member_count": len(members),
                "members": list(members),
            }
            return gid

    def add_team_member(self, org: str, team: str, username: str) -> None:
        with self._lock:
            group = self._orgs[org].teams[team]
            group["members"].append(username)
            group["member_count"] = len(group["members"])

    def add_repository(
        self,
        namespace: str,
        name: str,
        *,
        private: bool = False,
        description: str = "",
        full_description: str = "",
    ) -> None:
        with self._lock:
            self._repos[(namespace, name)] = self._new_repo(
                namespace, name, private, description, full_description
            )

    def add_tag(
        self,
        namespace: str,
        repo: str,
        tag: str,
        *,
        digest: str,
        platforms: Mapping[str, str] | None = None,
        last_pushed: str = _NOW,
        media_type: str = "application/vnd.oci.image.index.v1+json",
    ) -> None:
        """Add a tag; ``platforms`` maps ``os/arch`` to the per-platform manifest digest."""
        images = []
        for platform, image_digest in (platforms or {}).items():
            os_, _, arch = platform.partition("/")
            images.append(
                {
                    "architecture": arch,
                    "os": os_,
                    "variant": None,
                    "features": "",
                    "os_features": "",
                    "os_version": None,
                    "digest": image_digest,
                    "size": 1000,
                    "status": "active",
                    "last_pushed": last_pushed,
                    "last_pulled": None,
                }
            )
        with self._lock:
            stored = self._repos[(namespace, repo)]
            stored["_tags"][tag] = {
                "id": next(self._ids),
                "name": tag,
                "repository": stored["_id"],
                "creator": 7,
                "last_updater": 7,
                "last_updater_username": "ci-bot",
                "last_updated": last_pushed,
                "tag_last_pushed": last_pushed,
                "tag_last_pulled": None,
                "tag_status": "active",
                "full_size": 1000 * max(1, len(images)),
                "v2": True,
                "media_type": media_type,
                "content_type": "image",
                "digest": digest,
                "images": images,
            }

    def add_catalog_entry(
        self, repo_id: str, *, badge: str | None, popularity: int = 0, publisher: str | None = None
    ) -> None:
        """List ``repo_id`` (``ns/name``, or a bare name for officials) in the catalog search.

        ``badge=None`` is a community image as v4 shows it (``"badge": null``); v3 shows
        ``"none"`` for it."""
        assert badge in ("official", "verified_publisher", "open_source", "none", None), badge
        ns = repo_id.split("/", 1)[0] if "/" in repo_id else "library"
        with self._lock:
            self._catalog.append(
                {
                    "id": repo_id,
                    "name": repo_id,
                    "slug": repo_id,
                    "type": "image",
                    "publisher": {"id": publisher or ns, "name": publisher or ns},
                    "badge": badge,
                    "source": "store" if badge == "verified_publisher" else "community",
                    "short_description": "",
                    "star_count": 0,
                    "pull_count": "1M+",
                    "created_at": _NOW,
                    "updated_at": _NOW,
                    "logo_url": {"small": "", "large": ""},
                    "architectures": [],
                    "categories": [],
                    "_popularity": popularity,
                }
            )

    def set_settings(
        self, org: str, *, enabled: bool, allow_official: bool = True, allow_verified: bool = True
    ) -> None:
        with self._lock:
            self._orgs[org].settings = {
                "enabled": enabled,
                "allow_official_images": allow_official,
                "allow_verified_publishers": allow_verified,
            }

    def set_team_permission(self, namespace: str, repo: str, team: str, permission: str) -> None:
        with self._lock:
            gid = self._orgs[namespace].teams[team]["id"]
            self._repos[(namespace, repo)]["_groups"][gid] = permission

    def seed_default(self) -> Seed:
        """Org ``acme`` with owner ``alice`` (password and ``repo:admin`` PAT), team
        ``developers``, and an OAT holding every scope imagevet uses."""
        password = self.add_user(DEFAULT_USER)
        pat = self.add_pat(DEFAULT_USER)
        self.add_org(DEFAULT_ORG, members={DEFAULT_USER: "owner"})
        team_id = self.add_team(DEFAULT_ORG, DEFAULT_TEAM, members=(DEFAULT_USER,))
        oat = self.add_oat(
            DEFAULT_ORG,
            {
                "scope-repository-create",
                "scope-repository-list",
                "scope-repository-read",
                "scope-repository-edit",
                "scope-tag-read",
                "scope-image-pull",
                "scope-repo-group-read",
                "scope-repo-group-edit",
                "scope-group-read",
            },
        )
        self.seed = Seed(DEFAULT_ORG, DEFAULT_TEAM, team_id, DEFAULT_USER, password, pat, oat)
        return self.seed

    def attach_token_service(self, service: TokenService) -> None:
        """Serve ``service.handle`` at ``GET /token`` (the realm becomes ``<hub url>/token``);
        its users and ACL follow the Hub's state (user:password, user:PAT, org:OAT; push needs
        org editor/owner or a team write grant).  Call after :meth:`start`."""
        assert self.url, "start the fake Hub first"
        with self._lock:
            self._token_service = service
            service.url = self.url
            service.acl = self.registry_acl
            self._sync_token_users()

    # -- faults and inspection ---------------------------------------------------------------

    def throttle(self, times: int, *, retry_after: float = 1.0, style: str = "seconds") -> None:
        """Answer the next ``times`` API calls 429 asking to wait ``retry_after`` seconds, as
        ``style`` says: ``seconds`` (``Retry-After: 7``), ``unix`` (``Retry-After: <now + 7>``,
        as a live Hub 429 did) or ``x-unix`` (the older ``X-Retry-After: <now + 7>``)."""
        assert style in ("seconds", "unix", "x-unix"), style
        with self._lock:
            self._throttle.extend([(retry_after, style)] * times)

    def expire_tokens(self) -> None:
        """Invalidate every JWT issued so far (the next call with one gets 401)."""
        with self._lock:
            self._generation += 1

    def repository(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored repository JSON (without internal keys), or None."""
        with self._lock:
            repo = self._repos.get((namespace, name))
            return None if repo is None else self._repo_info(repo)

    def team_permission(self, namespace: str, repo: str, team: str) -> str | None:
        with self._lock:
            gid = self._orgs[namespace].teams[team]["id"]
            perm: str | None = self._repos[(namespace, repo)]["_groups"].get(gid)
            return perm

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[LoggedRequest]:
        """Logged requests, filtered by method and path prefix."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and r.path.startswith(path_prefix)
            ]

    # -- registry ACL -----------------------------------------------------------------------

    def registry_acl(self, user: str | None, repository: str, wanted: set[str]) -> set[str]:
        """What the registry token service grants ``user`` on ``repository``."""
        ns, _, name = repository.partition("/")
        with self._lock:
            repo = self._repos.get((ns, name))
            org = self._orgs.get(ns)
            allowed: set[str] = set()
            if repo is not None and not repo["is_private"]:
                allowed.add("pull")
            if user is None:
                return wanted & allowed
            if user == ns or (org is not None and user == org.name and org.oats):
                return set(wanted)
            if org is not None:
                role = org.members.get(user)
                if role in ("owner", "editor"):
                    return set(wanted)
                if role is not None and repo is not None:
                    for team in org.teams.values():
                        if user in team["members"]:
                            perm = repo["_groups"].get(team["id"])
                            if perm is not None:
                                allowed.add("pull")
                            if perm in ("write", "admin"):
                                allowed.add("push")
            return wanted & allowed

    def _sync_token_users(self) -> None:
        service = self._token_service
        if service is None:
            return
        service.users.update(self._passwords)
        for token, (user, _level) in self._pats.items():
            service.users[user] = token  # the newest PAT wins: one secret per identifier
        for org in self._orgs.values():
            for token in org.oats:
                service.users[org.name] = token

    # -- plumbing ---------------------------------------------------------------------------

    def _violation(self, request: web.Request, what: str) -> None:
        with self._lock:
            self.violations.append(f"{request.method} {request.path}: {what}")

    def _rate_headers(self) -> dict[str, str]:
        now = time.time()
        with self._lock:
            if now - self._window_start >= self.rate_window:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            remaining = max(0, self.rate_limit - self._window_count)
            reset = self._window_start + self.rate_window
            over = self._window_count > self.rate_limit
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(math.ceil(reset))),
        }
        if over:
            headers["Retry-After"] = str(max(1, int(math.ceil(reset - now))))
        return headers

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            if raw:
                if request.content_type != "application/json":
                    self._violation(request, f"body sent as {request.content_type}, not JSON")
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = "<not json>"
        entry = LoggedRequest(
            request.method,
            request.path,
            {k: request.query.getall(k) for k in request.query},
            body,
            None,
        )
        with self._lock:
            self.requests.append(entry)
        if path == "/token":
            if self._token_service is None:
                entry.status = 404
                return web.json_response({"detail": "no token service attached"}, status=404)
            token_response = await self._token_service.handle(request)
            entry.status = token_response.status
            return token_response
        response = await self._api(request, path, body, entry)
        entry.status = response.status
        return response

    async def _api(
        self, request: web.Request, path: str, body: Any, entry: LoggedRequest
    ) -> web.StreamResponse:
        rate = self._rate_headers()
        with self._lock:
            injected = self._throttle.pop(0) if self._throttle else None
        if injected is not None or "Retry-After" in rate:
            if injected is not None:
                wait, style = injected
                rate.pop("Retry-After", None)
                if style == "x-unix":
                    rate["X-Retry-After"] = str(int(math.ceil(time.time() + wait)))
                elif style == "unix":
                    rate["Retry-After"] = str(int(math.ceil(time.time() + wait)))
                else:
                    rate["Retry-After"] = f"{wait:g}"
            return web.json_response(
                {"detail": "Rate limit exceeded", "error": False}, status=429, headers=rate
            )
        response: web.StreamResponse
        if request.path.startswith("/v2/repositories/") and not request.path.endswith("/"):
            # docker/docs#3832, docker/hub-feedback#976: the legacy routes live at the slashed
            # URL; the unslashed one answers 301 for every method (a POST must not become a GET)
            self._violation(request, "legacy route without its trailing slash (Hub answers 301)")
            location = self.url + request.path + "/"
            if request.query_string:
                location += "?" + request.query_string
            response = web.Response(status=301, headers={"Location": location})
            response.headers.update(rate)
            return response
        try:
            rule, args = self._match(request, path)
            unknown = set(request.query) - rule.query
            if unknown:
                self._violation(request, f"unknown query parameters {sorted(unknown)}")
            principal = self._authenticate(request)
            entry.principal = principal.name if principal else None
            if principal is not None and principal.kind == "oat" and path.startswith(
                ("/v2/repositories/", "/v2/users/")
            ):
                # OATs work on the namespace-scoped routes only (the OAT reference, §12)
                raise HubHTTPError(403, OAT_REFUSED)
            response = await rule.handler(request, principal, body, *args)
        except HubHTTPError as e:
            response = web.json_response(e.body, status=e.status)
        response.headers.update(rate)
        return response  # aiohttp sends no body for HEAD

    def _match(self, request: web.Request, path: str) -> tuple[_Rule, tuple[str, ...]]:
        methods_seen = False
        for rule in self._rules:
            m = rule.pattern.fullmatch(path)
            if m is None:
                continue
            methods_seen = True
            if request.method in rule.methods:
                return rule, m.groups()
        if methods_seen:
            self._violation(request, "method not in dockerhub-api.md for this route")
            raise HubHTTPError(405, "method not allowed")
        self._violation(request, "route not in dockerhub-api.md")
        raise HubHTTPError(404, "not found")

    def _routes(self) -> list[_Rule]:
        seg = r"([^/]+)"
        paged = _PAGE_PARAMS

        def rule(methods: str, pattern: str, handler: Any, query: set[str] | None = None) -> _Rule:
            return _Rule(
                frozenset(methods.split()), re.compile(pattern), handler, frozenset(query or ())
            )

        return [
            rule("POST", r"/v2/auth/token", self._login),
            rule(
                "GET",
                rf"/v2/namespaces/{seg}/repositories",
                self._list_repos,
                paged | {"name", "ordering"},
            ),
            rule("POST", rf"/v2/namespaces/{seg}/repositories", self._create_repo),
            rule("GET HEAD", rf"/v2/namespaces/{seg}/repositories/{seg}", self._get_repo),
            rule("PATCH", rf"/v2/namespaces/{seg}/repositories/{seg}", self._patch_repo),
            rule(
                "GET HEAD", rf"/v2/namespaces/{seg}/repositories/{seg}/tags", self._list_tags, paged
            ),
            rule("GET HEAD", rf"/v2/namespaces/{seg}/repositories/{seg}/tags/{seg}", self._get_tag),
            rule("POST", rf"/v2/repositories/{seg}/{seg}/privacy", self._privacy),
            rule("POST", rf"/v2/repositories/{seg}/{seg}/groups", self._grant),
            rule(
                "GET PATCH DELETE", rf"/v2/repositories/{seg}/{seg}/groups/{seg}", self._repo_group
            ),
            rule("GET HEAD PATCH DELETE", rf"/v2/repositories/{seg}/{seg}", self._legacy_repo),
            rule("GET", rf"/v2/repositories/{seg}", self._legacy_list, paged),
            rule("GET", rf"/v2/users/{seg}/repositories", self._legacy_list, paged),
            rule(
                "GET", rf"/v2/orgs/{seg}/groups", self._list_groups, paged | {"username", "search"}
            ),
            rule("GET", rf"/v2/orgs/{seg}/groups/{seg}", self._get_group),
            rule("GET PUT", rf"/v2/orgs/{seg}/settings", self._settings),
            rule(
                "GET",
                r"/api/search/v3/catalog/search",
                self._search_v3,
                {"query", "from", "size"} | _SEARCH_FILTERS,
            ),
            rule("GET", r"/api/search/v4", self._search_v4, _SEARCH_V4_PARAMS),
        ]

    # -- auth -------------------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme == "JWT":
            self._violation(request, "Authorization: JWT (old clients); send Bearer")
        elif scheme != "Bearer":
            raise HubHTTPError(401, "unauthorized")
        try:
            claims = jwt.decode(token.strip(), self._key, algorithms=["HS256"])
        except jwt.PyJWTError:
            raise HubHTTPError(401, "unauthorized", detail="token is invalid or expired") from None
        with self._lock:
            if claims.get("gen") != self._generation:
                raise HubHTTPError(401, "unauthorized", detail="token is invalid or expired")
        return Principal(
            claims["kind"], claims["sub"], claims.get("level"), frozenset(claims.get("scopes", ()))
        )

    async def _login(self, request: web.Request, who: Principal | None, body: Any) -> web.Response:
        if request.headers.get("Authorization"):
            self._violation(request, "login must not carry an Authorization header")
        self._check_body(request, body, {"identifier": str, "secret": str}, {})
        ident, secret = body["identifier"], body["secret"]
        claims: dict[str, Any] | None = None
        with self._lock:
            if secret in self._pats and self._pats[secret][0] == ident:
                claims = {"kind": "pat", "level": self._pats[secret][1]}
            elif ident in self._orgs and secret in self._orgs[ident].oats:
                claims = {"kind": "oat", "scopes": sorted(self._orgs[ident].oats[secret])}
            elif self._passwords.get(ident) == secret:
                claims = {"kind": "password", "level": "repo:admin"}
                if any(ident in self._orgs[o].members for o in self.sso_orgs if o in self._orgs):
                    return web.json_response({"detail": SSO_REFUSED}, status=401)
            self.logins += 1
            gen = self._generation
        if claims is None:
            return web.json_response({"detail": "Incorrect authentication credentials"}, status=401)
        now = time.time()
        claims.update(
            sub=ident, iat=int(now), exp=now + self.jwt_lifetime, gen=gen, jti=uuid.uuid4().hex
        )
        return web.json_response({"access_token": jwt.encode(claims, self._key, "HS256")})

    # permission checks: each raises the error Hub gives

    def _role(self, who: Principal | None, ns: str) -> str | None:
        if who is None or who.kind == "oat":
            return None
        if who.name == ns:
            return "owner"
        org = self._orgs.get(ns)
        return org.members.get(who.name) if org else None

    def _level_at_least(self, who: Principal, level: str) -> bool:
        return who.pat_level is not None and PAT_LEVELS.index(who.pat_level) >= PAT_LEVELS.index(
            level
        )

    def _require(
        self,
        who: Principal | None,
        ns: str,
        *,
        pat: str,
        roles: tuple[str, ...],
        oat: tuple[str, ...],
    ) -> None:
        if who is None:
            raise HubHTTPError(401, "unauthorized", detail="authentication required")
        if who.kind == "oat":
            if who.name == ns and who.oat_scopes & set(oat):
                return
        elif self._role(who, ns) in roles and self._level_at_least(who, pat):
            return
        raise HubHTTPError(403, "permission denied")

    def _can_read(self, who: Principal | None, repo: dict[str, Any], *, oat: str) -> bool:
        if not repo["is_private"]:
            return True
        ns = repo["namespace"]
        if who is None:
            return False
        if who.kind == "oat":
            return who.name == ns and oat in who.oat_scopes
        return self._role(who, ns) is not None and self._level_at_least(who, "repo:read")

    # -- validation and pagination --------------------------------------------------------------

    def _check_body(
        self,
        request: web.Request,
        body: Any,
        required: Mapping[str, type | tuple[type, ...]],
        optional: Mapping[str, type | tuple[type, ...]],
    ) -> None:
        problems: dict[str, list[str]] = {}
        if not isinstance(body, dict):
            problems["body"] = ["a JSON object is required"]
        else:
            for name in required:
                if name not in body:
                    problems.setdefault(name, []).append("This field is required.")
            for name, value in body.items():
                kind = required.get(name) or optional.get(name)
                if kind is None:
                    problems.setdefault(name, []).append("Unknown field.")
                elif not _ok_type(value, kind):
                    problems.setdefault(name, []).append(f"Expected {kind}.")
        if problems:
            self._violation(request, f"bad body {problems}")
            raise HubHTTPError(400, "bad request", fields=problems, text="Invalid request body")

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        try:
            page = int(request.query.get("page", "1"))
            size = int(request.query.get("page_size", "10"))
        except ValueError:
            self._violation(request, "page/page_size not integers")
            raise HubHTTPError(400, "bad request") from None
        if size > PAGE_SIZE_CAP:
            # the real Hub caps page_size rather than refusing it (badges/shields#4562)
            self._violation(request, f"page_size={size} above the cap {PAGE_SIZE_CAP}")
            size = PAGE_SIZE_CAP
        if size < 1 or page < 1:
            self._violation(request, f"page={page} page_size={size} out of range")
            raise HubHTTPError(
                400, "bad request", fields={"page_size": ["Invalid."]}, text="Invalid page size"
            )
        start = (page - 1) * size
        if page > 1 and start >= len(items):
            raise HubHTTPError(404, "not found", detail="Invalid page.")
        base = (self.next_base or self.url) + request.path

        def link(n: int) -> str:
            query = dict(request.query)
            query.update(page=str(n), page_size=str(size))
            return base + "?" + urlencode(query)

        return web.json_response(
            {
                "count": len(items),
                "next": link(1 if self.next_loop else page + 1)
                if start + size < len(items)
                else None,
                "previous": link(page - 1) if page > 1 else None,
                "results": items[start : start + size],
            }
        )

    # -- repositories -----------------------------------------------------------------------

    def _new_repo(self, ns: str, name: str, private: bool, desc: str, full: str) -> dict[str, Any]:
        return {
            "user": ns,
            "name": name,
            "namespace": ns,
            "repository_type": "image",
            "status": 1,
            "status_description": "active",
            "description": desc,
            "is_private": private,
            "is_automated": False,
            "star_count": 0,
            "pull_count": 0,
            "last_updated": _NOW,
            "last_modified": None,
            "date_registered": _NOW,
            "collaborator_count": 0,
            "affiliation": "",
            "hub_user": ns,
            "has_starred": False,
            "full_description": full,
            "permissions": {"read": True, "write": True, "admin": True},
            "media_types": [],
            "content_types": [],
            "categories": [],
            "immutable_tags_settings": {"enabled": False, "rules": []},
            "storage_size": None,
            "source": None,
            "_id": next(self._ids),
            "_tags": {},
            "_groups": {},
        }

    @staticmethod
    def _repo_info(repo: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in repo.items() if not k.startswith("_")}

    def _repo_or_404(self, ns: str, name: str) -> dict[str, Any]:
        repo = self._repos.get((ns, name))
        if repo is None:
            raise HubHTTPError(404, "not found", detail="object not found")
        return repo

    async def _list_repos(
        self, request: web.Request, who: Principal | None, body: Any, ns: str
    ) -> web.Response:
        ordering = request.query.get("ordering")
        allowed = {"name", "-name", "last_updated", "-last_updated", "pull_count", "-pull_count"}
        if ordering is not None and ordering not in allowed:
            self._violation(request, f"ordering {ordering!r}")
            raise HubHTTPError(
                400,
                "bad request",
                fields={
                    "ordering": [
                        "Invalid ordering value. Must be one of: " + ", ".join(sorted(allowed))
                    ]
                },
                text="Invalid ordering value",
            )
        with self._lock:
            repos = [r for (n, _), r in sorted(self._repos.items()) if n == ns]
            substring = request.query.get("name", "")
            visible = []
            for repo in repos:
                if substring not in repo["name"]:
                    continue
                if repo["is_private"] and not self._can_read(
                    who, repo, oat="scope-repository-list"
                ):
                    continue  # silently omitted, still 200
                item = {
                    k: repo[k]
                    for k in (
                        "name",
                        "namespace",
                        "repository_type",
                        "status",
                        "status_description",
                        "description",
                        "is_private",
                        "star_count",
                        "pull_count",
                        "last_updated",
                        "last_modified",
                        "date_registered",
                        "affiliation",
                        "media_types",
                        "content_types",
                        "categories",
                        "storage_size",
                    )
                }
                visible.append(item)
        return self._page(request, visible)

    async def _create_repo(
        self, request: web.Request, who: Principal | None, body: Any, ns: str
    ) -> web.Response:
        self._check_body(
            request,
            body,
            {"name": str, "namespace": str},
            {
                "namespace": str,
                "description": str,
                "full_description": str,
                "registry": str,
                "is_private": bool,
            },
        )
        if "namespace" in body and body["namespace"] != ns:
            self._violation(request, f"namespace {body['namespace']!r} differs from the path")
            raise HubHTTPError(
                400,
                "bad request",
                fields={"namespace": ["Does not match."]},
                text="Invalid namespace",
            )
        for key, limit in (("description", 100), ("full_description", 25000)):
            if len(body.get(key, "")) > limit:
                self._violation(request, f"{key} longer than {limit}")
                raise HubHTTPError(
                    400,
                    "bad request",
                    fields={key: [f"Ensure this field has no more than {limit} characters."]},
                    text="Invalid",
                )
        name = body["name"]
        if not (2 <= len(name) <= 255 and _NAME_RE.match(name)):
            raise HubHTTPError(
                400,
                "bad request",
                fields={"name": ["Invalid repository name."]},
                text="Invalid repository name",
            )
        with self._lock:
            if ns not in self._orgs and ns not in self._passwords:
                raise HubHTTPError(404, "not found", detail="namespace not found")
            self._require(
                who,
                ns,
                pat="repo:admin",
                roles=("owner", "editor"),
                oat=("scope-repository-create",),
            )
            if (ns, name) in self._repos:
                raise HubHTTPError(self.exists_status, "repository with this name already exists")
            repo = self._new_repo(
                ns,
                name,
                body.get("is_private", False),
                body.get("description", ""),
                body.get("full_description", ""),
            )
            self._repos[(ns, name)] = repo
            return web.json_response(self._repo_info(repo), status=201)

    async def _get_repo(
        self, request: web.Request, who: Principal | None, body: Any, ns: str, name: str
    ) -> web.Response:
        with self._lock:
            repo = self._repo_or_404(ns, name)
            if not self._can_read(who, repo, oat="scope-repository-read"):
                raise HubHTTPError(404, "not found", detail="object not found")
            return web.json_response(self._repo_info(repo))

    async def _patch_repo(
        self, request: web.Request, who: Principal | None, body: Any, ns: str, name: str
    ) -> web.Response:
        """``PATCH /v2/namespaces/{ns}/repositories/{r}`` (Docker's hub-mcp): the descriptions."""
        self._check_body(request, body, {}, {"description": str, "full_description": str})
        if not body:
            self._violation(request, "empty PATCH body")
            raise HubHTTPError(400, "bad request")
        return self._set_descriptions(request, who, body, ns, name)

    def _set_descriptions(
        self, request: web.Request, who: Principal | None, body: Any, ns: str, name: str
    ) -> web.Response:
        """The descriptions of a PATCH (either route): lengths checked as the Hub does, then set."""
        for key, limit in (("description", 100), ("full_description", 25000)):
            if len(body.get(key, "")) > limit:
                self._violation(request, f"{key} longer than {limit}")
                raise HubHTTPError(400, "bad request", fields={key: ["Too long."]}, text="Invalid")
        with self._lock:
            repo = self._repo_or_404(ns, name)
            self._require(
                who, ns, pat="repo:admin", roles=("owner", "editor"), oat=("scope-repository-edit",)
            )
            for key in ("description", "full_description"):
                if key in body:
                    repo[key] = body[key]
            return web.json_response(self._repo_info(repo))

    async def _legacy_repo(
        self, request: web.Request, who: Principal | None, body: Any, ns: str, name: str
    ) -> web.Response:
        if request.method in ("GET", "HEAD"):
            if who is not None and who.kind == "oat":
                raise HubHTTPError(403, OAT_REFUSED)
            return await self._get_repo(request, who, body, ns, name)
        if request.method == "DELETE":
            with self._lock:
                self._repo_or_404(ns, name)
                self._require(
                    who,
                    ns,
                    pat="repo:admin",
                    roles=("owner", "editor"),
                    oat=("scope-repository-admin",),
                )
                del self._repos[(ns, name)]
            return web.Response(status=202)
        self._check_body(
            request,
            body,
            {},
            {
                "description": str,
                "full_description": str,
                "immutable_tags": bool,
                "immutable_tags_rules": str,
            },
        )
        if not body:
            self._violation(request, "empty PATCH body")
        return self._set_descriptions(request, who, body, ns, name)

    async def _privacy(
        self, request: web.Request, who: Principal | None, body: Any, ns: str, name: str
    ) -> web.Response:
        self._check_body(request, body, {"is_private": bool}, {})
        with self._lock:
            repo = self._repo_or_404(ns, name)
            self._require(
                who, ns, pat="repo:admin", roles=("owner", "editor"), oat=("scope-repository-edit",)
            )
            repo["is_private"] = body["is_private"]
        return web.json_response({})

    async def _legacy_list(
        self, request: web.Request, who: Principal | None, body: Any, ns: str
    ) -> web.Response:
        if who is not None and who.kind == "oat":
            raise HubHTTPError(403, OAT_REFUSED)
        return await self._list_repos(request, who, body, ns)

    # -- tags -----------------------------------------------------------------------------------

    def _readable_repo(self, who: Principal | None, ns: str, name: str) -> dict[str, Any]:
        repo = self._repo_or_404(ns, name)
        if not self._can_read(who, repo, oat="scope-tag-read"):
            raise HubHTTPError(404, "not found", detail="object not found")
        return repo

    async def _list_tags(
        self, request: web.Request, who: Principal | None, body: Any, ns: str, name: str
    ) -> web.Response:
        with self._lock:
            repo = self._readable_repo(who, ns, name)
            tags = list(repo["_tags"].values())
        return self._page(request, tags)

    async def _get_tag(
        self, request: web.Request, who: Principal | None, body: Any, ns: str, name: str, tag: str
    ) -> web.Response:
        with self._lock:
            repo = self._readable_repo(who, ns, name)
            if tag not in repo["_tags"]:
                raise HubHTTPError(404, "not found", detail="tag not found")
            return web.json_response(repo["_tags"][tag])

    # -- teams ----------------------------------------------------------------------------------

    def _org_or_404(self, org: str) -> _Org:
        if org not in self._orgs:
            raise HubHTTPError(404, "not found", detail="organization not found")
        return self._orgs[org]

    def _require_org_member(self, who: Principal | None, org: _Org, oat: str) -> None:
        if who is None:
            raise HubHTTPError(401, "unauthorized")
        if who.kind == "oat":
            if who.name == org.name and oat in who.oat_scopes:
                return
        elif who.name in org.members:
            return
        raise HubHTTPError(403, "permission denied")

    @staticmethod
    def _group(team: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in team.items() if k != "members"}

    async def _list_groups(
        self, request: web.Request, who: Principal | None, body: Any, org_name: str
    ) -> web.Response:
        with self._lock:
            org = self._org_or_404(org_name)
            self._require_org_member(who, org, "scope-group-read")
            teams = sorted(org.teams.values(), key=lambda t: t["id"])
            user = request.query.get("username")
            search = request.query.get("search")
            items = [
                self._group(t)
                for t in teams
                if (user is None or user in t["members"])
                and (search is None or search in t["name"])
            ]
        return self._page(request, items)

    async def _get_group(
        self, request: web.Request, who: Principal | None, body: Any, org_name: str, team: str
    ) -> web.Response:
        with self._lock:
            org = self._org_or_404(org_name)
            self._require_org_member(who, org, "scope-group-read")
            if team not in org.teams:
                raise HubHTTPError(404, "not found", detail="group not found")
            return web.json_response(self._group(org.teams[team]))

    def _team_by_id(self, ns: str, gid: int) -> dict[str, Any] | None:
        org = self._orgs.get(ns)
        return next((t for t in org.teams.values() if t["id"] == gid), None) if org else None

    async def _grant(
        self, request: web.Request, who: Principal | None, body: Any, ns: str, name: str
    ) -> web.Response:
        if request.query:
            self._violation(request, "group_name/permission as query parameters (pre-2025 spec)")
        self._check_body(request, body, {"group_id": int, "permission": str}, {})
        if body["permission"] not in ("read", "write", "admin"):
            self._violation(request, f"permission {body['permission']!r}")
            raise HubHTTPError(
                400,
                "bad request",
                fields={"permission": ["Invalid choice."]},
                text="Invalid permission",
            )
        with self._lock:
            repo = self._repo_or_404(ns, name)
            self._require(
                who,
                ns,
                pat="repo:admin",
                roles=("owner", "editor"),
                oat=("scope-repo-group-edit", "scope-repo-group-admin"),
            )
            team = self._team_by_id(ns, body["group_id"])
            if team is None:
                raise HubHTTPError(404, "not found", detail="group not found")
            repo["_groups"][team["id"]] = body["permission"]
            return web.json_response(
                {
                    "group_name": team["name"],
                    "permission": body["permission"],
                    "group_id": team["id"],
                }
            )

    async def _repo_group(
        self,
        request: web.Request,
        who: Principal | None,
        body: Any,
        ns: str,
        name: str,
        gid_text: str,
    ) -> web.StreamResponse:
        if not gid_text.isdigit():
            self._violation(request, f"group id {gid_text!r} is not the numeric team id")
            raise HubHTTPError(404, "not found")
        gid = int(gid_text)
        with self._lock:
            repo = self._repo_or_404(ns, name)
            if request.method == "GET":
                self._require(
                    who,
                    ns,
                    pat="repo:read",
                    roles=("owner", "editor", "member"),
                    oat=("scope-repo-group-read", "scope-repo-group-edit"),
                )
            else:
                self._require(
                    who,
                    ns,
                    pat="repo:admin",
                    roles=("owner", "editor"),
                    oat=("scope-repo-group-edit", "scope-repo-group-admin"),
                )
            team = self._team_by_id(ns, gid)
            if team is None or gid not in repo["_groups"]:
                raise HubHTTPError(404, "not found", detail="group not found")
            if request.method == "DELETE":
                del repo["_groups"][gid]
                return web.Response(status=204)
            if request.method == "PATCH":
                self._check_body(request, body, {"permission": str}, {})
                if body["permission"] not in ("read", "write", "admin"):
                    self._violation(request, f"permission {body['permission']!r}")
                    raise HubHTTPError(400, "bad request")
                repo["_groups"][gid] = body["permission"]
            return web.json_response(
                {"group_name": team["name"], "permission": repo["_groups"][gid], "group_id": gid}
            )

    # -- settings and catalog -----------------------------------------------------------------

    async def _settings(
        self, request: web.Request, who: Principal | None, body: Any, org_name: str
    ) -> web.Response:
        with self._lock:
            org = self._org_or_404(org_name)
        if who is None:
            raise HubHTTPError(401, "unauthorized")
        if who.kind == "oat":
            raise HubHTTPError(
                403, "permission denied", detail="organization access tokens cannot manage settings"
            )
        role = self._role(who, org_name)
        if request.method == "PUT":
            self._check_body(request, body, {"restricted_images": dict}, {})
            self._check_body(
                request,
                body["restricted_images"],
                {"enabled": bool, "allow_official_images": bool, "allow_verified_publishers": bool},
                {},
            )
            if role != "owner":
                raise HubHTTPError(403, "permission denied")
            with self._lock:
                org.settings = dict(body["restricted_images"])
        elif role is None:
            raise HubHTTPError(403, "permission denied")
        with self._lock:
            return web.json_response({"restricted_images": dict(org.settings)})

    async def _search_v3(
        self, request: web.Request, who: Principal | None, body: Any
    ) -> web.Response:
        if not self.search_v3:
            raise HubHTTPError(404, "not found")
        results, total = await self._search(request)
        for item in results:
            if item["badge"] is None:
                item["badge"] = "none"
        return web.json_response({"total": total, "results": results})

    async def _search_v4(
        self, request: web.Request, who: Principal | None, body: Any
    ) -> web.Response:
        """``/api/search/v4`` as Docker's hub-mcp reads it: ``badge`` may be null."""
        if not self.search_v4:
            raise HubHTTPError(404, "not found")
        results, total = await self._search(request)
        for item in results:
            item.update(archived=False, extension_reviewed=False, operating_systems=[])
        return web.json_response({"total": total, "results": results})

    async def _search(self, request: web.Request) -> tuple[list[dict[str, Any]], int]:
        for name in ("query", "from", "size"):
            if name not in request.query:
                self._violation(request, f"catalog search without {name}")
        if self.catalog_delay:
            await asyncio.sleep(self.catalog_delay)
        if self.catalog_status is not None:
            raise HubHTTPError(self.catalog_status, "internal server error")
        query = request.query.get("query", "").lower()
        try:
            start = int(request.query.get("from", "0"))
            size = min(int(request.query.get("size", "25")), 100)
        except ValueError:
            self._violation(request, "from/size not integers")
            raise HubHTTPError(400, "bad request") from None
        words = [w for w in re.split(r"[/\-_.\s]+", query) if w]
        with self._lock:
            hits = [
                e for e in self._catalog if query in e["id"] or any(w in e["id"] for w in words)
            ]
        # fuzzy and popularity-ordered, like the real thing: the exact repository may come late
        hits.sort(key=lambda e: (-e["_popularity"], e["id"]))
        results = [{k: v for k, v in e.items() if not k.startswith("_")} for e in hits]
        return results[start : start + size], len(results)


@dataclass
class HubRegistry:
    """A fake Hub whose ``/token`` is the token service of a real ``docker-registry``."""

    hub: FakeHub
    token_server: TokenServer
    registry: RunningRegistry


def start_hub_registry(hub: FakeHub, workdir: Path) -> HubRegistry:
    """Mount a fresh TokenServer on the started, seeded ``hub`` and start a token-auth
    ``docker-registry`` trusting it; the registry's ``username``/``password`` are the seed
    user and PAT.  Close with ``registry.close()``."""
    assert hub.seed is not None and hub.url
    token_server = TokenServer(workdir / "token-service")
    hub.attach_token_service(token_server)
    registry = start_registry(
        workdir / "registry",
        auth="token",
        token_server=token_server,
        username=hub.seed.username,
        password=hub.seed.pat,
    )
    return HubRegistry(hub, token_server, registry)


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A started fake Hub seeded by :meth:`FakeHub.seed_default` (``hub.seed``); the test fails
    if the code under test broke the API contract (``hub.violations``)."""
    hub = FakeHub()
    hub.seed_default()
    with hub:
        yield hub
    assert hub.violations == [], "Hub API contract violations:\n" + "\n".join(hub.violations)


@pytest.fixture
def fake_hub_registry(fake_hub: FakeHub, tmp_path: Path) -> Iterator[HubRegistry]:
    """``fake_hub`` plus a real ``docker-registry`` whose token service is the fake Hub: push
    to ``<registry.host>/acme/<name>`` with the seed user and PAT (or ``acme`` and the OAT)."""
    started = start_hub_registry(fake_hub, tmp_path)
    yield started
    started.registry.close()
