"""JWT expiry reading and renewal timing."""

from __future__ import annotations

import base64
import json

import pytest

from imagevet.hub.token import DEFAULT_TOKEN_LIFETIME, AccessToken, jwt_expiry


def _jwt(payload: object) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return ".".join(
        [part(b'{"alg":"HS256"}'), part(json.dumps(payload).encode()), part(b"signature")]
    )


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (_jwt({"exp": 1700000000}), 1700000000.0),
        (_jwt({"exp": 1700000000.5, "sub": "alice"}), 1700000000.5),
        (_jwt({"sub": "alice"}), None),
        (_jwt({"exp": "soon"}), None),
        (_jwt({"exp": True}), None),
        (_jwt(["not", "a", "dict"]), None),
        ("not-a-jwt", None),
        ("a.%%%.c", None),
        ("a.bm90IGpzb24.c", None),
    ],
)
def test_jwt_expiry(token: str, expected: float | None) -> None:
    assert jwt_expiry(token) == expected


def test_issued_uses_exp_or_ten_minutes() -> None:
    assert AccessToken.issued(_jwt({"exp": 1000}), now=500).expires_at == 1000
    assert AccessToken.issued("opaque", now=500).expires_at == 500 + DEFAULT_TOKEN_LIFETIME


def test_fresh_with_margin() -> None:
    token = AccessToken("x", expires_at=100)
    assert token.fresh(now=60, margin=30)
    assert not token.fresh(now=70, margin=30)
    assert not token.fresh(now=101, margin=0)


def test_value_not_in_repr() -> None:
    assert "sekrit" not in repr(AccessToken("sekrit", 1.0))
