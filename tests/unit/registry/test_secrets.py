"""No password, token, Basic header or presigned query string in logs, errors or reprs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import pytest

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, RegistryError, UnauthorizedError
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.registry import Credential, RetryPolicy, StaticCredentials
from imagevet.registry.mock import MockTransport
from imagevet.registry.transport import Request, Response
from tests.unit.registry.helpers import (
    REGISTRY,
    FakeRegistry,
    header,
    json_response,
    make_client,
    respond,
    sync,
)

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


# -- a registry that echoes credentials in its error bodies (issue 8, item 10) ---------------------


def echoing(status: int, *, plain: bool) -> Callable[[Request], Response]:
    """A route answering ``status`` with a body repeating the request's Authorization header,
    the password and, in the envelope's detail, the header again."""

    def answer(req: Request) -> Response:
        sent = header(req, "Authorization") or ""
        said = f"bad request from {sent} (password was {PASSWORD}; auth {sent.split(' ')[-1]})"
        if plain:
            return respond(status, said + "\n\x1b[2J\x1b]0;pwned\x07", {"Content-Type": "text/plain"})
        body = {
            "errors": [
                {"code": "DENIED", "message": said, "detail": {"Authorization": [sent]}},
                {"code": "UNKNOWN", "message": f"Authorization: {sent}", "detail": sent},
            ]
        }
        return json_response(body, status)

    return answer


def all_text(err: RegistryError) -> str:
    return " ".join([str(err), repr(err), err.body, repr(err.diagnostics)])


@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize("plain", [False, True], ids=["envelope", "text"])
@pytest.mark.parametrize("auth", ["basic", "bearer"])
async def test_error_text_never_holds_the_credentials_the_registry_echoes(
    status: int, plain: bool, auth: str
) -> None:
    reg = FakeRegistry(auth=auth)
    reg.route("GET", "/v2/team/app/manifests/v1")(echoing(status, plain=plain))
    creds = StaticCredentials({REGISTRY: Credential("alice", PASSWORD)})
    client, transport = make_client(reg, credentials=creds, retry=RetryPolicy.never())
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(REF.with_tag("v1"))
    text = all_text(info.value)
    assert_clean(text)
    assert "***" in text
    sent = header(transport.requests[-1], "Authorization") or ""
    assert sent and sent.split(" ")[-1] not in text
    assert "\x1b" not in text and "\x07" not in text and "\n" not in str(info.value)


async def test_token_service_echoing_the_identity_token_is_masked() -> None:
    reg = FakeRegistry(auth="bearer")

    def issue(req: Request) -> Response:
        return respond(400, f"invalid refresh_token idt-s3cret in {req.body!r}")

    reg.issue = issue  # type: ignore[method-assign]
    creds = StaticCredentials({REGISTRY: Credential(identity_token="idt-s3cret")})
    client, _ = make_client(reg, credentials=creds, retry=RetryPolicy.never())
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(REF.with_tag("v1"))
    assert_clean(all_text(info.value))


async def test_error_envelope_is_bounded() -> None:
    reg = FakeRegistry()
    # within the 64 KiB read: 100 entries with long codes, messages and details
    many = [{"code": "X" * 100, "message": "m" * 300, "detail": "d" * 100}] * 100
    reg.route("GET", "/v2/team/app/manifests/v1")(lambda r: json_response({"errors": many}, 400))
    client, _ = make_client(reg)
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(REF.with_tag("v1"))
    err = info.value
    assert len(err.diagnostics) <= 16
    assert all(len(d.code) <= 64 and len(d.message) <= 512 for d in err.diagnostics)
    assert len(repr(err.diagnostics)) < 16 * (64 + 512 + 1024 + 100)


async def test_deeply_nested_detail_is_kept_bounded() -> None:
    reg = FakeRegistry()
    deep = "[" * 900 + "]" * 900
    body = f'{{"errors":[{{"code":"DENIED","message":"no","detail":{deep}}}]}}'
    reg.route("GET", "/v2/team/app/manifests/v1")(lambda r: respond(400, body))
    client, _ = make_client(reg)
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(REF.with_tag("v1"))
    (diag,) = info.value.diagnostics
    assert diag.code == "DENIED"
    assert len(repr(diag.detail)) < 2048
