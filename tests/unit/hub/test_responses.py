"""Docker Hub error bodies -> messages and typed errors."""

from __future__ import annotations

import json

import pytest

from imagevet.errors import HubError, HubRateLimitedError, HubTokenError
from imagevet.hub.responses import MAX_MESSAGE, error_message, hub_error


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"errinfo": None, "message": "bad request"}, "bad request"),
        (
            404,
            {"errinfo": None, "detail": "object not found", "message": "not found"},
            "not found: object not found",
        ),
        (
            403,
            {"errinfo": {}, "detail": "permission denied", "message": "permission denied"},
            "permission denied",
        ),
        (
            401,
            {"detail": "Incorrect authentication credentials"},
            "Incorrect authentication credentials",
        ),
        (
            400,
            {
                "fields": {"ordering": ["Invalid ordering value. Must be one of: name"]},
                "text": "Invalid ordering value",
            },
            "Invalid ordering value (ordering: Invalid ordering value. Must be one of: name)",
        ),
        (400, {"fields": {"name": "required"}}, "name: required"),
        (429, {"detail": "Rate limit exceeded", "error": False}, "Rate limit exceeded"),
        (502, "<html>Bad gateway</html>", "Bad Gateway"),
        (429, None, "Too Many Requests"),
        (599, None, "error"),
    ],
)
def test_error_message(status: int, body: object, expected: str) -> None:
    raw = (
        b""
        if body is None
        else body.encode()
        if isinstance(body, str)
        else json.dumps(body).encode()
    )
    assert error_message(status, raw) == expected


def test_message_is_bounded() -> None:
    assert len(error_message(400, json.dumps({"message": "x" * 5000}).encode())) == MAX_MESSAGE


def test_hub_error_types_and_redaction() -> None:
    error = hub_error(
        404, "GET", "https://user:pw@hub.example/v2/x?sig=abc", b'{"message": "not found"}'
    )
    assert type(error) is HubError
    assert error.url == "https://hub.example/v2/x?<redacted>"
    assert "pw" not in str(error) and "sig=abc" not in str(error)
    limited = hub_error(429, "GET", "https://hub.example/v2/x", b"", retry_after=3.0)
    assert isinstance(limited, HubRateLimitedError) and limited.retry_after == 3.0


def test_secrets_and_control_characters_are_scrubbed() -> None:
    body = json.dumps(
        {"message": "token dckr_pat_abcdef123 refused\x1b[2J", "detail": "Bearer eyJhb.c-d"}
    )
    message = error_message(401, body.encode(), ["dckr_pat_abcdef123"])
    assert "dckr_pat_abcdef123" not in message and "eyJhb" not in message
    assert "\x1b" not in message and "***" in message


def test_oat_refusal_and_server_errors_are_typed() -> None:
    refusal = b'{"message": "token issued from organization access token is not allowed"}'
    assert isinstance(hub_error(403, "POST", "https://h/x/", refusal), HubTokenError)
    busy = hub_error(503, "GET", "https://h/x", b"", headers={"Retry-After": "2"}, now=0.0)
    assert busy.temporary and busy.retry_after == 2.0
    assert not hub_error(501, "GET", "https://h/x", b"").temporary
    limited = hub_error(429, "GET", "https://h/x", b"", headers={"X-Retry-After": "130"}, now=100.0)
    assert isinstance(limited, HubRateLimitedError) and limited.retry_after == 30.0
