"""The ``/v2/repositories/...`` routes, kept in this one adapter: personal access tokens only.

Privacy and per-team permissions have no namespace-scoped route that Docker publishes; Docker's
Terraform provider calls these (dockerhub-api.md §3, §4, §12).  Two rules from the second audit:

* **the trailing slash is part of the route**: without it the Hub answers 301, and a client
  that follows a 301 re-sends a POST as a GET.  Each path below is written exactly as it is
  sent, slash included, and the client never follows a redirect;
* **organization access tokens are refused here** (``403 token issued from organization
  access token is not allowed``): with one, :class:`~imagevet.hub.client.HubClient` raises
  :class:`~imagevet.errors.HubTokenError` before sending.

::

    POST  /v2/repositories/{ns}/{repo}/privacy/           {"is_private": bool}
    POST  /v2/repositories/{ns}/{repo}/groups/            {"group_id", "permission"}
    GET   /v2/repositories/{ns}/{repo}/groups/{group_id}/ -> {"group_name","permission","group_id"}
    PATCH /v2/repositories/{ns}/{repo}/groups/{group_id}/ {"permission": "read"|"write"|"admin"}

Should Docker publish or change them, this is the only module to touch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagevet.errors import HubError
from imagevet.repository_spec import TeamPermission

if TYPE_CHECKING:
    from imagevet.hub.client import HubClient

__all__ = ["LegacyRepositoryApi", "legacy_path"]


def legacy_path(namespace: str, name: str, *rest: str | int) -> str:
    """``/v2/repositories/{ns}/{name}/{rest...}/``: every legacy route ends in a slash."""
    return "/".join(["/v2/repositories", namespace, name, *map(str, rest)]) + "/"


class LegacyRepositoryApi:
    """Privacy and per-team permissions of an existing repository (personal access tokens)."""

    def __init__(self, client: HubClient) -> None:
        self._client = client

    async def set_privacy(self, namespace: str, name: str, *, private: bool) -> None:
        """Make the repository private or public (``POST .../privacy/``)."""
        await self._client.request(
            "POST", legacy_path(namespace, name, "privacy"), json_body={"is_private": private}
        )

    async def grant_team(
        self, namespace: str, name: str, group_id: int, permission: TeamPermission
    ) -> None:
        """Give a team a permission it does not have yet (``POST .../groups/``)."""
        await self._client.request(
            "POST",
            legacy_path(namespace, name, "groups"),
            json_body={"group_id": group_id, "permission": str(permission)},
        )

    async def team_permission(
        self, namespace: str, name: str, group_id: int
    ) -> TeamPermission | None:
        """The team's permission on the repository; None when it has none (404)."""
        path = legacy_path(namespace, name, "groups", group_id)
        response = await self._client.request("GET", path, accept=(404,))
        if response.status == 404:
            return None
        data = response.json()
        value = data.get("permission") if isinstance(data, dict) else None
        try:
            return TeamPermission(str(value))
        except ValueError as e:
            raise HubError(
                response.status, "GET", response.url, f"unknown team permission {value!r}"[:200]
            ) from e

    async def change_team_permission(
        self, namespace: str, name: str, group_id: int, permission: TeamPermission
    ) -> None:
        """Change the permission a team already has (``PATCH .../groups/{id}/``)."""
        await self._client.request(
            "PATCH",
            legacy_path(namespace, name, "groups", group_id),
            json_body={"permission": str(permission)},
        )
