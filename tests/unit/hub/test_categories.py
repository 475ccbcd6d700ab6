"""CatalogClassifier over the in-memory transport: v4 shapes, null badges, hostile answers."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

from imagevet.category import Category
from imagevet.hub import CatalogClassifier, HubClient
from imagevet.reference import Reference
from imagevet.registry import RetryPolicy
from imagevet.registry.mock import MockTransport
from imagevet.registry.transport import Request, Response


def _transport(body: bytes, status: int = 200) -> MockTransport:
    def handle(request: Request) -> Response:
        return Response.from_bytes(status, {"Content-Type": "application/json"}, body)

    return MockTransport(handle)


async def _classify(transport: MockTransport, *refs: str) -> list[tuple[Category, bool]]:
    async with HubClient(
        "https://hub.example", transport=transport, retry=RetryPolicy.never()
    ) as c:
        results = await CatalogClassifier(c).classify([Reference.parse(r) for r in refs])
    return [(r.category, r.verified) for r in results]


async def test_v4_request_and_null_or_missing_badges() -> None:
    results = [
        {"id": "a/one", "name": "a/one", "slug": "a/one", "badge": None},
        {"id": "b/two", "name": "b/two", "slug": "b/two"},  # no badge key: says nothing
        {"id": "c/three", "badge": ["not", "a", "string"]},
    ]
    transport = _transport(json.dumps({"total": 3, "results": results}).encode())
    found = await _classify(transport, "a/one", "b/two", "c/three")
    assert found == [
        (Category.COMMUNITY, True),
        (Category.COMMUNITY, False),
        (Category.COMMUNITY, False),
    ]
    first = transport.requests[0]
    assert (first.method, urlsplit(first.url).path) == ("GET", "/api/search/v4")
    assert dict(parse_qsl(urlsplit(first.url).query)) == {
        "query": "a/one",
        "from": "0",
        "size": "25",
    }
    assert "Authorization" not in first.headers


async def test_an_answer_too_large_is_unverified_not_a_crash() -> None:
    huge = b'{"results": [' + b'{"id": "x/y", "badge": "none"},' * 600_000 + b"{}]}"
    assert len(huge) > 16 << 20
    assert await _classify(_transport(huge), "x/y") == [(Category.COMMUNITY, False)]
