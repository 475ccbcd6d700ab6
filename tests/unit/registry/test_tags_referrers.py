"""Tag pagination through Link headers; referrers API with the tag-schema fallback and its cache."""

from __future__ import annotations

import json

import pytest

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import LimitExceededError
from imagevet.reference import Reference
from imagevet.registry import RegistryHost
from imagevet.registry import tags as tags_mod
from imagevet.registry.referrers import fallback_tag
from imagevet.registry.transport import Request, Response
from tests.unit.registry.helpers import (
    REGISTRY,
    FakeRegistry,
    error,
    json_response,
    make_client,
    query_of,
    respond,
)

REF = Reference.parse(f"{REGISTRY}/team/app")
SUBJECT = Digest.of(b"subject")
SIG = {
    "mediaType": mediatype.OCI_MANIFEST,
    "digest": str(Digest.of(b"sig")),
    "size": 3,
    "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
}
SBOM = {
    "mediaType": mediatype.OCI_MANIFEST,
    "digest": str(Digest.of(b"sbom")),
    "size": 4,
    "artifactType": "application/spdx+json",
}


def index(*descs: dict[str, object]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mediatype.OCI_INDEX, "manifests": list(descs)}
    ).encode()


async def test_list_tags_follows_links() -> None:
    reg = FakeRegistry()
    pages = {
        "": (["a", "b"], '</v2/team/app/tags/list?n=2&last=b>; rel="next"'),
        "b": (["c", "d"], f'<https://{REGISTRY}/v2/team/app/tags/list?n=2&last=d>; rel="next"'),
        "d": (["e"], None),
    }

    def tags(req: Request) -> Response:
        last = dict(query_of(req)).get("last", "")
        names, link = pages[last]
        return json_response(
            {"name": "team/app", "tags": names}, headers={"Link": link} if link else {}
        )

    reg.route("GET", "/v2/team/app/tags/list")(tags)
    client, transport = make_client(reg)
    assert await client.list_tags(REF, page_size=2) == ["a", "b", "c", "d", "e"]
    assert [dict(query_of(r)) for r in transport.requests] == [
        {"n": "2"},
        {"n": "2", "last": "b"},
        {"n": "2", "last": "d"},
    ]
    assert client.stats.count("GET", "tags") == 3


async def test_list_tags_null_is_empty() -> None:
    reg = FakeRegistry()
    reg.route("GET", "/v2/team/app/tags/list")(
        lambda r: json_response({"name": "team/app", "tags": None})
    )
    client, transport = make_client(reg)
    assert await client.list_tags(REF) == []


async def test_list_tags_link_to_itself_is_an_error_not_a_short_list() -> None:
    reg = FakeRegistry()
    reg.route("GET", "/v2/team/app/tags/list")(
        lambda r: json_response(
            {"name": "team/app", "tags": ["v1"]},
            headers={"Link": '</v2/team/app/tags/list>; rel="next"'},
        )
    )
    client, transport = make_client(reg)
    with pytest.raises(LimitExceededError, match="team/app: page 1 links back"):
        await client.list_tags(REF)
    assert len(transport.requests) == 1  # the next link points at the page just read


def endless_pages(reg: FakeRegistry, per_page: int = 1) -> None:
    """Every page links to a new one: ``?last=<n>``, for ever."""

    def page(req: Request) -> Response:
        last = dict(query_of(req)).get("last", "0")
        n = int(last) + 1
        return json_response(
            {"name": "team/app", "tags": [f"t{n}-{i}" for i in range(per_page)]},
            headers={"Link": f'</v2/team/app/tags/list?last={n}>; rel="next"'},
        )

    reg.route("GET", "/v2/team/app/tags/list")(page)


async def test_list_tags_page_cap_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tags_mod, "MAX_PAGES", 25)
    reg = FakeRegistry()
    endless_pages(reg)
    client, transport = make_client(reg)
    with pytest.raises(LimitExceededError, match="team/app: more than 25 pages"):
        await client.list_tags(REF)
    assert len(transport.requests) == 25


async def test_list_tags_total_tag_cap_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tags_mod, "MAX_TAGS", 1000)
    reg = FakeRegistry()
    endless_pages(reg, per_page=300)
    client, transport = make_client(reg)
    with pytest.raises(LimitExceededError, match="team/app: more than 1000 tags"):
        await client.list_tags(REF)
    assert len(transport.requests) == 4


def test_documented_caps() -> None:
    assert (tags_mod.MAX_PAGES, tags_mod.MAX_TAGS) == (10_000, 1_000_000)


async def test_referrers_native_api() -> None:
    reg = FakeRegistry()
    reg.route("GET", f"/v2/team/app/referrers/{SUBJECT}")(
        lambda r: respond(200, index(SIG, SBOM), {"Content-Type": mediatype.OCI_INDEX})
    )
    client, transport = make_client(reg)
    got = await client.referrers(REF, SUBJECT)
    assert [str(d.digest) for d in got] == [SIG["digest"], SBOM["digest"]]
    assert got[1].artifact_type == "application/spdx+json"
    assert client.stats.count(kind="referrers") == 1
    assert client.stats.count(kind="manifest") == 0


async def test_referrers_fallback_tag_schema_and_cache() -> None:
    reg = FakeRegistry()
    reg.route("GET", f"/v2/team/app/referrers/{SUBJECT}")(
        lambda r: respond(404, "404 page not found\n")
    )
    tag = f"sha256-{SUBJECT.hex}"
    reg.route("GET", f"/v2/team/app/manifests/{tag}")(
        lambda r: respond(200, index(SIG), {"Content-Type": mediatype.OCI_INDEX})
    )
    client, transport = make_client(reg)
    got = await client.referrers(REF, SUBJECT)
    assert [str(d.digest) for d in got] == [SIG["digest"]]
    assert [r.url.rsplit("/", 2)[-2] for r in transport.requests] == ["referrers", "manifests"]
    # the registry is now known not to have the API: straight to the tag
    other = Digest.of(b"other")
    assert await client.referrers(REF, other) == []
    assert client.stats.count(kind="referrers") == 1
    assert client.stats.count(kind="manifest") == 2


async def test_referrers_unsupported_statuses() -> None:
    for status in (400, 405, 501):
        reg = FakeRegistry()

        def unsupported(req: Request, status: int = status) -> Response:
            return error(status, "UNSUPPORTED")

        reg.route("GET", f"/v2/team/app/referrers/{SUBJECT}")(unsupported)
        client, _ = make_client(reg)
        assert await client.referrers(REF, SUBJECT) == []


async def test_missing_repository_does_not_mark_api_unsupported() -> None:
    reg = FakeRegistry()  # unknown routes answer 404 NAME_UNKNOWN
    client, _ = make_client(reg)
    assert await client.referrers(REF, SUBJECT) == []
    assert await client.referrers(REF, SUBJECT) == []
    assert client.stats.count(kind="referrers") == 2


async def test_host_configured_without_api() -> None:
    reg = FakeRegistry()
    client, _ = make_client(reg, hosts={REGISTRY: RegistryHost(referrers_api=False)})
    assert await client.referrers(REF, SUBJECT) == []
    assert client.stats.count(kind="referrers") == 0


def test_fallback_tag() -> None:
    assert fallback_tag(SUBJECT) == f"sha256-{SUBJECT.hex}"
    long = Digest.of(b"x", "sha512")
    assert len(fallback_tag(long)) == 128 and fallback_tag(long).startswith("sha512-")
