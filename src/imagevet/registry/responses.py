"""Registry error statuses to typed errors: the distribution error envelope and ``Retry-After``.

An error body is hostile input: at most 64 KiB of it is read, and what is kept of it (the text,
each diagnostic's code, message and detail) is passed through :func:`~imagevet.errors.scrub`
here, where it becomes an error, before anything can print or store it: every credential value
the client knows for the request and generic ``Authorization``/``Bearer``/``Basic`` forms become
``***``, control characters become visible escapes, and lengths and counts are capped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping
from email.utils import parsedate_to_datetime

from imagevet.errors import (
    Diagnostic,
    DigestMismatchError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    UnauthorizedError,
    UnavailableError,
    scrub,
)
from imagevet.ratelimit import RateLimit
from imagevet.registry.transport import Response

__all__ = [
    "ERROR_BODY_LIMIT",
    "UNIX_TIME_SLACK",
    "UnavailableError",
    "error_for",
    "parse_diagnostics",
    "parse_retry_after",
    "raise_for_status",
]

#: At most this much of an error body is read (ggcr reads 64 KiB too).
ERROR_BODY_LIMIT = 64 << 10
#: What is kept of an error envelope: entries, and characters of a code, message and detail.
MAX_DIAGNOSTICS = 16
_CODE_LIMIT, _MESSAGE_LIMIT, _DETAIL_LIMIT = 64, 512, 1024


#: A ``Retry-After`` number above ``now - UNIX_TIME_SLACK`` is a unix time, not a delay.
UNIX_TIME_SLACK = 86400.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date (RFC 9110
    10.2.3), or a unix time as Docker Hub sends it (a 429 captured in docker/hub-feedback#2459
    carried ``retry-after: 1746136938``): a number larger than ``now`` minus a day is read as
    the moment to retry at.  None when the value is none of these."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    current = time.time() if now is None else now
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds > current - UNIX_TIME_SLACK:
            seconds -= current  # a unix time
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - current)


def parse_diagnostics(body: bytes, secrets: Iterable[str] = ()) -> tuple[Diagnostic, ...]:
    """The ``errors`` of a distribution error envelope, scrubbed (see the module docstring);
    empty when the body is something else."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ()
    errors = obj.get("errors") if isinstance(obj, dict) else None
    if not isinstance(errors, list):
        return ()
    known = list(secrets)
    out: list[Diagnostic] = []
    for e in errors[:MAX_DIAGNOSTICS]:
        if isinstance(e, dict):
            out.append(
                Diagnostic(
                    scrub(str(e.get("code") or ""), known, limit=_CODE_LIMIT),
                    scrub(str(e.get("message") or ""), known, limit=_MESSAGE_LIMIT),
                    _scrub_detail(e.get("detail"), known),
                )
            )
    return tuple(out)


def _scrub_detail(detail: object, secrets: list[str]) -> object:
    """A diagnostic's ``detail`` with every string (keys too) scrubbed, its shape kept when it
    is small; otherwise its JSON text, scrubbed and cut."""
    kept = _scrub_value(detail, secrets, 0)
    text = json.dumps(kept, separators=(",", ":"), default=str)
    return kept if len(text) <= _DETAIL_LIMIT else scrub(text, secrets, limit=_DETAIL_LIMIT)


def _scrub_value(value: object, secrets: list[str], depth: int) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub(value, secrets, limit=_DETAIL_LIMIT)
    if depth < 8 and isinstance(value, list):
        return [_scrub_value(v, secrets, depth + 1) for v in value[:MAX_DIAGNOSTICS]]
    if depth < 8 and isinstance(value, dict):
        return {
            scrub(str(k), secrets, limit=_CODE_LIMIT): _scrub_value(v, secrets, depth + 1)
            for k, v in list(value.items())[:MAX_DIAGNOSTICS]
        }
    try:
        text = json.dumps(value, separators=(",", ":"), default=str)
    except RecursionError:
        return "(nested too deep)"
    return scrub(text, secrets, limit=_DETAIL_LIMIT)


def error_for(
    status: int,
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    secrets: Collection[str] = (),
) -> RegistryError:
    """The typed error for an error status (``url`` is redacted by the error itself); text from
    ``body`` is scrubbed of ``secrets`` and credential forms (see the module docstring)."""
    diagnostics = parse_diagnostics(body, secrets)
    text = scrub(body.decode("utf-8", errors="replace"), secrets) if not diagnostics else ""
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

    For an upload (``what`` names it), a 400 whose envelope says ``DIGEST_INVALID`` or
    ``SIZE_INVALID`` is the registry's check of the bytes we sent, and becomes
    :class:`~imagevet.errors.DigestMismatchError` naming ``what``.
    """
    if 200 <= resp.status < 300:
        return
    body = await resp.read(ERROR_BODY_LIMIT)
    err = error_for(
        resp.status,
        method,
        resp.url,
        body[:ERROR_BODY_LIMIT],
        resp.headers,
        secrets=resp.secrets,
    )
    if what is not None and resp.status == 400 and {"DIGEST_INVALID", "SIZE_INVALID"} & set(err.codes):
        raise DigestMismatchError(
            what or "upload",
            "the announced digest and size",
            "; ".join(d.message or d.code for d in err.diagnostics),
        ) from err
    raise err
