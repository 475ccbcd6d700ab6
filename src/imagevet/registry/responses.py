"""Registry error statuses to typed errors: the distribution error envelope and ``Retry-After``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from imagevet.errors import (
    Diagnostic,
    DigestMismatchError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    UnauthorizedError,
    UnavailableError,
)
from imagevet.ratelimit import RateLimit
from imagevet.registry.transport import Response

__all__ = [
    "ERROR_BODY_LIMIT",
    "UnavailableError",
    "error_for",
    "parse_diagnostics",
    "parse_retry_after",
    "raise_for_status",
]

#: At most this much of an error body is read (ggcr reads 64 KiB too).
ERROR_BODY_LIMIT = 64 << 10


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_diagnostics(body: bytes) -> tuple[Diagnostic, ...]:
    """The ``errors`` of a distribution error envelope; empty when the body is something else."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ()
    errors = obj.get("errors") if isinstance(obj, dict) else None
    if not isinstance(errors, list):
        return ()
    out: list[Diagnostic] = []
    for e in errors:
        if isinstance(e, dict):
            out.append(
                Diagnostic(str(e.get("code") or ""), str(e.get("message") or ""), e.get("detail"))
            )
    return tuple(out)


def error_for(
    status: int, method: str, url: str, body: bytes, headers: Mapping[str, str]
) -> RegistryError:
    """The typed error for an error status (``url`` is redacted by the error itself)."""
    diagnostics = parse_diagnostics(body)
    text = body.decode("utf-8", errors="replace") if not diagnostics else ""
    if status in (401, 403):
        return UnauthorizedError(status, method, url, diagnostics, text)
    if status == 404:
        return NotFoundError(status, method, url, diagnostics, text)
    if status == 429:
        limit = RateLimit.from_headers(headers) if headers else None
        return RateLimitedError(
            status,
            method,
            url,
            diagnostics,
            text,
            retry_after=parse_retry_after(headers.get("Retry-After")),
            remaining=limit.remaining if limit else None,
        )
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status >= 500 and retry_after is not None:
        return UnavailableError(status, method, url, diagnostics, text, retry_after=retry_after)
    return RegistryError(status, method, url, diagnostics, text)


async def raise_for_status(resp: Response, method: str, what: str | None = None) -> None:
    """Raise the typed error for ``resp`` unless it is 2xx (reads at most 64 KiB of the body).

    A 400 whose envelope says ``DIGEST_INVALID`` or ``SIZE_INVALID`` becomes
    :class:`~imagevet.errors.DigestMismatchError` naming ``what``.
    """
    if 200 <= resp.status < 300:
        return
    body = await resp.read(ERROR_BODY_LIMIT)
    err = error_for(resp.status, method, resp.url, body[:ERROR_BODY_LIMIT], resp.headers)
    if resp.status == 400 and {"DIGEST_INVALID", "SIZE_INVALID"} & set(err.codes):
        raise DigestMismatchError(
            what or "upload",
            "the announced digest and size",
            "; ".join(d.message or d.code for d in err.diagnostics),
        ) from err
    raise err
