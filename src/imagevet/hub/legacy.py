"""The Hub routes that only Docker's own clients use, kept in this one adapter.

None of these is in the public OpenAPI; Docker's Terraform provider calls them
(dockerhub-api.md §3 and §4, evidence level [client]).  The OAT reference says namespaced
equivalents exist but does not publish their paths, so a PAT is the safe credential here::

    PATCH /v2/repositories/{ns}/{repo}/                   {"description", "full_description"}
    POST  /v2/repositories/{ns}/{repo}/privacy/           {"is_private": bool}
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

__all__ = ["LegacyRepositoryApi"]


class LegacyRepositoryApi:
    """Descriptions, privacy and per-team permission of an existing repository."""

    def __init__(self, client: HubClient) -> None:
        self._client = client

    @staticmethod
    def _path(namespace: str, name: str) -> str:
        return f"/v2/repositories/{namespace}/{name}/"

    async def update_descriptions(
        self, namespace: str, name: str, *, description: str, full_description: str
    ) -> None:
        """Set the short and the full description (``PATCH /v2/repositories/{ns}/{r}/``)."""
        await self._client.request(
            "PATCH",
            self._path(namespace, name),
            json_body={"description": description, "full_description": full_description},
        )

    async def set_privacy(self, namespace: str, name: str, *, private: bool) -> None:
        """Make the repository private or public (``POST .../privacy/``)."""
        await self._client.request(
            "POST", self._path(namespace, name) + "privacy/", json_body={"is_private": private}
        )

    async def team_permission(
        self, namespace: str, name: str, group_id: int
    ) -> TeamPermission | None:
        """The team's permission on the repository; None when it has none (404)."""
        path = f"{self._path(namespace, name)}groups/{group_id}/"
        response = await self._client.request("GET", path, accept=(404,))
        if response.status == 404:
            return None
        data = response.json()
        value = data.get("permission") if isinstance(data, dict) else None
        try:
            return TeamPermission(str(value))
        except ValueError:
            raise HubError(
                response.status, "GET", response.url, f"unknown team permission {value!r}"
            ) from None

    async def change_team_permission(
        self, namespace: str, name: str, group_id: int, permission: TeamPermission
    ) -> None:
        """Change the permission a team already has (``PATCH .../groups/{id}/``)."""
        await self._client.request(
            "PATCH",
            f"{self._path(namespace, name)}groups/{group_id}/",
            json_body={"permission": str(permission)},
        )
