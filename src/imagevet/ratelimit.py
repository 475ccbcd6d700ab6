"""Docker Hub pull rate-limit headers (``ratelimit-limit: 100;w=21600``) as a value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RateLimit"]

_VALUE = re.compile(r"^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?")


def _parse(value: str | None) -> tuple[int | None, int | None]:
    if not value:
        return None, None
    m = _VALUE.match(value)
    if not m:
        return None, None
    return int(m[1]), int(m[2]) if m[2] else None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Pull budget reported by a registry: ``limit`` pulls per ``window`` seconds, ``remaining`` left.

    ``None`` from :meth:`from_headers` means the registry sent no such headers: unlimited.
    """

    limit: int | None
    remaining: int | None
    window: int | None
    source: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit | None:
        """Read ``ratelimit-limit``/``ratelimit-remaining``/``docker-ratelimit-source`` (any case)."""
        lower = {k.lower(): v for k, v in headers.items()}
        limit, window = _parse(lower.get("ratelimit-limit"))
        remaining, window2 = _parse(lower.get("ratelimit-remaining"))
        if limit is None and remaining is None:
            return None
        return cls(limit, remaining, window or window2, lower.get("docker-ratelimit-source"))

    def __str__(self) -> str:
        w = f" per {self.window}s" if self.window else ""
        return f"{self.remaining}/{self.limit}{w}"
