"""Team ("group") names resolved to the numeric ids the permission calls take (dockerhub-api.md §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagevet.errors import HubError

if TYPE_CHECKING:
    from imagevet.hub.client import HubClient

__all__ = ["TeamDirectory"]


class TeamDirectory:
    """Lists each org's teams once (``GET /v2/orgs/{org}/groups``, all pages) and caches them."""

    def __init__(self, client: HubClient) -> None:
        self._client = client
        self._teams: dict[str, dict[str, int]] = {}

    async def teams(self, org: str) -> dict[str, int]:
        """Team name -> id for ``org``."""
        cached = self._teams.get(org)
        if cached is None:
            cached = {}
            async for group in self._client.paginate(f"/v2/orgs/{org}/groups"):
                if isinstance(group, dict) and isinstance(group.get("id"), int):
                    cached[str(group.get("name"))] = group["id"]
            self._teams[org] = cached
        return cached

    async def team_id(self, org: str, name: str) -> int:
        """The id of team ``name``; HubError naming the team and the org when there is none."""
        teams = await self.teams(org)
        if name not in teams:
            known = ", ".join(sorted(teams)) or "none"
            raise HubError(
                404,
                "GET",
                str(self._client.url(f"/v2/orgs/{org}/groups")),
                f"team {name!r} not found in organization {org!r} (its teams: {known})",
            )
        return teams[name]
