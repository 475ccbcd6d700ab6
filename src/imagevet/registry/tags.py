"""Tag listing with ``Link`` pagination (OCI distribution-spec v1.1, "Listing tags")."""

from __future__ import annotations

import json

from imagevet.errors import RegistryError
from imagevet.reference import Reference
from imagevet.registry.pipeline import Pipeline
from imagevet.registry.responses import raise_for_status
from imagevet.registry.urls import join_url, next_link

__all__ = ["MAX_PAGES", "list_tags"]

TAGS_BODY_LIMIT = 32 << 20
MAX_PAGES = 10_000


async def list_tags(p: Pipeline, ref: Reference, *, page_size: int | None = None) -> list[str]:
    """Every tag of ``ref``'s repository, following ``Link: <...>; rel="next"`` page by page."""
    path = f"/v2/{ref.repository}/tags/list"
    if page_size is not None:
        path += f"?n={int(page_size)}"
    url: str | None = p.url(ref.registry, path)
    seen: set[str] = set()
    tags: list[str] = []
    while url is not None and url not in seen and len(seen) < MAX_PAGES:
        seen.add(url)
        resp = await p.request(
            "GET",
            ref.registry,
            url,
            kind="tags",
            scopes=(ref.scope("pull"),),
            headers={"Accept": "application/json"},
        )
        await raise_for_status(resp, "GET")
        body = await resp.read(TAGS_BODY_LIMIT)
        if len(body) > TAGS_BODY_LIMIT:
            raise RegistryError(resp.status, "GET", resp.url, body="tag list larger than 32 MiB")
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RegistryError(resp.status, "GET", resp.url, body="tag list is not JSON") from None
        page = obj.get("tags") if isinstance(obj, dict) else None
        tags.extend(str(t) for t in page or [])
        nxt = next_link(resp.headers.getall("Link", []))
        url = join_url(resp.url, nxt) if nxt else None
    return tags
