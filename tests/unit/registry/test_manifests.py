"""Manifests: exact bytes, digest checks, media types, size limit, rate-limit headers, PUT targets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, NotFoundError, RegistryError
from imagevet.manifest import ManifestFormatError, RawManifest
from imagevet.ratelimit import RateLimit
from imagevet.reference import Reference
from imagevet.registry.transport import Request, Response
from tests.unit.registry.helpers import REGISTRY, FakeRegistry, header, make_client, respond

# odd spacing and key order on purpose: re-serialising would change the digest
DATA = b'{"schemaVersion":2,  "mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}, "layers":[]}\n'
DIGEST = Digest.of(DATA)
REF = Reference.parse(f"{REGISTRY}/team/app:1.0")
PATH = "/v2/team/app/manifests/1.0"
LIMITS = {
    "ratelimit-limit": "100;w=21600",
    "ratelimit-remaining": "76;w=21600",
    "docker-ratelimit-source": "192.0.2.1",
}


def serve(data: bytes = DATA, content_type: str = mediatype.OCI_MANIFEST, **extra: str) -> Response:
    headers = {"Content-Type": content_type, "Docker-Content-Digest": str(Digest.of(data))}
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return respond(200, data, headers)


async def test_head_manifest_with_rate_limit() -> None:
    reg = FakeRegistry()
    reg.route("HEAD", PATH)(
        lambda r: respond(
            200,
            b"",
            {
                "Content-Type": mediatype.OCI_INDEX,
                "Content-Length": "321",
                "Docker-Content-Digest": str(DIGEST),
                **LIMITS,
            },
        )
    )
    client, transport = make_client(reg)
    head = await client.head_manifest(REF)
    assert head is not None
    assert (head.digest, head.media_type, head.size) == (DIGEST, mediatype.OCI_INDEX, 321)
    assert head.ratelimit == RateLimit(100, 76, 21600, "192.0.2.1")
    assert client.ratelimits[REGISTRY] == head.ratelimit
    assert header(transport.requests[0], "Accept") == mediatype.MANIFEST_ACCEPT
    assert len(transport.requests) == 1


async def test_head_manifest_absent_and_unlimited() -> None:
    reg = FakeRegistry()
    reg.route("HEAD", PATH)(lambda r: respond(404, b"", LIMITS))
    client, _ = make_client(reg)
    assert await client.head_manifest(REF) is None
    assert client.ratelimits[REGISTRY].remaining == 76  # seen on the 404 too
    reg.route("HEAD", PATH)(
        lambda r: respond(
            200,
            b"",
            {
                "Content-Type": mediatype.OCI_MANIFEST,
                "Content-Length": "5",
                "Docker-Content-Digest": str(DIGEST),
            },
        )
    )
    head = await client.head_manifest(REF)
    assert head is not None and head.ratelimit is None


async def test_head_without_digest_header_falls_back_to_get() -> None:
    reg = FakeRegistry()
    reg.route("HEAD", PATH)(lambda r: respond(200, b"", {"Content-Type": mediatype.OCI_MANIFEST}))
    reg.route("GET", PATH)(lambda r: serve())
    client, _ = make_client(reg)
    head = await client.head_manifest(REF)
    assert head is not None and head.digest == DIGEST and head.size == len(DATA)


async def test_get_manifest_exact_bytes() -> None:
    reg = FakeRegistry()
    reg.route("GET", PATH)(lambda r: serve(DATA, mediatype.OCI_MANIFEST, **LIMITS))
    client, _ = make_client(reg)
    m = await client.get_manifest(REF)
    assert m.data == DATA and m.digest == DIGEST and m.media_type == mediatype.OCI_MANIFEST
    assert client.ratelimits[REGISTRY].limit == 100


async def test_get_manifest_by_digest_verified() -> None:
    reg = FakeRegistry()
    reg.route("GET", f"/v2/team/app/manifests/{DIGEST}")(
        lambda r: respond(200, DATA.replace(b"  ", b" "), {"Content-Type": mediatype.OCI_MANIFEST})
    )
    client, _ = make_client(reg)
    with pytest.raises(DigestMismatchError) as info:
        await client.get_manifest(REF.with_digest(DIGEST))
    assert info.value.expected == str(DIGEST)


async def test_get_manifest_checks_docker_content_digest() -> None:
    reg = FakeRegistry()
    reg.route("GET", PATH)(
        lambda r: respond(
            200,
            DATA,
            {"Content-Type": mediatype.OCI_MANIFEST, "Docker-Content-Digest": str(Digest.of(b"x"))},
        )
    )
    client, _ = make_client(reg)
    with pytest.raises(DigestMismatchError, match="Docker-Content-Digest"):
        await client.get_manifest(REF)


async def test_generic_content_type_uses_embedded_media_type() -> None:
    index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    reg = FakeRegistry()
    reg.route("GET", PATH)(lambda r: serve(DATA, "application/json; charset=utf-8"))
    reg.route("GET", "/v2/team/app/manifests/idx")(lambda r: serve(index, "text/plain"))
    client, _ = make_client(reg)
    assert (await client.get_manifest(REF)).media_type == mediatype.OCI_MANIFEST
    got = await client.get_manifest(REF.with_tag("idx"))
    assert got.media_type == mediatype.OCI_INDEX and got.data == index


async def test_manifest_over_4_mib_refused() -> None:
    huge = b'{"x":"' + b"a" * (4 << 20) + b'"}'
    reg = FakeRegistry()
    reg.route("GET", PATH)(lambda r: serve(huge))

    def no_length(req: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for i in range(0, len(huge), 1 << 20):
                yield huge[i : i + (1 << 20)]

        headers = CIMultiDictProxy(CIMultiDict({"Content-Type": mediatype.OCI_MANIFEST}))
        return Response(200, headers, req.url, body())

    reg.route("GET", "/v2/team/app/manifests/nolen")(no_length)
    client, _ = make_client(reg)
    with pytest.raises(ManifestFormatError, match="4 MiB"):
        await client.get_manifest(REF)
    with pytest.raises(ManifestFormatError, match="4 MiB"):
        await client.get_manifest(REF.with_tag("nolen"))


async def test_get_manifest_not_found() -> None:
    client, _ = make_client(FakeRegistry())
    with pytest.raises(NotFoundError):
        await client.get_manifest(REF)


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        (REF, "/v2/team/app/manifests/1.0"),
        (REF.repo().with_digest(DIGEST), f"/v2/team/app/manifests/{DIGEST}"),
        (REF.repo(), f"/v2/team/app/manifests/{DIGEST}"),
    ],
)
async def test_put_manifest_targets(ref: Reference, path: str) -> None:
    puts: list[Request] = []
    reg = FakeRegistry()

    def put(req: Request) -> Response:
        puts.append(req)
        return respond(201, b"", {"Docker-Content-Digest": str(DIGEST)})

    reg.route("PUT", path)(put)
    client, _ = make_client(reg)
    manifest = RawManifest.from_bytes(DATA, mediatype.OCI_MANIFEST)
    assert await client.put_manifest(ref, manifest) == DIGEST
    (req,) = puts
    assert req.body == DATA
    assert header(req, "Content-Type") == mediatype.OCI_MANIFEST


async def test_put_manifest_verifies_returned_digest() -> None:
    reg = FakeRegistry()
    reg.route("PUT", PATH)(
        lambda r: respond(201, b"", {"Docker-Content-Digest": str(Digest.of(b"x"))})
    )
    client, _ = make_client(reg)
    with pytest.raises(DigestMismatchError):
        await client.put_manifest(REF, RawManifest.from_bytes(DATA))
    with pytest.raises(DigestMismatchError):  # bytes that are not what the digest names
        await client.put_manifest(
            REF.repo().with_digest(Digest.of(b"y")), RawManifest.from_bytes(DATA)
        )


async def test_a_refused_manifest_put_keeps_the_registry_code_and_detail() -> None:
    """The bytes were verified before the PUT: a 400 DIGEST_INVALID / MANIFEST_BLOB_UNKNOWN is the
    registry's verdict on what the manifest refers to, reported in its words, never a "mismatch"."""
    child = "sha256:" + "c" * 64
    body = json.dumps({"errors": [
        {"code": "DIGEST_INVALID", "message": "provided digest did not match uploaded content",
         "detail": {"digest": child}},
        {"code": "MANIFEST_BLOB_UNKNOWN", "message": "blob unknown to registry", "detail": child},
    ]}).encode()
    reg = FakeRegistry()
    reg.route("PUT", PATH)(lambda r: respond(400, body, {"Content-Type": "application/json"}))
    client, _ = make_client(reg)
    with pytest.raises(RegistryError) as info:
        await client.put_manifest(REF, RawManifest.from_bytes(DATA))
    assert not isinstance(info.value, DigestMismatchError)
    assert info.value.codes == ("DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN")
    text = str(info.value)
    assert "HTTP 400" in text and "MANIFEST_BLOB_UNKNOWN: blob unknown to registry" in text
    assert child in text  # the detail names the child the registry could not find
    assert "mismatch" not in text


async def test_delete_manifest() -> None:
    reg = FakeRegistry()
    reg.route("DELETE", f"/v2/team/app/manifests/{DIGEST}")(lambda r: respond(202))
    client, _ = make_client(reg)
    await client.delete_manifest(REF.repo().with_digest(DIGEST))
    with pytest.raises(NotFoundError):
        await client.delete_manifest(REF)
