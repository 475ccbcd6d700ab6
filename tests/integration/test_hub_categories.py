"""IAM categories: static rules, catalog badges matched exactly, per-namespace cache, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from imagevet.category import Category
from imagevet.hub import CatalogClassifier, HubClient
from imagevet.reference import Reference
from imagevet.registry import RetryPolicy, TransferTimeouts
from tests.support.fake_hub import FakeHub, fake_hub  # noqa: F401  (fixture)


def _seed_catalog(hub: FakeHub) -> None:
    hub.add_catalog_entry("redis", badge="official", popularity=100)
    hub.add_catalog_entry("bitnamilegacy/redis", badge="none", popularity=90)  # fuzzy decoy
    hub.add_catalog_entry("bitnami/redis", badge="verified_publisher", popularity=50)
    hub.add_catalog_entry("bitnami/nginx", badge="verified_publisher")
    hub.add_catalog_entry("jaegertracing/all-in-one", badge="open_source")
    hub.add_catalog_entry("someuser/redis", badge="none")


@pytest.fixture
async def classifier(fake_hub: FakeHub) -> AsyncIterator[CatalogClassifier]:  # noqa: F811
    _seed_catalog(fake_hub)
    async with HubClient(fake_hub.url) as client:  # the catalog needs no login
        yield CatalogClassifier(client, org="acme")


@pytest.mark.parametrize(
    ("text", "category", "searches"),
    [
        ("nginx:1.27", Category.OFFICIAL, 0),
        ("docker.io/library/redis@sha256:" + "a" * 64, Category.OFFICIAL, 0),
        ("acme/tool", Category.ORGANIZATION, 0),
        ("bitnami/redis:7.2", Category.VERIFIED_PUBLISHER, 1),
        ("jaegertracing/all-in-one", Category.SPONSORED_OSS, 1),
        ("someuser/redis", Category.COMMUNITY, 1),
        ("ghcr.io/someone/tool:1", Category.OTHER_REGISTRY, 0),
    ],
)
async def test_category_table(
    fake_hub: FakeHub,  # noqa: F811
    classifier: CatalogClassifier,
    text: str,
    category: Category,
    searches: int,
) -> None:
    (result,) = await classifier.classify([Reference.parse(text)])
    assert result.category is category
    assert result.verified
    assert result.reference == Reference.parse(text).repo()
    assert classifier.searches == searches


async def test_search_request_shape(fake_hub: FakeHub, classifier: CatalogClassifier) -> None:  # noqa: F811
    await classifier.classify([Reference.parse("bitnami/redis")])
    # v4 first, as Docker's hub-mcp asks (dockerhub-api.md §12); it answered, so no v3
    (call,) = fake_hub.calls("GET", "/api/search/")
    assert call.path == "/api/search/v4"
    assert call.query == {"query": ["bitnami/redis"], "from": ["0"], "size": ["25"]}
    assert call.principal is None  # anonymous: no JWT sent to the search


async def test_one_search_per_namespace(fake_hub: FakeHub, classifier: CatalogClassifier) -> None:  # noqa: F811
    refs = [Reference.parse(t) for t in ("bitnami/redis", "bitnami/nginx", "bitnami/redis:7")]
    results = await classifier.classify(refs)
    assert [r.category for r in results] == [Category.VERIFIED_PUBLISHER] * 3
    assert classifier.searches == 1
    assert len(fake_hub.calls("GET", "/api/search/")) == 1


async def test_repository_missing_from_results_is_unverified(
    fake_hub: FakeHub,  # noqa: F811
    classifier: CatalogClassifier,
) -> None:
    (result,) = await classifier.classify([Reference.parse("nobody/unknown-tool")])
    assert result.category is Category.COMMUNITY
    assert not result.verified
    assert result.describe() == "Community image (unverified)"


async def test_search_error_is_unverified_never_a_guess(fake_hub: FakeHub) -> None:  # noqa: F811
    _seed_catalog(fake_hub)
    fake_hub.catalog_status = 500
    async with HubClient(fake_hub.url, retry=RetryPolicy.no_wait(attempts=2)) as client:
        classifier = CatalogClassifier(client, org="acme")
        results = await classifier.classify(
            [
                Reference.parse("bitnami/redis"),
                Reference.parse("bitnami/nginx"),
                Reference.parse("nginx"),
            ]
        )
    assert [(r.category, r.verified) for r in results] == [
        (Category.COMMUNITY, False),
        (Category.COMMUNITY, False),
        (Category.OFFICIAL, True),
    ]
    assert classifier.searches == 1  # a failed namespace is not asked again in the same run


async def test_search_timeout_is_unverified(fake_hub: FakeHub) -> None:  # noqa: F811
    _seed_catalog(fake_hub)
    fake_hub.catalog_delay = 2.0
    timeouts = TransferTimeouts.within(0.3)
    async with HubClient(fake_hub.url, timeouts=timeouts, retry=RetryPolicy.never()) as client:
        (result,) = await CatalogClassifier(client).classify([Reference.parse("bitnami/redis")])
    assert (result.category, result.verified) == (Category.COMMUNITY, False)


async def test_rate_limited_search_retries_then_answers(fake_hub: FakeHub) -> None:  # noqa: F811
    _seed_catalog(fake_hub)
    fake_hub.throttle(1, retry_after=0.05)
    async with HubClient(fake_hub.url) as client:
        (result,) = await CatalogClassifier(client).classify([Reference.parse("bitnami/redis")])
    assert (result.category, result.verified) == (Category.VERIFIED_PUBLISHER, True)


async def test_namespace_with_mixed_badges_is_not_inferred(fake_hub: FakeHub) -> None:  # noqa: F811
    fake_hub.add_catalog_entry("mixed/a", badge="open_source")
    fake_hub.add_catalog_entry("mixed/b", badge="none")
    async with HubClient(fake_hub.url) as client:
        classifier = CatalogClassifier(client)
        results = await classifier.classify(
            [Reference.parse("mixed/a"), Reference.parse("mixed/c")]
        )
    assert [(r.category, r.verified) for r in results] == [
        (Category.SPONSORED_OSS, True),
        (Category.COMMUNITY, False),
    ]


async def test_v4_null_badge_is_a_verified_community_image(fake_hub: FakeHub) -> None:  # noqa: F811
    fake_hub.search_v3 = False  # the undocumented route may go; v4 is what Docker's own client asks
    fake_hub.add_catalog_entry("someone/tool", badge=None)
    fake_hub.add_catalog_entry("bitnami/redis", badge="verified_publisher")
    async with HubClient(fake_hub.url) as client:
        results = await CatalogClassifier(client).classify(
            [Reference.parse("someone/tool:1"), Reference.parse("bitnami/redis")]
        )
    assert [(r.category, r.verified) for r in results] == [
        (Category.COMMUNITY, True),
        (Category.VERIFIED_PUBLISHER, True),
    ]
    assert {c.path for c in fake_hub.calls("GET", "/api/search/")} == {"/api/search/v4"}


async def test_v3_is_the_fallback_when_v4_fails(fake_hub: FakeHub) -> None:  # noqa: F811
    _seed_catalog(fake_hub)
    fake_hub.search_v4 = False
    async with HubClient(fake_hub.url) as client:
        classifier = CatalogClassifier(client)
        results = await classifier.classify([Reference.parse("bitnami/redis")])
        results += await classifier.classify([Reference.parse("jaegertracing/all-in-one")])
    assert [(r.category, r.verified) for r in results] == [
        (Category.VERIFIED_PUBLISHER, True),
        (Category.SPONSORED_OSS, True),
    ]
    paths = [c.path for c in fake_hub.calls("GET", "/api/search/")]
    # v4 asked once; after its 404 the run asks v3 only
    assert paths.count("/api/search/v4") == 1
    assert paths.count("/api/search/v3/catalog/search") == 2
