"""An org's Image Access Management settings, and what the configured token can be shown to do.

``GET /v2/orgs/{org}/settings`` -> ``{"restricted_images": {"enabled", "allow_official_images",
"allow_verified_publishers"}}`` (dockerhub-api.md §9; PAT or password of an org member: OATs are
refused).  :func:`probe_token` checks the token's abilities with read-only calls from the same
reference; abilities that only a write would reveal (creating a repository, granting a team)
are reported as "cannot verify" with the scope they need, never as fine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagevet.category import AccessSettings
from imagevet.errors import HubError, TransportError
from imagevet.hub.credentials import SecretKind
from imagevet.hub.scopes import (
    PAT_ADMIN,
    PAT_ADMIN_LABEL,
    SCOPE_GROUP_READ,
    SCOPE_REPO_GROUP_EDIT,
    SCOPE_REPOSITORY_CREATE,
    SCOPE_REPOSITORY_EDIT,
    SCOPE_REPOSITORY_LIST,
)

if TYPE_CHECKING:
    from imagevet.hub.client import HubClient

__all__ = [
    "Ability",
    "AbilityCheck",
    "CheckStatus",
    "TokenProbe",
    "probe_token",
    "read_access_settings",
]


async def read_access_settings(client: HubClient, org: str) -> AccessSettings:
    """Read ``org``'s IAM settings (``GET /v2/orgs/{org}/settings``)."""
    path = f"/v2/orgs/{org}/settings"
    data = await client.get_json(path)
    restricted: Any = data.get("restricted_images") if isinstance(data, dict) else None
    if not isinstance(restricted, dict) or not isinstance(restricted.get("enabled"), bool):
        raise HubError(
            200, "GET", str(client.url(path)), "settings answer has no restricted_images"
        )
    return AccessSettings(
        org,
        enabled=restricted["enabled"],
        allow_official=bool(restricted.get("allow_official_images", False)),
        allow_verified_publishers=bool(restricted.get("allow_verified_publishers", False)),
    )


class Ability(enum.StrEnum):
    """What imagevet needs the token to do in the org."""

    LOGIN = "log in"
    LIST_PRIVATE = "list private repositories"
    READ_TEAMS = "read teams"
    READ_SETTINGS = "read IAM settings"
    CREATE_REPOSITORIES = "create repositories"
    EDIT_REPOSITORIES = "change privacy and descriptions"
    GRANT_TEAMS = "grant team permissions"


class CheckStatus(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    UNKNOWN = "cannot verify"


@dataclass(frozen=True, slots=True)
class AbilityCheck:
    """One ability, whether the token has it, and why we think so."""

    ability: Ability
    status: CheckStatus
    detail: str


def _needs(kind: SecretKind | None, *, pat: str, oat: str) -> str:
    if kind is SecretKind.OAT:
        return f"an organization access token needs {oat}"
    return (
        f"needs an org owner or editor whose personal access token has {PAT_ADMIN_LABEL} "
        f"({pat}); Read & Write is not enough (a password has all levels)"
    )


_PAT_ONLY = (
    "not possible with an organization access token: Docker Hub takes them only on the "
    f"namespace-scoped routes and publishes none for this; use a personal access token with "
    f"{PAT_ADMIN_LABEL} ({PAT_ADMIN}) of an org owner or editor"
)


async def _status_of(client: HubClient, path: str, **params: str | int) -> tuple[int, Any]:
    response = await client.request("GET", path, params=params, accept=(401, 403, 404))
    return response.status, response.json() if response.ok else None


@dataclass(frozen=True, slots=True)
class TokenProbe:
    """What :func:`probe_token` found: one check per ability, and the IAM settings if readable."""

    checks: list[AbilityCheck]
    settings: AccessSettings | None = None


async def probe_token(client: HubClient, org: str) -> TokenProbe:
    """Check what the client's credentials can do in ``org`` using read-only calls."""
    creds = client.credentials
    kind = creds.kind if creds is not None else None
    if creds is None:
        missing = AbilityCheck(Ability.LOGIN, CheckStatus.MISSING, "no credentials configured")
        return TokenProbe([missing])
    try:
        await client.login()
    except (HubError, TransportError) as e:
        return TokenProbe([AbilityCheck(Ability.LOGIN, CheckStatus.MISSING, str(e))])
    checks = [AbilityCheck(Ability.LOGIN, CheckStatus.OK, f"logged in as {creds}")]

    status, page = await _status_of(client, f"/v2/namespaces/{org}/repositories", page_size=100)
    if status != 200:
        checks.append(AbilityCheck(Ability.LIST_PRIVATE, CheckStatus.MISSING, f"HTTP {status}"))
    else:
        results = page.get("results", []) if isinstance(page, dict) else []
        private = sum(1 for r in results if isinstance(r, dict) and r.get("is_private"))
        if private:
            checks.append(
                AbilityCheck(Ability.LIST_PRIVATE, CheckStatus.OK, f"sees {private} private")
            )
        else:
            checks.append(
                AbilityCheck(
                    Ability.LIST_PRIVATE,
                    CheckStatus.UNKNOWN,
                    "no private repository visible: the org has none, or the token lacks "
                    f"{SCOPE_REPOSITORY_LIST} (Hub then omits them silently)",
                )
            )

    status, _ = await _status_of(client, f"/v2/orgs/{org}/groups", page_size=1)
    checks.append(
        AbilityCheck(Ability.READ_TEAMS, CheckStatus.OK, "teams listed")
        if status == 200
        else AbilityCheck(
            Ability.READ_TEAMS, CheckStatus.MISSING, f"HTTP {status}; needs {SCOPE_GROUP_READ}"
        )
    )

    settings: AccessSettings | None = None
    try:
        settings = await read_access_settings(client, org)
        checks.append(AbilityCheck(Ability.READ_SETTINGS, CheckStatus.OK, "settings read"))
    except HubError as e:
        why = (
            "organization access tokens cannot read IAM settings: use an org owner's PAT"
            if kind is SecretKind.OAT
            else f"HTTP {e.status}: {e.message}; needs an org member's PAT or password"
        )
        checks.append(AbilityCheck(Ability.READ_SETTINGS, CheckStatus.MISSING, why))

    checks.append(
        AbilityCheck(
            Ability.CREATE_REPOSITORIES,
            CheckStatus.UNKNOWN,
            "only creating a repository would tell; "
            + _needs(kind, pat=PAT_ADMIN, oat=SCOPE_REPOSITORY_CREATE),
        )
    )
    if kind is SecretKind.OAT:
        # descriptions have a namespaced route (scope-repository-edit); privacy and team grants
        # have none, and the legacy routes refuse OATs (dockerhub-api.md §12)
        checks.append(
            AbilityCheck(Ability.EDIT_REPOSITORIES, CheckStatus.MISSING, "privacy: " + _PAT_ONLY)
        )
        checks.append(AbilityCheck(Ability.GRANT_TEAMS, CheckStatus.MISSING, _PAT_ONLY))
        return TokenProbe(checks, settings)
    checks.append(
        AbilityCheck(
            Ability.EDIT_REPOSITORIES,
            CheckStatus.UNKNOWN,
            "only a change would tell; " + _needs(kind, pat=PAT_ADMIN, oat=SCOPE_REPOSITORY_EDIT),
        )
    )
    checks.append(
        AbilityCheck(
            Ability.GRANT_TEAMS,
            CheckStatus.UNKNOWN,
            "only a grant would tell; " + _needs(kind, pat=PAT_ADMIN, oat=SCOPE_REPO_GROUP_EDIT),
        )
    )
    return TokenProbe(checks, settings)
