"""Docker Hub error bodies -> messages and typed errors."""

from __future__ import annotations

import json

import pytest

from imagevet.errors import HubError, HubRateLimitedError
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
