"""IAM settings, token probing and tag digests against the fake Hub."""

from __future__ import annotations

import pytest

from imagevet.category import AccessSettings
from imagevet.errors import HubTokenError
from imagevet.hub import (
    Ability,
    AbilityCheck,
    CheckStatus,
    HubClient,
    HubCredentials,
    get_tag,
    list_tags,
    probe_token,
    read_access_settings,
)
from tests.support.fake_hub import FakeHub, fake_hub  # noqa: F401  (fixture)


def _pat(hub: FakeHub) -> HubCredentials:
    assert hub.seed is not None
    return HubCredentials(hub.seed.username, hub.seed.pat)


async def test_read_access_settings(fake_hub: FakeHub) -> None:  # noqa: F811
    fake_hub.set_settings("acme", enabled=True, allow_official=True, allow_verified=False)
    async with HubClient(fake_hub.url, _pat(fake_hub)) as client:
        settings = await read_access_settings(client, "acme")
    assert settings == AccessSettings(
        "acme", enabled=True, allow_official=True, allow_verified_publishers=False
    )


async def test_settings_refuse_an_oat(fake_hub: FakeHub) -> None:  # noqa: F811
    assert fake_hub.seed is not None
    async with HubClient(fake_hub.url, HubCredentials("acme", fake_hub.seed.oat)) as client:
        with pytest.raises(HubTokenError) as info:
            await read_access_settings(client, "acme")
    assert info.value.status == 403
    assert "needs a personal access token" in str(info.value)
    assert fake_hub.calls("GET", "/v2/orgs/acme/settings") == []  # refused before sending


def _by_ability(checks: list[AbilityCheck]) -> dict[Ability, CheckStatus]:
    return {c.ability: c.status for c in checks}


async def test_probe_with_owner_pat(fake_hub: FakeHub) -> None:  # noqa: F811
    fake_hub.add_repository("acme", "secret-app", private=True)
    async with HubClient(fake_hub.url, _pat(fake_hub)) as client:
        probe = await probe_token(client, "acme")
    checks = probe.checks
    assert probe.settings is not None and not probe.settings.enabled
    assert _by_ability(checks) == {
        Ability.LOGIN: CheckStatus.OK,
        Ability.LIST_PRIVATE: CheckStatus.OK,
        Ability.READ_TEAMS: CheckStatus.OK,
        Ability.READ_SETTINGS: CheckStatus.OK,
        Ability.CREATE_REPOSITORIES: CheckStatus.UNKNOWN,
        Ability.EDIT_REPOSITORIES: CheckStatus.UNKNOWN,
        Ability.GRANT_TEAMS: CheckStatus.UNKNOWN,
    }
    # only reads: nothing was created or changed
    assert {r.method for r in fake_hub.requests} <= {"GET", "POST"}
    assert [r.path for r in fake_hub.calls("POST")] == ["/v2/auth/token"]
    # the level repository management needs (dockerhub-api.md §12): Read & Write is not enough
    details = {c.ability: c.detail for c in checks}
    for ability in (
        Ability.CREATE_REPOSITORIES,
        Ability.EDIT_REPOSITORIES,
        Ability.GRANT_TEAMS,
    ):
        assert '"Read, Write, Delete" (repo:admin)' in details[ability]
        assert "Read & Write is not enough" in details[ability]


async def test_probe_with_oat_reports_settings_and_scope_needs(fake_hub: FakeHub) -> None:  # noqa: F811
    assert fake_hub.seed is not None
    oat = fake_hub.add_oat("acme", {"scope-repository-read"})  # no list, no group read
    fake_hub.add_repository("acme", "secret-app", private=True)
    async with HubClient(fake_hub.url, HubCredentials("acme", oat)) as client:
        checks = (await probe_token(client, "acme")).checks
    status = _by_ability(checks)
    assert status[Ability.LIST_PRIVATE] is CheckStatus.UNKNOWN
    assert status[Ability.READ_TEAMS] is CheckStatus.MISSING
    assert status[Ability.READ_SETTINGS] is CheckStatus.MISSING
    # privacy and team grants have no namespaced route: an OAT cannot do them at all
    assert status[Ability.EDIT_REPOSITORIES] is CheckStatus.MISSING
    assert status[Ability.GRANT_TEAMS] is CheckStatus.MISSING
    details = {c.ability: c.detail for c in checks}
    assert "scope-repository-create" in details[Ability.CREATE_REPOSITORIES]
    assert "PAT" in details[Ability.READ_SETTINGS]
    assert "use a personal access token" in details[Ability.GRANT_TEAMS]
    assert oat not in repr(checks)


async def test_probe_with_wrong_token(fake_hub: FakeHub) -> None:  # noqa: F811
    async with HubClient(fake_hub.url, HubCredentials("alice", "dckr_pat_nope")) as client:
        checks = (await probe_token(client, "acme")).checks
    assert [(c.ability, c.status) for c in checks] == [(Ability.LOGIN, CheckStatus.MISSING)]
    assert "dckr_pat_nope" not in checks[0].detail


async def test_tags_with_digests(fake_hub: FakeHub) -> None:  # noqa: F811
    fake_hub.add_repository("acme", "redis", private=True)
    index = "sha256:" + "1" * 64
    fake_hub.add_tag(
        "acme",
        "redis",
        "7.2",
        digest=index,
        platforms={"linux/amd64": "sha256:" + "2" * 64, "linux/arm64": "sha256:" + "3" * 64},
        last_pushed="2026-11-01T00:00:00.000000Z",
    )
    fake_hub.add_tag("acme", "redis", "7.0", digest="sha256:" + "4" * 64)
    async with HubClient(fake_hub.url, _pat(fake_hub)) as client:
        tags = await list_tags(client, "acme", "redis")
        one = await get_tag(client, "acme", "redis", "7.2")
        missing = await get_tag(client, "acme", "redis", "9")
    assert [t.name for t in tags] == ["7.0", "7.2"]
    assert one == tags[1]
    assert one is not None and one.digest == index
    assert one.last_pushed == "2026-11-01T00:00:00.000000Z"
    assert one.platforms == (
        ("linux/amd64", "sha256:" + "2" * 64),
        ("linux/arm64", "sha256:" + "3" * 64),
    )
    assert missing is None
