"""The Hub API rate limit: ``X-RateLimit-*`` on every response and the wait a 429 asks for.

dockerhub-api.md §2 and §12: ``X-RateLimit-Limit`` (requests per minute),
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (unix seconds) come on every response.  A
429 carries ``Retry-After`` in seconds (docs since 2025-06-25) or, as a live 429 did, as a unix
time equal to ``X-RateLimit-Reset``; older answers carry ``X-Retry-After`` as a unix time.  All
are honoured (the one parser is :func:`imagevet.registry.responses.parse_retry_after`).  This is
the management API's limit, not the registry's pull limit (:mod:`imagevet.ratelimit`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from imagevet.registry.responses import parse_retry_after

__all__ = ["ApiRateLimit", "retry_after"]


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ApiRateLimit:
    """One response's ``X-RateLimit-*`` headers (any may be missing)."""

    limit: int | None
    remaining: int | None
    reset: float | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ApiRateLimit | None:
        """Read the headers; None when the response carried none of them."""
        limit = _number(headers.get("X-RateLimit-Limit"))
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        reset = _number(headers.get("X-RateLimit-Reset"))
        if limit is None and remaining is None and reset is None:
            return None
        try:
            return cls(
                int(limit) if limit is not None else None,
                int(remaining) if remaining is not None else None,
                reset,
            )
        except (OverflowError, ValueError):  # inf or nan from a hostile server
            return None

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


def retry_after(
    headers: Mapping[str, str], now: float | None = None, *, fallback: bool = True
) -> float | None:
    """Seconds an answer asks to wait: ``Retry-After`` (seconds, HTTP date or unix time), else
    (with ``fallback``, for a 429) ``X-Retry-After`` (unix time), else ``X-RateLimit-Reset``;
    None when none of them says."""
    current = time.time() if now is None else now
    wait = parse_retry_after(headers.get("Retry-After"), now=current)
    if wait is not None or not fallback:
        return wait
    for name in ("X-Retry-After", "X-RateLimit-Reset"):
        at = _number(headers.get(name))
        if at is not None:
            return max(0.0, at - current)
    return None
