"""HubRepositoryManager against the fake Hub: create, privacy, descriptions, team permissions."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from imagevet.errors import HubError, HubTokenError
from imagevet.hub import HubClient, HubCredentials, HubRepositoryManager, render_overview
from imagevet.repository_spec import (
    RepoChange,
    RepoChangeKind,
    RepositoryManager,
    RepoSpec,
    TeamPermission,
)
from tests.support.fake_hub import FakeHub, fake_hub  # noqa: F401  (fixture)

UPSTREAM = "docker.io/bitnami/redis"


def _spec(**kw: object) -> RepoSpec:
    overview = render_overview(
        upstream=UPSTREAM,
        policy_entry="redis",
        approver="alice",
        approval_expiry="2027-01-31",
        tags=[("7.2", "sha256:" + "a" * 64, "2026-11-29T10:00:00Z")],
        last_sync="2026-11-29T10:00:00Z",
    )
    values: dict[str, object] = {
        "namespace": "acme",
        "name": "redis",
        "private": True,
        "description": f"Vetted mirror of {UPSTREAM}",
        "full_description": overview,
        "teams": {"developers": TeamPermission.READ},
    }
    values.update(kw)
    return RepoSpec(**values)  # type: ignore[arg-type]


@pytest.fixture
async def manager(fake_hub: FakeHub) -> AsyncIterator[HubRepositoryManager]:  # noqa: F811
    assert fake_hub.seed is not None
    creds = HubCredentials(fake_hub.seed.username, fake_hub.seed.pat)
    async with HubClient(fake_hub.url, creds) as client:
        yield HubRepositoryManager(client)


def _kinds(changes: Sequence[RepoChange]) -> list[RepoChangeKind]:
    return [c.kind for c in changes]


async def test_is_a_repository_manager(manager: HubRepositoryManager) -> None:
    _: RepositoryManager = manager


async def test_create_grant_and_second_diff_is_empty(
    fake_hub: FakeHub,  # noqa: F811
    manager: HubRepositoryManager,
) -> None:
    spec = _spec()
    changes = await manager.diff(spec)
    assert _kinds(changes) == [RepoChangeKind.CREATE, RepoChangeKind.TEAM]
    assert changes[1].team == "developers"
    await manager.apply(spec, changes)

    repo = fake_hub.repository("acme", "redis")
    assert repo is not None
    assert repo["is_private"] is True
    assert repo["description"] == spec.description
    assert repo["full_description"] == spec.full_description
    assert fake_hub.team_permission("acme", "redis", "developers") == "read"
    create = fake_hub.calls("POST", "/v2/namespaces/acme/repositories")[0]
    assert create.body == {
        "name": "redis",
        "namespace": "acme",
        "description": spec.description,
        "full_description": spec.full_description,
        "is_private": True,
    }
    grant = fake_hub.calls("POST", "/v2/repositories/acme/redis/groups")[0]
    assert grant.path == "/v2/repositories/acme/redis/groups/"  # the slash is part of the route
    assert grant.status == 200
    assert grant.body == {"group_id": fake_hub.seed.team_id, "permission": "read"}  # type: ignore[union-attr]
    # a fresh repository needs no privacy/description calls and no permission read
    assert fake_hub.calls("PATCH") == []
    assert fake_hub.calls("POST", "/v2/repositories/acme/redis/privacy") == []
    assert fake_hub.calls("GET", "/v2/repositories/acme/redis/groups") == []

    assert await manager.diff(spec) == []
    await manager.apply(spec, [])


@pytest.mark.parametrize("status", [400, 409])
async def test_existing_repository_on_create_is_confirmed_and_updated(
    fake_hub: FakeHub,  # noqa: F811
    manager: HubRepositoryManager,
    status: int,
) -> None:
    fake_hub.exists_status = status
    spec = _spec()
    changes = await manager.diff(spec)
    assert _kinds(changes)[0] is RepoChangeKind.CREATE
    # someone creates it between plan and sync, public and undescribed
    fake_hub.add_repository("acme", "redis", private=False, description="hand made")
    await manager.apply(spec, changes)

    assert [r.status for r in fake_hub.calls("POST", "/v2/namespaces/acme/repositories")] == [
        status
    ]
    repo = fake_hub.repository("acme", "redis")
    assert repo is not None and repo["is_private"] is True
    assert repo["description"] == spec.description
    assert fake_hub.calls("POST", "/v2/repositories/acme/redis/privacy")[0].body == {
        "is_private": True
    }
    assert fake_hub.team_permission("acme", "redis", "developers") == "read"
    assert await manager.diff(spec) == []


async def test_create_refused_for_another_reason_is_an_error(
    fake_hub: FakeHub,  # noqa: F811
    manager: HubRepositoryManager,
) -> None:
    spec = _spec(name="x", teams={})  # Hub names need 2 characters at least
    with pytest.raises(HubError) as info:
        await manager.apply(spec, await manager.diff(spec))
    assert info.value.status == 400
    assert "cannot create acme/x" in str(info.value)
    assert "Invalid repository name" in str(info.value)


async def test_policy_change_brings_privacy_and_descriptions_back(
    fake_hub: FakeHub,  # noqa: F811
    manager: HubRepositoryManager,
) -> None:
    spec = _spec()
    await manager.apply(spec, await manager.diff(spec))
    changed = _spec(private=False, full_description="# new overview\n")
    changes = await manager.diff(changed)
    assert _kinds(changes) == [RepoChangeKind.PRIVACY, RepoChangeKind.DESCRIPTION]
    assert changes[0].detail == "make public"
    assert changes[1].detail == "update full_description"
    await manager.apply(changed, changes)
    # the namespaced update route (hub-mcp's), which organization access tokens may use too
    (patch,) = fake_hub.calls("PATCH")
    assert patch.path == "/v2/namespaces/acme/repositories/redis"
    assert (fake_hub.calls("POST", "/v2/repositories/acme/redis/privacy")[0].path) == (
        "/v2/repositories/acme/redis/privacy/"
    )
    assert patch.body == {
        "description": changed.description,
        "full_description": "# new overview\n",
    }
    assert await manager.diff(changed) == []


async def test_team_permission_changed_with_patch(
    fake_hub: FakeHub,  # noqa: F811
    manager: HubRepositoryManager,
) -> None:
    assert fake_hub.seed is not None
    fake_hub.add_repository("acme", "redis", private=True)
    fake_hub.set_team_permission("acme", "redis", "developers", "read")
    spec = _spec(teams={"developers": TeamPermission.WRITE})
    changes = await manager.diff(spec)
    team_changes = [c for c in changes if c.kind is RepoChangeKind.TEAM]
    assert [c.detail for c in team_changes] == ["change developers read -> write"]
    await manager.apply(spec, team_changes)
    assert fake_hub.team_permission("acme", "redis", "developers") == "write"
    gid = fake_hub.seed.team_id
    patch = fake_hub.calls("PATCH", f"/v2/repositories/acme/redis/groups/{gid}/")[0]
    assert patch.body == {"permission": "write"}
    # apply used what diff saw: one permission read only
    assert len(fake_hub.calls("GET", f"/v2/repositories/acme/redis/groups/{gid}")) == 1


async def test_unknown_team_names_team_and_org(
    fake_hub: FakeHub,  # noqa: F811
    manager: HubRepositoryManager,
) -> None:
    spec = _spec(teams={"qa-team": TeamPermission.READ})
    with pytest.raises(HubError) as info:
        await manager.diff(spec)
    assert "'qa-team'" in str(info.value)
    assert "'acme'" in str(info.value)
    assert "developers" in str(info.value)  # the teams it does have


async def test_teams_are_listed_once_across_pages(
    fake_hub: FakeHub,  # noqa: F811
    manager: HubRepositoryManager,
) -> None:
    for i in range(120):
        fake_hub.add_team("acme", f"team{i:03}")
    specs = [
        _spec(
            name=f"app{i}",
            teams={"team119": TeamPermission.ADMIN, "developers": TeamPermission.READ},
        )
        for i in range(3)
    ]
    for spec in specs:
        await manager.apply(spec, await manager.diff(spec))
        assert fake_hub.team_permission("acme", spec.name, "team119") == "admin"
    group_pages = fake_hub.calls("GET", "/v2/orgs/acme/groups")
    assert [r.query.get("page", ["1"])[0] for r in group_pages] == ["1", "2"]


async def test_long_descriptions_are_cut_to_hub_limits(
    fake_hub: FakeHub,  # noqa: F811
    manager: HubRepositoryManager,
) -> None:
    spec = _spec(description="é" * 150, full_description="x" * 30000, teams={})
    await manager.apply(spec, await manager.diff(spec))
    repo = fake_hub.repository("acme", "redis")
    assert repo is not None
    assert len(repo["description"]) == 100 and repo["description"].endswith("…")
    assert len(repo["full_description"]) == 25000
    assert await manager.diff(spec) == []


async def test_works_with_an_organization_access_token(fake_hub: FakeHub) -> None:  # noqa: F811
    assert fake_hub.seed is not None
    creds = HubCredentials("acme", fake_hub.seed.oat)
    async with HubClient(fake_hub.url, creds) as client:
        manager = HubRepositoryManager(client)
        spec = _spec(teams={})
        await manager.apply(spec, await manager.diff(spec))
        assert await manager.diff(spec) == []
        changed = _spec(teams={}, full_description="# new overview\n")
        await manager.apply(changed, await manager.diff(changed))
        assert await manager.diff(changed) == []
    repo = fake_hub.repository("acme", "redis")
    assert repo is not None and repo["is_private"] is True
    assert repo["full_description"] == "# new overview\n"
    assert fake_hub.calls(path_prefix="/v2/repositories/") == []  # OATs are refused there


async def test_organization_access_token_and_teams_need_a_pat(fake_hub: FakeHub) -> None:  # noqa: F811
    # Docker Hub takes OATs on the namespace-scoped routes only; team grants have none: the
    # real Hub answers 403, so imagevet says what to do before it sends anything
    assert fake_hub.seed is not None
    creds = HubCredentials("acme", fake_hub.seed.oat)
    async with HubClient(fake_hub.url, creds) as client:
        manager = HubRepositoryManager(client)
        with pytest.raises(HubTokenError) as info:
            await manager.diff(_spec())
        with pytest.raises(HubTokenError):
            await manager.apply(_spec(), [RepoChange(RepoChangeKind.CREATE, "create")])
    assert (
        "acme/redis: granting team permissions (developers) needs a personal access token"
        in str(info.value)
    )
    assert "Read, Write, Delete" in str(info.value)
    assert fake_hub.seed.oat not in str(info.value)
    assert [r.path for r in fake_hub.requests] == []  # refused before sending
    assert fake_hub.repository("acme", "redis") is None  # nothing half done


async def test_organization_access_token_cannot_change_privacy(fake_hub: FakeHub) -> None:  # noqa: F811
    assert fake_hub.seed is not None
    fake_hub.add_repository("acme", "redis", private=False)
    async with HubClient(fake_hub.url, HubCredentials("acme", fake_hub.seed.oat)) as client:
        with pytest.raises(HubTokenError, match="changing privacy needs a personal access token"):
            await HubRepositoryManager(client).diff(_spec(teams={}))
    assert fake_hub.calls(path_prefix="/v2/repositories/") == []


async def test_read_write_pat_is_not_enough(fake_hub: FakeHub) -> None:  # noqa: F811
    writer = fake_hub.add_pat("alice", level="repo:write")
    async with HubClient(fake_hub.url, HubCredentials("alice", writer)) as client:
        manager = HubRepositoryManager(client)
        spec = _spec(teams={})
        with pytest.raises(HubError) as info:
            await manager.apply(spec, await manager.diff(spec))
    assert info.value.status == 403
    assert writer not in str(info.value)


async def test_no_secret_in_logs(
    fake_hub: FakeHub,  # noqa: F811
    manager: HubRepositoryManager,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fake_hub.seed is not None
    # the CLI (when another test ran it) stops imagevet records from reaching caplog
    monkeypatch.setattr(logging.getLogger("imagevet"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="imagevet")
    spec = _spec()
    await manager.apply(spec, await manager.diff(spec))
    assert caplog.records
    assert fake_hub.seed.pat not in caplog.text
    assert "eyJ" not in caplog.text
