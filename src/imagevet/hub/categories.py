"""Image Access Management categories for any reference, the badge looked up in the Hub catalog.

The rules (dockerhub-api.md §8): :func:`~imagevet.category.classify_static` settles other
registries, ``library/`` (official) and the org's own namespace.  For the rest, the Hub's
catalog search is asked, as Docker's own hub-mcp does: ``GET /api/search/v4?query=<ns/name>
&from=0&size=25`` first, and the web UI's undocumented ``/api/search/v3/catalog/search`` (same
query) when v4 answers with an error or no ``results`` (dockerhub-api.md §12; once v4 has failed,
the rest of the run asks v3 only).  Search is fuzzy, so only a result whose ``id``, ``slug`` or
``name`` is exactly the repository counts.  Its ``badge`` decides: ``verified_publisher`` ->
Verified Publisher, ``open_source`` -> Docker-Sponsored Open Source, ``official`` -> Official,
``none`` or ``null`` (v4's community images) -> Community.

The badge belongs to the publisher, so exact results for other repositories of the same
namespace settle that namespace for the rest of the run when they all agree: one search per
namespace where possible.  When the search fails (error, timeout, rate limit) or the repository is not in the
results, the answer is Community with ``verified=False``: never a guess.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imagevet.category import Category, Classification, classify_static
from imagevet.errors import HubError, LimitExceededError, SecurityError, TransportError

if TYPE_CHECKING:
    from imagevet.hub.client import HubClient
    from imagevet.reference import Reference

__all__ = ["BADGE_CATEGORIES", "CATALOG_SEARCH_PATH", "CATALOG_SEARCH_V4_PATH", "CatalogClassifier"]

log = logging.getLogger(__name__)

CATALOG_SEARCH_V4_PATH = "/api/search/v4"
CATALOG_SEARCH_PATH = "/api/search/v3/catalog/search"
CATALOG_PAGE_SIZE = 25
DEFAULT_CONCURRENCY = 4

BADGE_CATEGORIES = {
    "verified_publisher": Category.VERIFIED_PUBLISHER,
    "open_source": Category.SPONSORED_OSS,
    "official": Category.OFFICIAL,
    "none": Category.COMMUNITY,
    None: Category.COMMUNITY,
}
"""Catalog ``badge`` -> IAM category; v4 gives community images ``null`` (a result without a
``badge`` key, or with any other value, leaves the image unverified)."""


def _namespace(path: str) -> str:
    return path.split("/", 1)[0]


class CatalogClassifier:
    """Classifies references as IAM does; caches badges per namespace for its lifetime (one run)."""

    def __init__(
        self, client: HubClient, *, org: str | None = None, concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        self._client = client
        self._org = org
        self._limit = asyncio.Semaphore(concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        self._namespace_badges: dict[str, set[Category]] = {}
        self._by_repository: dict[str, Category] = {}
        self._failed: set[str] = set()  # namespaces whose search failed this run
        self._v4 = True  # False once /api/search/v4 failed: v3 for the rest of the run
        self.searches = 0
        """How many catalog searches were sent."""

    async def classify(self, refs: Sequence[Reference]) -> list[Classification]:
        """The category of each reference, in order."""
        return list(await asyncio.gather(*(self.classify_one(ref) for ref in refs)))

    async def classify_one(self, ref: Reference) -> Classification:
        """The category of one reference (tag and digest do not matter)."""
        static = classify_static(ref, self._org)
        if static is not None:
            return Classification(ref.repo(), static)
        category = await self._lookup(ref.repository)
        if category is None:
            return Classification(ref.repo(), Category.COMMUNITY, verified=False)
        return Classification(ref.repo(), category)

    async def _lookup(self, path: str) -> Category | None:
        namespace = _namespace(path)
        lock = self._locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            known = self._cached(path)
            if known is not None or namespace in self._failed:
                return known
            try:
                async with self._limit:
                    self.searches += 1
                    results = await self._search(path)
            except (HubError, TransportError, SecurityError, LimitExceededError) as e:
                log.warning("catalog lookup of %s failed, treating it as unverified: %s", path, e)
                self._failed.add(namespace)
                return None
            self._learn(results)
            found = self._cached(path)
            if found is None:
                log.info("%s is not in the Hub catalog results; unverified", path)
            return found

    def _cached(self, path: str) -> Category | None:
        """The repository's own badge, else its namespace's when all seen repositories agree."""
        if path in self._by_repository:
            return self._by_repository[path]
        badges = self._namespace_badges.get(_namespace(path), set())
        return next(iter(badges)) if len(badges) == 1 else None

    async def _search(self, path: str) -> list[Any]:
        if self._v4:
            try:
                return await self._search_at(CATALOG_SEARCH_V4_PATH, path)
            except HubError as e:
                log.info("catalog search v4 failed (%s); using v3 for the rest of the run", e)
                self._v4 = False
        return await self._search_at(CATALOG_SEARCH_PATH, path)

    async def _search_at(self, route: str, path: str) -> list[Any]:
        data = await self._client.get_json(
            route, params={"query": path, "from": 0, "size": CATALOG_PAGE_SIZE}, auth=False
        )
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise HubError(200, "GET", self._client.url(route), "no results")
        return results

    def _learn(self, results: list[Any]) -> None:
        """Remember the badge of every result named exactly ``namespace/name``."""
        for item in results:
            if not isinstance(item, dict):
                continue
            badge = item.get("badge", "unknown")
            category = (
                BADGE_CATEGORIES.get(badge) if badge is None or isinstance(badge, str) else None
            )
            if category is None:
                continue
            for key in ("id", "slug", "name"):
                value = item.get(key)
                if isinstance(value, str) and value.count("/") == 1:
                    path = value.lower()
                    self._by_repository[path] = category
                    self._namespace_badges.setdefault(_namespace(path), set()).add(category)
