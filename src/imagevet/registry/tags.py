"""Tag listing with ``Link`` pagination (OCI distribution-spec v1.1, "Listing tags").

A listing is bounded whatever the registry sends, and never ends early in silence: a ``Link`` back
to a page already read, more than :data:`MAX_PAGES` pages or more than :data:`MAX_TAGS` tags raise
:class:`~imagevet.errors.LimitExceededError` naming the repository (a partial list would read as
"these are all the tags" and let a run say "up to date").  The caps are far above any real
repository (Docker Hub pages hold up to 10,000 tags; a page body is capped at 32 MiB).
"""

from __future__ import annotations

import json

from imagevet.errors import LimitExceededError, RegistryError, redact_url
from imagevet.reference import Reference
from imagevet.registry.pipeline import Pipeline
from imagevet.registry.responses import raise_for_status
from imagevet.registry.urls import join_url, next_link

__all__ = ["MAX_PAGES", "MAX_TAGS", "list_tags"]

TAGS_BODY_LIMIT = 32 << 20
MAX_PAGES = 10_000
"""Pages read for one listing at most."""
MAX_TAGS = 1_000_000
"""Tags of one repository at most (about 100 MiB of memory at the 128-character tag limit)."""


async def list_tags(p: Pipeline, ref: Reference, *, page_size: int | None = None) -> list[str]:
    """Every tag of ``ref``'s repository, following ``Link: <...>; rel="next"`` page by page."""
    path = f"/v2/{ref.repository}/tags/list"
    if page_size is not None:
        path += f"?n={int(page_size)}"
    url: str | None = p.url(ref.registry, path)
    seen: set[str] = set()
    tags: list[str] = []
    what = f"tag list of {ref.name}"
    while url is not None:
        if url in seen:
            raise LimitExceededError(
                what, f"page {len(seen)} links back to a page already read ({redact_url(url)})"
            )
        if len(seen) >= MAX_PAGES:
            raise LimitExceededError(what, f"more than {MAX_PAGES} pages")
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
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise RegistryError(resp.status, "GET", resp.url, body="tag list is not JSON") from None
        page = obj.get("tags") if isinstance(obj, dict) else None
        if page is not None and not isinstance(page, list):
            raise RegistryError(resp.status, "GET", resp.url, body="tag list is not a JSON list")
        tags.extend(str(t) for t in page or [])
        if len(tags) > MAX_TAGS:
            raise LimitExceededError(what, f"more than {MAX_TAGS} tags")
        nxt = next_link(resp.headers.getall("Link", []))
        url = join_url(resp.url, nxt) if nxt else None
    return tags
