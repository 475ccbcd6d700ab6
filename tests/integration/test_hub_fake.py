"""The fake Hub keeps to dockerhub-api.md: shapes, pagination, errors, headers, OAT refusal,
strictness, and its role as the token service of a real docker-registry."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.fake_hub import (  # noqa: F401  (fixtures)
    FakeHub,
    HubRegistry,
    fake_hub,
    fake_hub_registry,
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _jwt(http: aiohttp.ClientSession, hub: FakeHub, identifier: str, secret: str) -> str:
    async with http.post(
        hub.url + "/v2/auth/token", json={"identifier": identifier, "secret": secret}
    ) as r:
        assert r.status == 200
        token: str = (await r.json())["access_token"]
        return token


async def _get(
    http: aiohttp.ClientSession, url: str, token: str | None = None, scheme: str = "Bearer"
) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    async with http.get(url, headers=headers) as r:
        body = await r.json() if r.content_type == "application/json" else None
        return r.status, body, r.headers


async def test_rate_limit_headers_and_error_shape(
    fake_hub: FakeHub,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    status, body, headers = await _get(http, fake_hub.url + "/v2/namespaces/acme/repositories/x")
    assert status == 404
    assert body == {"errinfo": None, "detail": "object not found", "message": "not found"}
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert name in headers


async def test_pagination_absolute_next_and_past_the_end(
    fake_hub: FakeHub,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    for i in range(3):
        fake_hub.add_repository("acme", f"r{i}")
    url = fake_hub.url + "/v2/namespaces/acme/repositories?page_size=2"
    status, body, _ = await _get(http, url)
    assert (status, body["count"], len(body["results"])) == (200, 3, 2)
    assert body["next"].startswith(fake_hub.url + "/v2/namespaces/acme/repositories?")
    assert body["previous"] is None
    status, body, _ = await _get(http, body["next"])
    assert (status, [r["name"] for r in body["results"]], body["next"]) == (200, ["r2"], None)
    status, _, _ = await _get(http, url + "&page=3")
    assert status == 404
    status, body, _ = await _get(http, fake_hub.url + "/v2/namespaces/nobody/repositories")
    assert (status, body["count"], body["results"]) == (200, 0, [])


async def test_trailing_slash_and_head(fake_hub: FakeHub, http: aiohttp.ClientSession) -> None:  # noqa: F811
    fake_hub.add_repository("acme", "pub")
    for path in ("/v2/namespaces/acme/repositories/pub", "/v2/namespaces/acme/repositories/pub/"):
        status, body, _ = await _get(http, fake_hub.url + path)
        assert status == 200 and body["name"] == "pub"
    async with http.head(fake_hub.url + "/v2/namespaces/acme/repositories/pub") as r:
        assert r.status == 200
    async with http.head(fake_hub.url + "/v2/namespaces/acme/repositories/nope") as r:
        assert r.status == 404


async def test_oat_refused_on_legacy_reads_only(
    fake_hub: FakeHub,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    assert fake_hub.seed is not None
    fake_hub.add_repository("acme", "app", private=True)
    oat = await _jwt(http, fake_hub, "acme", fake_hub.seed.oat)
    pat = await _jwt(http, fake_hub, "alice", fake_hub.seed.pat)
    for path in (
        "/v2/repositories/acme/app/",
        "/v2/repositories/acme/",
        "/v2/users/acme/repositories",
    ):
        status, body, _ = await _get(http, fake_hub.url + path, oat)
        assert status == 403, path
        assert body["message"] == "token issued from organization access token is not allowed"
        status, _, _ = await _get(http, fake_hub.url + path, pat)
        assert status == 200, path
    status, _, _ = await _get(http, fake_hub.url + "/v2/namespaces/acme/repositories/app", oat)
    assert status == 200


async def test_private_repositories_hidden_without_list_scope(
    fake_hub: FakeHub,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    fake_hub.add_repository("acme", "private-app", private=True)
    fake_hub.add_repository("acme", "public-app")
    oat = await _jwt(http, fake_hub, "acme", fake_hub.add_oat("acme", {"scope-repository-read"}))
    _, body, _ = await _get(http, fake_hub.url + "/v2/namespaces/acme/repositories", oat)
    assert [r["name"] for r in body["results"]] == ["public-app"]


async def test_violations_are_recorded(fake_hub: FakeHub, http: aiohttp.ClientSession) -> None:  # noqa: F811
    assert fake_hub.seed is not None
    pat = await _jwt(http, fake_hub, "alice", fake_hub.seed.pat)
    headers = {"Authorization": f"Bearer {pat}"}
    url = fake_hub.url + "/v2/namespaces/acme/repositories"
    body = {"name": "ok-name", "namespace": "acme", "color": "red"}
    async with http.post(url, json=body, headers=headers) as r:
        assert r.status == 400
        assert "color" in (await r.json())["fields"]
    async with http.post(url, json={"namespace": "acme"}, headers=headers) as r:
        assert r.status == 400
    async with http.post(url, json={"name": "ab"}, headers=headers) as r:  # the spec requires it
        assert r.status == 400
    body = {"name": "ab", "namespace": "acme", "description": "d" * 101}
    async with http.post(url, json=body, headers=headers) as r:
        assert r.status == 400
    for i in range(102):
        fake_hub.add_repository("acme", f"r{i:03}")
    status, page, _ = await _get(http, url + "?page_size=101", pat)
    assert status == 200 and len(page["results"]) == 100  # capped as the real Hub does
    assert "page_size=100" in page["next"] and "page_size=101" not in page["next"]
    status, _, _ = await _get(http, fake_hub.url + "/v2/orgs/acme/groups", pat, scheme="JWT")
    assert status == 200
    status, _, _ = await _get(http, fake_hub.url + "/v2/orgs/acme/members", pat)
    assert status == 404
    grant = fake_hub.url + "/v2/repositories/acme/ab/groups/?group_name=developers&permission=read"
    async with http.post(grant, headers=headers) as r:
        assert r.status == 400
    found = "\n".join(fake_hub.violations)
    fake_hub.violations.clear()
    for expected in (
        "{'color': ['Unknown field.']}",
        "{'name': ['This field is required.']}",
        "{'namespace': ['This field is required.']}",
        "description longer than 100",
        "page_size=101 above the cap 100",
        "Authorization: JWT",
        "GET /v2/orgs/acme/members: route not in dockerhub-api.md",
        "group_name/permission as query parameters",
    ):
        assert expected in found


async def test_login_errors(fake_hub: FakeHub, http: aiohttp.ClientSession) -> None:  # noqa: F811
    async with http.post(
        fake_hub.url + "/v2/auth/token", json={"identifier": "alice", "secret": "wrong"}
    ) as r:
        assert r.status == 401
        assert await r.json() == {"detail": "Incorrect authentication credentials"}


async def test_429_then_success(fake_hub: FakeHub, http: aiohttp.ClientSession) -> None:  # noqa: F811
    fake_hub.throttle(1, retry_after=4)
    fake_hub.throttle(1, retry_after=4, style="x-unix")
    fake_hub.throttle(1, retry_after=4, style="unix")
    url = fake_hub.url + "/api/search/v3/catalog/search?query=x&from=0&size=25"
    status, body, headers = await _get(http, url)
    assert (status, headers["Retry-After"], body["detail"]) == (429, "4", "Rate limit exceeded")
    status, _, headers = await _get(http, url)
    assert status == 429 and "X-Retry-After" in headers and "Retry-After" not in headers
    status, _, headers = await _get(http, url)  # the form a live 429 had: a unix time
    assert status == 429 and 3 <= int(headers["Retry-After"]) - time.time() <= 5
    status, _, _ = await _get(http, url)
    assert status == 200


async def test_legacy_routes_need_their_trailing_slash(
    fake_hub: FakeHub,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    assert fake_hub.seed is not None
    fake_hub.add_repository("acme", "app")
    pat = await _jwt(http, fake_hub, "alice", fake_hub.seed.pat)
    headers = {"Authorization": f"Bearer {pat}"}
    grant = {"group_id": fake_hub.seed.team_id, "permission": "read"}
    base = fake_hub.url + "/v2/repositories/acme/app"
    async with http.post(base + "/groups", json=grant, headers=headers, allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (301, base + "/groups/")
    assert fake_hub.team_permission("acme", "app", "developers") is None
    async with http.post(base + "/groups/", json=grant, headers=headers) as r:
        assert r.status == 200
    async with http.post(base + "/privacy", json={"is_private": True}, headers=headers,
                         allow_redirects=False) as r:
        assert r.status == 301
    assert "without its trailing slash" in "\n".join(fake_hub.violations)
    fake_hub.violations.clear()


async def test_oat_refused_off_the_namespaced_routes(
    fake_hub: FakeHub,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    assert fake_hub.seed is not None
    fake_hub.add_repository("acme", "app")
    oat = await _jwt(http, fake_hub, "acme", fake_hub.seed.oat)
    headers = {"Authorization": f"Bearer {oat}"}
    base = fake_hub.url + "/v2/repositories/acme/app/"
    grant = {"group_id": fake_hub.seed.team_id, "permission": "read"}
    for url, body in ((base + "groups/", grant), (base + "privacy/", {"is_private": True})):
        async with http.post(url, json=body, headers=headers) as r:
            assert r.status == 403
            assert (await r.json())["message"] == "token issued from organization access token is not allowed"
    async with http.patch(base, json={"description": "x"}, headers=headers) as r:
        assert r.status == 403
    # the namespaced description route takes it
    url = fake_hub.url + "/v2/namespaces/acme/repositories/app"
    async with http.patch(url, json={"description": "from an OAT"}, headers=headers) as r:
        assert r.status == 200
    assert (fake_hub.repository("acme", "app") or {})["description"] == "from an OAT"


async def test_repository_management_needs_read_write_delete(
    fake_hub: FakeHub,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    writer = await _jwt(http, fake_hub, "alice", fake_hub.add_pat("alice", level="repo:write"))
    headers = {"Authorization": f"Bearer {writer}"}
    url = fake_hub.url + "/v2/namespaces/acme/repositories"
    async with http.post(url, json={"name": "app", "namespace": "acme"}, headers=headers) as r:
        assert r.status == 403
    admin = await _jwt(http, fake_hub, "alice", fake_hub.add_pat("alice", level="repo:admin"))
    headers = {"Authorization": f"Bearer {admin}"}
    async with http.post(url, json={"name": "app", "namespace": "acme"}, headers=headers) as r:
        assert r.status == 201


async def test_sso_enforced_org_refuses_password_login(
    fake_hub: FakeHub,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    assert fake_hub.seed is not None
    fake_hub.sso_orgs.add("acme")
    body = {"identifier": "alice", "secret": fake_hub.seed.password}
    async with http.post(fake_hub.url + "/v2/auth/token", json=body) as r:
        assert r.status == 401
        assert "personal access token" in (await r.json())["detail"]
    await _jwt(http, fake_hub, "alice", fake_hub.seed.pat)  # a PAT still logs in


async def test_search_v4_gives_null_badges_v3_none(
    fake_hub: FakeHub,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    fake_hub.add_catalog_entry("someone/tool", badge=None)
    query = "?query=someone/tool&from=0&size=25"
    _, v4, _ = await _get(http, fake_hub.url + "/api/search/v4" + query)
    _, v3, _ = await _get(http, fake_hub.url + "/api/search/v3/catalog/search" + query)
    assert [(r["id"], r["badge"]) for r in v4["results"]] == [("someone/tool", None)]
    assert [(r["id"], r["badge"]) for r in v3["results"]] == [("someone/tool", "none")]
    fake_hub.search_v4 = False
    status, _, _ = await _get(http, fake_hub.url + "/api/search/v4" + query)
    assert status == 404


async def test_token_service_for_a_real_registry(
    fake_hub_registry: HubRegistry,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    hub, registry = fake_hub_registry.hub, fake_hub_registry.registry
    assert hub.seed is not None
    hub.add_repository("acme", "app", private=True)
    hub.add_user("bob")
    bob_pat = hub.add_pat("bob", level="repo:read")
    hub.add_org("acme", members={"bob": "member"})
    hub.add_team_member("acme", "developers", "bob")
    hub.set_team_permission("acme", "app", "developers", "read")

    async with http.get(registry.url + "/v2/") as r:
        assert r.status == 401
        challenge = r.headers["Www-Authenticate"]
    assert f'realm="{hub.url}/token"' in challenge

    async def token_for(user: str, secret: str) -> tuple[int, str | None]:
        basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
        query = {
            "service": fake_hub_registry.token_server.service,
            "scope": "repository:acme/app:pull,push",
        }
        async with http.get(
            hub.url + "/token", params=query, headers={"Authorization": f"Basic {basic}"}
        ) as r:
            return r.status, (await r.json()).get("token") if r.status == 200 else None

    def actions(token: str) -> list[str]:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return [a for grant in claims["access"] for a in grant["actions"]]

    status, owner = await token_for(hub.seed.username, hub.seed.pat)
    assert status == 200 and owner is not None and actions(owner) == ["pull", "push"]
    status, org = await token_for("acme", hub.seed.oat)
    assert status == 200 and org is not None and actions(org) == ["pull", "push"]
    status, reader = await token_for("bob", bob_pat)
    assert status == 200 and reader is not None and actions(reader) == ["pull"]
    status, _ = await token_for(hub.seed.username, "dckr_pat_wrong")
    assert status == 401

    upload = registry.url + "/v2/acme/app/blobs/uploads/"
    async with http.post(upload, headers={"Authorization": f"Bearer {owner}"}) as r:
        assert r.status == 202
    async with http.post(upload, headers={"Authorization": f"Bearer {reader}"}) as r:
        assert r.status == 401
