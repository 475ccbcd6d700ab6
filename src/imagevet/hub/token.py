"""The Hub session JWT and when to renew it.

``POST /v2/auth/token`` returns a JWT that lives 10 minutes (dockerhub-api.md §1).  Its ``exp``
claim is read without verifying the signature (imagevet only needs to know when to renew; the
Hub verifies it); when the payload cannot be read the token is assumed to live 10 minutes.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

__all__ = ["AccessToken", "DEFAULT_TOKEN_LIFETIME", "jwt_expiry"]

DEFAULT_TOKEN_LIFETIME = 600.0


def jwt_expiry(token: str) -> float | None:
    """Return the ``exp`` claim of ``token`` (unix seconds), or None when it cannot be read."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    return None


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A Hub JWT and the moment (unix seconds) it stops being valid; the value stays out of repr."""

    value: str = field(repr=False)
    expires_at: float

    @classmethod
    def issued(cls, value: str, now: float) -> AccessToken:
        """Wrap a token just issued at ``now``: its ``exp`` if readable, else now + 10 minutes."""
        exp = jwt_expiry(value)
        return cls(value, exp if exp is not None else now + DEFAULT_TOKEN_LIFETIME)

    def fresh(self, now: float, margin: float) -> bool:
        """Whether the token is still good for at least ``margin`` seconds."""
        return now + margin < self.expires_at
