"""No password, token, Basic header or presigned query string in logs, errors or reprs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, UnauthorizedError
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.registry import Credential, StaticCredentials
from imagevet.registry.mock import MockTransport
from imagevet.registry.transport import Request, Response
from tests.unit.registry.helpers import REGISTRY, FakeRegistry, make_client, respond, sync

PASSWORD = "pw-s3cret"
BASIC = "YWxpY2U6cHctczNjcmV0"  # base64 of alice:pw-s3cret
SIGNATURE = "X-Amz-Signature=ab%2Bcd%3D%27ef"
FORBIDDEN = (PASSWORD, BASIC, "tok-", SIGNATURE, "ab%2Bcd", "idt-s3cret")
REF = Reference.parse(f"{REGISTRY}/team/app")
DATA = b"layer bytes"
DESC = Descriptor(mediatype.OCI_LAYER, Digest.of(DATA), len(DATA))


def assert_clean(text: str) -> None:
    for secret in FORBIDDEN:
        assert secret not in text, f"{secret!r} leaked into: {text[:300]}"


async def test_nothing_secret_in_debug_logs_errors_or_reprs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    reg = FakeRegistry(auth="bearer")
    cdn = f"https://cdn.example/b?{SIGNATURE}"
    reg.route("GET", f"/v2/team/app/blobs/{DESC.digest}")(
        lambda r: respond(307, b"", {"Location": cdn})
    )

    def handler(req: Request) -> Response:
        if req.url.startswith("https://cdn.example/"):
            return Response.from_bytes(200, {}, b"corrupted!!")
        return sync(reg, req)

    creds = StaticCredentials({REGISTRY: Credential("alice", PASSWORD)})
    client, transport = make_client(MockTransport(handler), credentials=creds)
    errors: list[BaseException] = []
    try:
        async with client.open_blob(REF, DESC) as stream:
            async for _ in stream:
                pass
    except DigestMismatchError as e:
        errors.append(e)
    reg.token_status = 401
    reg.valid_tokens.clear()
    try:
        await client.head_manifest(REF.with_tag("x"))
    except UnauthorizedError as e:
        errors.append(e)
    assert len(errors) == 2
    assert caplog.records, "the client logs each request at DEBUG"
    assert any("cdn.example" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert_clean(record.getMessage())
    for err in errors:
        assert_clean(str(err))
        assert_clean(repr(err))
    for req in transport.requests:
        assert_clean(repr(req))
    assert_clean(repr(client))
    assert_clean(repr(creds))
    assert_clean(repr(Credential("alice", PASSWORD, identity_token="idt-s3cret")))


async def test_identity_token_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reg = FakeRegistry(auth="bearer")
    reg.route("HEAD", "/v2/team/app/manifests/latest")(lambda r: respond(404))
    creds = StaticCredentials({REGISTRY: Credential(identity_token="idt-s3cret")})
    client, _ = make_client(reg, credentials=creds)
    assert await client.head_manifest(REF) is None
    for record in caplog.records:
        assert_clean(record.getMessage())


async def _chunks() -> AsyncIterator[bytes]:
    yield DATA
