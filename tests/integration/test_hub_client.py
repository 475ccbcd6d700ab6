"""HubClient against the fake Hub: login, JWT reuse and renewal, pagination, rate limits, errors.

The retries are the registry client's (:class:`RetryPolicy`): waits the Hub asks for are real,
so the tests ask for short ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from imagevet.errors import (
    HubError,
    HubRateLimitedError,
    LimitExceededError,
    SecurityError,
    TransportError,
)
from imagevet.hub import HubClient, HubCredentials
from imagevet.registry import RetryPolicy, TransferTimeouts
from tests.support.fake_hub import FakeHub, fake_hub  # noqa: F401  (fixture)


def _creds(hub: FakeHub) -> HubCredentials:
    assert hub.seed is not None
    return HubCredentials(hub.seed.username, hub.seed.pat)


@pytest.fixture
async def client(fake_hub: FakeHub) -> AsyncIterator[HubClient]:  # noqa: F811
    async with HubClient(fake_hub.url, _creds(fake_hub)) as c:
        yield c


async def test_login_once_and_reuse_jwt(fake_hub: FakeHub, client: HubClient) -> None:  # noqa: F811
    for _ in range(3):
        await client.get_json("/v2/orgs/acme/groups")
    assert fake_hub.logins == 1
    login = fake_hub.calls("POST", "/v2/auth/token")[0]
    assert set(login.body) == {"identifier", "secret"}
    assert all(r.principal == "alice" for r in fake_hub.calls("GET"))


async def test_oat_login_uses_org_name(fake_hub: FakeHub) -> None:  # noqa: F811
    assert fake_hub.seed is not None
    async with HubClient(fake_hub.url, HubCredentials("acme", fake_hub.seed.oat)) as c:
        groups = [g async for g in c.paginate("/v2/orgs/acme/groups")]
    assert [g["name"] for g in groups] == ["developers"]
    assert fake_hub.calls("GET")[0].principal == "acme"


async def test_expired_jwt_is_renewed_before_use() -> None:
    hub = FakeHub(jwt_lifetime=1.0)
    seed = hub.seed_default()
    with hub:
        async with HubClient(
            hub.url, HubCredentials(seed.username, seed.pat), renew_margin=0.2
        ) as c:
            await c.get_json("/v2/orgs/acme/groups")
            await asyncio.sleep(1.0)
            await c.get_json("/v2/orgs/acme/groups")
        assert hub.logins == 2
        assert [r.status for r in hub.calls("GET")] == [200, 200]  # no 401 on the way
    assert hub.violations == []


async def test_401_mid_run_renews_once_and_retries(fake_hub: FakeHub, client: HubClient) -> None:  # noqa: F811
    await client.get_json("/v2/orgs/acme/groups")
    fake_hub.expire_tokens()
    data = await client.get_json("/v2/orgs/acme/groups")
    assert data["count"] == 1
    assert fake_hub.logins == 2
    assert [r.status for r in fake_hub.calls("GET")] == [200, 401, 200]


async def test_bad_credentials_name_the_user_not_the_secret(fake_hub: FakeHub) -> None:  # noqa: F811
    secret = "dckr_pat_wrongwrongwrong"
    async with HubClient(fake_hub.url, HubCredentials("alice", secret)) as c:
        with pytest.raises(HubError) as info:
            await c.get_json("/v2/orgs/acme/groups")
    assert info.value.status == 401
    assert "alice" in str(info.value)
    assert "Incorrect authentication credentials" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value)


async def test_pagination_follows_absolute_next(fake_hub: FakeHub, client: HubClient) -> None:  # noqa: F811
    for i in range(7):
        fake_hub.add_repository("acme", f"repo{i}", private=i % 2 == 0)
    names = [
        r["name"] async for r in client.paginate("/v2/namespaces/acme/repositories", page_size=3)
    ]
    assert names == [f"repo{i}" for i in range(7)]
    pages = fake_hub.calls("GET", "/v2/namespaces/acme/repositories")
    assert [r.query.get("page", ["1"])[0] for r in pages] == ["1", "2", "3"]
    assert all(r.query["page_size"] == ["3"] for r in pages)


async def test_next_on_another_origin_is_refused(fake_hub: FakeHub, client: HubClient) -> None:  # noqa: F811
    for i in range(3):
        fake_hub.add_repository("acme", f"repo{i}")
    fake_hub.next_base = "http://127.0.0.2:9"
    with pytest.raises(SecurityError, match="not the same origin"):
        async for _ in client.paginate("/v2/namespaces/acme/repositories", page_size=2):
            pass
    assert len(fake_hub.calls("GET")) == 1  # nothing was sent to the other origin


async def test_page_size_is_capped_at_100(fake_hub: FakeHub, client: HubClient) -> None:  # noqa: F811
    [_ async for _ in client.paginate("/v2/orgs/acme/groups", page_size=500)]
    [_ async for _ in client.paginate("/v2/orgs/acme/groups", params={"page_size": 1000})]
    await client.request("GET", "/v2/orgs/acme/groups", params={"page_size": 250})
    assert [c.query["page_size"] for c in fake_hub.calls("GET")] == [["100"]] * 3


async def test_pagination_is_bounded(fake_hub: FakeHub, client: HubClient) -> None:  # noqa: F811
    for i in range(5):
        fake_hub.add_repository("acme", f"repo{i}")
    fake_hub.next_loop = True  # every next link points back at page 1

    async def walk() -> list[str]:
        return [
            r["name"]
            async for r in client.paginate("/v2/namespaces/acme/repositories", page_size=2)
        ]

    with pytest.raises(LimitExceededError, match="a page already read"):
        await asyncio.wait_for(walk(), 10)
    assert len(fake_hub.calls("GET")) == 2  # page 1, page 2, and no third request


@pytest.fixture
def retry_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    # the CLI (when another test ran it) stops imagevet records from reaching caplog
    monkeypatch.setattr(logging.getLogger("imagevet"), "propagate", True)
    caplog.set_level(logging.INFO, logger="imagevet")
    return caplog


async def test_429_retry_after_seconds_then_success(
    fake_hub: FakeHub,  # noqa: F811
    retry_log: pytest.LogCaptureFixture,
) -> None:
    async with HubClient(fake_hub.url, _creds(fake_hub)) as c:
        await c.login()
        fake_hub.throttle(2, retry_after=0.05)
        data = await c.get_json("/v2/orgs/acme/groups")
    assert data["count"] == 1
    assert [r.status for r in fake_hub.calls("GET")] == [429, 429, 200]
    assert retry_log.text.count("retrying in 0.05 s as Retry-After asks") == 2


async def test_429_retry_after_as_unix_time(
    fake_hub: FakeHub,  # noqa: F811
    retry_log: pytest.LogCaptureFixture,
) -> None:
    # a live Hub 429 carried retry-after: 1746136938 (docker/hub-feedback#2459): a moment, not
    # 55 years; read as seconds it was "wait longer than allowed" and failed at once
    async with HubClient(fake_hub.url, _creds(fake_hub)) as c:
        await c.login()
        fake_hub.throttle(1, retry_after=1, style="unix")
        started = time.monotonic()
        data = await c.get_json("/v2/orgs/acme/groups")
    assert data["count"] == 1
    assert [r.status for r in fake_hub.calls("GET")] == [429, 200]
    assert time.monotonic() - started < 5
    assert "as Retry-After asks" in retry_log.text


async def test_429_old_unix_time_x_retry_after(fake_hub: FakeHub) -> None:  # noqa: F811
    async with HubClient(fake_hub.url, _creds(fake_hub)) as c:
        fake_hub.throttle(1, retry_after=1, style="x-unix")  # hits the login itself
        await c.get_json("/v2/orgs/acme/groups")
    assert [r.status for r in fake_hub.calls("POST")] == [429, 200]


async def test_429_too_often_gives_rate_limited_error(fake_hub: FakeHub) -> None:  # noqa: F811
    async with HubClient(fake_hub.url, _creds(fake_hub), retry=RetryPolicy.no_wait(3)) as c:
        await c.login()
        fake_hub.throttle(5, retry_after=0.01)
        with pytest.raises(HubRateLimitedError) as info:
            await c.get_json("/v2/orgs/acme/groups")
    assert info.value.retry_after == 0.01
    assert info.value.exhausted  # nothing above the client sends it again
    assert "Rate limit exceeded" in str(info.value)
    assert [r.status for r in fake_hub.calls("GET")] == [429, 429, 429]


async def test_429_asking_too_long_fails_at_once(fake_hub: FakeHub) -> None:  # noqa: F811
    retry = RetryPolicy(max_retry_after=10)
    async with HubClient(fake_hub.url, _creds(fake_hub), retry=retry) as c:
        await c.login()
        fake_hub.throttle(1, retry_after=3600)
        with pytest.raises(HubRateLimitedError) as info:
            await c.get_json("/v2/orgs/acme/groups")
    assert info.value.retry_after == 3600
    assert len(fake_hub.calls("GET")) == 1


async def test_remaining_zero_waits_for_reset() -> None:
    hub = FakeHub(rate_limit=2)
    hub.rate_window = 1.0
    seed = hub.seed_default()
    with hub:
        async with HubClient(hub.url, HubCredentials(seed.username, seed.pat)) as c:
            await c.login()  # request 1
            await c.get_json("/v2/orgs/acme/groups")  # request 2: remaining 0
            assert c.rate_limit is not None and c.rate_limit.exhausted
            started = time.monotonic()
            await c.get_json("/v2/orgs/acme/groups")
            assert time.monotonic() - started > 0.05
        assert [r.status for r in hub.calls("GET")] == [200, 200]  # waited instead of a 429
    assert hub.violations == []


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v2/namespaces/acme/repositories/nope", 404, "not found: object not found"),
        ("/v2/orgs/nope/groups", 404, "not found: organization not found"),
        ("/v2/namespaces/acme/repositories?ordering=stars", 400, "Invalid ordering value"),
    ],
)
async def test_error_bodies_become_hub_errors(
    fake_hub: FakeHub,  # noqa: F811
    client: HubClient,
    path: str,
    status: int,
    message: str,
) -> None:
    with pytest.raises(HubError) as info:
        await client.get_json(path)
    assert info.value.status == status
    assert message in info.value.message
    fake_hub.violations.clear()  # the bad ordering is on purpose


async def test_transport_failure_is_typed() -> None:
    retry = RetryPolicy.no_wait(2)
    async with HubClient(
        "http://127.0.0.1:9", None, timeouts=TransferTimeouts.within(2), retry=retry
    ) as c:
        with pytest.raises(TransportError) as info:
            await c.get_json("/api/search/v3/catalog/search", auth=False)
    assert info.value.exhausted


async def test_no_secret_in_logs_or_repr(
    fake_hub: FakeHub,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fake_hub.seed is not None
    creds = _creds(fake_hub)
    # the CLI (when another test ran it) stops imagevet records from reaching caplog
    monkeypatch.setattr(logging.getLogger("imagevet"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="imagevet")
    async with HubClient(fake_hub.url, creds) as c:
        await c.get_json("/v2/orgs/acme/groups")
        fake_hub.expire_tokens()
        await c.get_json("/v2/orgs/acme/groups")
        text = caplog.text + repr(c) + repr(creds) + str(creds)
    assert caplog.records
    assert fake_hub.seed.pat not in text
    assert "eyJ" not in text  # no JWT


async def test_sso_enforced_org_refuses_a_password_with_a_hint(fake_hub: FakeHub) -> None:  # noqa: F811
    assert fake_hub.seed is not None
    fake_hub.sso_orgs.add("acme")
    creds = HubCredentials("alice", fake_hub.seed.password)
    async with HubClient(fake_hub.url, creds) as c:
        with pytest.raises(HubError) as info:
            await c.login()
    assert info.value.status == 401
    assert "single sign-on" in str(info.value) and "personal access token" in str(info.value)
    assert fake_hub.seed.password not in str(info.value)
