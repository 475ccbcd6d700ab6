"""HubRepositoryManager: org repositories on Docker Hub brought in line with their RepoSpec.

``diff`` only reads::

    GET /v2/namespaces/{ns}/repositories/{r}          404 -> CREATE (and every team to grant)
    compare is_private, description, full_description -> PRIVACY, DESCRIPTION
    GET /v2/orgs/{org}/groups (once per org)          team name -> id; unknown team -> HubError
    GET /v2/repositories/{ns}/{r}/groups/{id}/        404 -> grant; other permission -> change

``apply`` writes::

    POST /v2/namespaces/{ns}/repositories             name, namespace, description, full_description,
                                                      is_private; 400/409 -> GET: exists? go on
    PATCH /v2/namespaces/{ns}/repositories/{r}        {"description", "full_description"}
    POST /v2/repositories/{ns}/{r}/privacy/           {"is_private"}        (PAT only)
    POST /v2/repositories/{ns}/{r}/groups/            {"group_id", "permission"}  (PAT only)
    PATCH /v2/repositories/{ns}/{r}/groups/{id}/      {"permission"}        (PAT only)

The last three (and the permission read) go through :mod:`imagevet.hub.legacy`.  Docker Hub
accepts organization access tokens only on the namespace-scoped routes, so with an OAT a spec
that names teams, or an existing repository whose privacy must change, is refused with
:class:`~imagevet.errors.HubTokenError` ("needs a personal access token") before anything is
sent for it.

Descriptions are cut to Hub's limits (100 and 25000 characters) before they are sent or
compared, so a second ``diff`` after ``apply`` is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagevet.errors import HubError, HubTokenError
from imagevet.hub.credentials import SecretKind
from imagevet.hub.legacy import LegacyRepositoryApi, legacy_path
from imagevet.hub.overview import DESCRIPTION_MAX, FULL_DESCRIPTION_MAX, fit
from imagevet.hub.responses import error_message
from imagevet.hub.teams import TeamDirectory
from imagevet.repository_spec import RepoChange, RepoChangeKind, RepoSpec, TeamPermission

if TYPE_CHECKING:
    from imagevet.hub.client import HubClient

__all__ = ["HubRepositoryManager", "RepositoryState"]

log = logging.getLogger(__name__)

_MAYBE_EXISTS = (400, 409)


@dataclass(frozen=True, slots=True)
class RepositoryState:
    """What Docker Hub says about a repository (the fields imagevet manages)."""

    namespace: str
    name: str
    private: bool
    description: str
    full_description: str

    @classmethod
    def from_json(cls, data: Any, namespace: str, name: str) -> RepositoryState:
        if not isinstance(data, dict):
            data = {}
        return cls(
            namespace,
            name,
            bool(data.get("is_private", False)),
            str(data.get("description") or ""),
            str(data.get("full_description") or ""),
        )


def _wanted(spec: RepoSpec) -> tuple[str, str]:
    return fit(spec.description, DESCRIPTION_MAX), fit(spec.full_description, FULL_DESCRIPTION_MAX)


def _field_changes(spec: RepoSpec, state: RepositoryState) -> list[RepoChange]:
    changes = []
    if state.private != spec.private:
        changes.append(
            RepoChange(RepoChangeKind.PRIVACY, "make " + ("private" if spec.private else "public"))
        )
    description, full = _wanted(spec)
    stale = [
        label
        for label, have, want in (
            ("description", state.description, description),
            ("full_description", state.full_description, full),
        )
        if have != want
    ]
    if stale:
        changes.append(RepoChange(RepoChangeKind.DESCRIPTION, "update " + " and ".join(stale)))
    return changes


class HubRepositoryManager:
    """Implements :class:`~imagevet.repository_spec.RepositoryManager` for Docker Hub.

    One manager serves a whole run: team ids are listed once per org, and the team permissions
    ``diff`` saw are remembered so ``apply`` does not read them again.
    """

    def __init__(
        self,
        client: HubClient,
        *,
        teams: TeamDirectory | None = None,
        legacy: LegacyRepositoryApi | None = None,
    ) -> None:
        self._client = client
        self._teams = teams or TeamDirectory(client)
        self._legacy = legacy or LegacyRepositoryApi(client)
        # (repository path, team) -> permission the team had when diff looked (None: none)
        self._seen: dict[tuple[str, str], TeamPermission | None] = {}

    def _oat(self) -> bool:
        creds = self._client.credentials
        return creds is not None and creds.kind is SecretKind.OAT

    def _needs_pat(self, spec: RepoSpec, what: str, method: str, path: str) -> HubTokenError:
        return HubTokenError(
            403,
            method,
            self._client.url(path),
            f"{spec.path}: {what} needs a personal access token: Docker Hub accepts organization "
            "access tokens only on the namespace-scoped routes and publishes none for this; use "
            "the PAT of an org owner or editor with Read, Write, Delete (repo:admin)",
        )

    def _check_token(self, spec: RepoSpec, kinds: set[RepoChangeKind]) -> None:
        """Refuse, before sending, what an organization access token cannot do."""
        if not self._oat():
            return
        if spec.teams and (RepoChangeKind.TEAM in kinds or RepoChangeKind.CREATE in kinds):
            teams = ", ".join(sorted(spec.teams))
            path = legacy_path(spec.namespace, spec.name, "groups")
            raise self._needs_pat(spec, f"granting team permissions ({teams})", "POST", path)
        if RepoChangeKind.PRIVACY in kinds:
            path = legacy_path(spec.namespace, spec.name, "privacy")
            raise self._needs_pat(spec, "changing privacy", "POST", path)

    async def get(self, namespace: str, name: str) -> RepositoryState | None:
        """The repository's state, or None when it does not exist (or is hidden from us)."""
        path = f"/v2/namespaces/{namespace}/repositories/{name}"
        response = await self._client.request("GET", path, accept=(404,))
        if response.status == 404:
            return None
        return RepositoryState.from_json(response.json(), namespace, name)

    async def diff(self, spec: RepoSpec) -> list[RepoChange]:
        """What must change for ``spec`` to hold; empty when it already does.

        With an organization access token, teams cannot even be read: a spec naming teams is a
        :class:`~imagevet.errors.HubTokenError` at once, as is a privacy change it needs.
        """
        if spec.teams and self._oat():
            self._check_token(spec, {RepoChangeKind.TEAM})
        state = await self.get(spec.namespace, spec.name)
        if state is None:
            changes = [
                RepoChange(
                    RepoChangeKind.CREATE,
                    f"create {spec.path} ({'private' if spec.private else 'public'})",
                )
            ]
            for team, permission in sorted(spec.teams.items()):
                await self._teams.team_id(spec.namespace, team)  # fail early on unknown teams
                changes.append(
                    RepoChange(RepoChangeKind.TEAM, f"grant {team} {permission}", team=team)
                )
            return changes
        changes = _field_changes(spec, state)
        self._check_token(spec, {c.kind for c in changes})
        for team, permission in sorted(spec.teams.items()):
            group_id = await self._teams.team_id(spec.namespace, team)
            have = await self._legacy.team_permission(spec.namespace, spec.name, group_id)
            self._seen[(spec.path, team)] = have
            if have is None:
                changes.append(
                    RepoChange(RepoChangeKind.TEAM, f"grant {team} {permission}", team=team)
                )
            elif have != permission:
                changes.append(
                    RepoChange(
                        RepoChangeKind.TEAM, f"change {team} {have} -> {permission}", team=team
                    )
                )
        return changes

    async def apply(self, spec: RepoSpec, changes: Sequence[RepoChange]) -> None:
        """Carry out ``changes`` from :meth:`diff`; safe to repeat."""
        kinds = {c.kind for c in changes}
        self._check_token(spec, kinds)
        created = False
        if RepoChangeKind.CREATE in kinds:
            state = await self._create(spec)
            created = state is None
            if state is not None:  # it existed after all: bring its fields in line
                kinds |= {c.kind for c in _field_changes(spec, state)}
        if not created:
            if RepoChangeKind.PRIVACY in kinds:
                await self._legacy.set_privacy(spec.namespace, spec.name, private=spec.private)
            if RepoChangeKind.DESCRIPTION in kinds:
                description, full = _wanted(spec)
                await self._client.request(
                    "PATCH",
                    f"/v2/namespaces/{spec.namespace}/repositories/{spec.name}",
                    json_body={"description": description, "full_description": full},
                )
        teams = {c.team for c in changes if c.kind is RepoChangeKind.TEAM and c.team}
        if RepoChangeKind.CREATE in kinds and not created:
            teams |= set(spec.teams)  # an existing repository may lack any of them
        for team in sorted(teams):
            await self._grant(spec, team, known_absent=created)

    async def _create(self, spec: RepoSpec) -> RepositoryState | None:
        """Create the repository; None when created, its state when it already existed."""
        description, full = _wanted(spec)
        body = {
            "name": spec.name,
            "namespace": spec.namespace,
            "description": description,
            "full_description": full,
            "is_private": spec.private,
        }
        path = f"/v2/namespaces/{spec.namespace}/repositories"
        response = await self._client.request("POST", path, json_body=body, accept=_MAYBE_EXISTS)
        if response.ok:
            log.info("created %s", spec.path)
            return None
        # Hub does not document its "already exists" status: confirm with a GET.
        state = await self.get(spec.namespace, spec.name)
        if state is None:
            why = error_message(
                response.status,
                response.body,
                [self._client.credentials.secret] if self._client.credentials else [],
            )
            raise HubError(
                response.status, "POST", response.url, f"cannot create {spec.path}: {why}"
            )
        log.info("%s already exists", spec.path)
        return state

    async def _grant(self, spec: RepoSpec, team: str, *, known_absent: bool) -> None:
        want = spec.teams.get(team)
        if want is None:
            return
        group_id = await self._teams.team_id(spec.namespace, team)
        key = (spec.path, team)
        if known_absent:
            have = None
        elif key in self._seen:
            have = self._seen.pop(key)
        else:
            have = await self._legacy.team_permission(spec.namespace, spec.name, group_id)
        if have == want:
            return
        if have is None:
            await self._legacy.grant_team(spec.namespace, spec.name, group_id, want)
        else:
            await self._legacy.change_team_permission(spec.namespace, spec.name, group_id, want)
        log.info("%s: team %s has %s", spec.path, team, want)
