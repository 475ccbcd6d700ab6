"""Tag digests and push times from the Hub API: a cheap "has it changed?" before any registry call.

``GET /v2/namespaces/{ns}/repositories/{repo}/tags`` (paginated, page_size <= 100) and
``.../tags/{tag}`` (dockerhub-api.md §5).  The top-level ``digest`` is the index digest of a
multi-arch tag; ``images[].digest`` are the per-platform manifests.  These calls count against
the Hub API limit (handled by :class:`~imagevet.hub.client.HubClient`), not against pulls.
The server's order is not relied on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagevet.hub.client import HubClient

__all__ = ["HubTag", "get_tag", "list_tags"]


@dataclass(frozen=True, slots=True)
class HubTag:
    """One tag as the Hub API reports it (``digest`` may be None for very old images)."""

    name: str
    digest: str | None
    media_type: str | None
    last_pushed: str | None
    platforms: tuple[tuple[str, str], ...] = ()  # ("linux/arm64/v8", "sha256:...")

    @classmethod
    def from_json(cls, data: Any) -> HubTag:
        if not isinstance(data, dict):
            data = {}
        platforms = []
        for image in data.get("images") or []:
            if isinstance(image, dict) and isinstance(image.get("digest"), str):
                parts = [image.get("os"), image.get("architecture"), image.get("variant")]
                platform = "/".join(str(p) for p in parts if p)
                platforms.append((platform, image["digest"]))
        return cls(
            str(data.get("name", "")),
            data.get("digest") if isinstance(data.get("digest"), str) else None,
            data.get("media_type") if isinstance(data.get("media_type"), str) else None,
            data.get("tag_last_pushed") if isinstance(data.get("tag_last_pushed"), str) else None,
            tuple(platforms),
        )


async def list_tags(client: HubClient, namespace: str, name: str) -> list[HubTag]:
    """Every tag of ``namespace/name``, sorted by name."""
    path = f"/v2/namespaces/{namespace}/repositories/{name}/tags"
    tags = [HubTag.from_json(item) async for item in client.paginate(path)]
    return sorted(tags, key=lambda t: t.name)


async def get_tag(client: HubClient, namespace: str, name: str, tag: str) -> HubTag | None:
    """One tag, or None when it does not exist."""
    path = f"/v2/namespaces/{namespace}/repositories/{name}/tags/{tag}"
    response = await client.request("GET", path, accept=(404,))
    return None if response.status == 404 else HubTag.from_json(response.json())
