"""Docker Hub error answers turned into the typed errors of :mod:`imagevet.errors`.

The shapes (dockerhub-api.md §2): ``{"errinfo": {...}|null, "detail": "...", "message": "..."}``,
validation errors ``{"fields": {"name": ["..."]}, "text": "..."}``, login errors
``{"detail": "..."}`` and the rate-limit body ``{"detail": "Rate limit exceeded", "error": false}``.

An error body is hostile input, handled as the registry's are (:mod:`imagevet.registry.responses`):
at most 64 KiB of it is read, and the message kept is passed through
:func:`~imagevet.errors.scrub`: every secret the client knows (the password or token, the JWT)
and any ``Authorization``/``Bearer``/``Basic`` form become ``***``, control characters become
visible escapes, and it is cut to :data:`MAX_MESSAGE` characters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from imagevet.errors import HubError, HubRateLimitedError, HubTokenError, scrub
from imagevet.hub.throttle import retry_after as wait_asked

__all__ = ["MAX_MESSAGE", "OAT_REFUSED", "error_message", "hub_error"]

MAX_MESSAGE = 300
OAT_REFUSED = "token issued from organization access token is not allowed"
"""What the Hub answers (403) to an organization access token off the namespaced routes."""


def _fields(fields: Any) -> str:
    if not isinstance(fields, dict):
        return ""
    parts = []
    for name, problems in list(fields.items())[:16]:
        text = "; ".join(str(p) for p in problems) if isinstance(problems, list) else str(problems)
        parts.append(f"{name}: {text}")
    return ", ".join(parts)


def error_message(status: int, body: bytes, secrets: Iterable[str] = ()) -> str:
    """Docker's message from an error ``body`` (scrubbed), or the status phrase when it has none."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):
        data = None
    message = ""
    if isinstance(data, dict):
        main = next(
            (
                str(data[key]).strip()
                for key in ("message", "detail", "text")
                if isinstance(data.get(key), str) and data[key].strip()
            ),
            "",
        )
        detail = data.get("detail")
        if main and isinstance(detail, str) and detail.strip() and detail.strip() != main:
            main = f"{main}: {detail.strip()}"
        fields = _fields(data.get("fields"))
        message = f"{main} ({fields})" if main and fields else main or fields
    if not message:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "error"
    return scrub(message, secrets, limit=MAX_MESSAGE)


def hub_error(
    status: int,
    method: str,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    now: float | None = None,
    secrets: Iterable[str] = (),
    retry_after: float | None = None,
) -> HubError:
    """The typed error for an error answer: :class:`HubRateLimitedError` for 429,
    :class:`HubTokenError` for the Hub's refusal of an organization access token, else
    :class:`HubError`; ``retry_after`` comes from ``headers`` unless given."""
    message = error_message(status, body, secrets)
    if retry_after is None and headers is not None and (status == 429 or status >= 500):
        retry_after = wait_asked(headers, now, fallback=status == 429)
    if status == 429:
        return HubRateLimitedError(status, method, url, message, retry_after=retry_after)
    if status == 403 and OAT_REFUSED in message:
        return HubTokenError(
            status,
            method,
            url,
            f"{message}: this call needs a personal access token (Docker Hub takes "
            "organization access tokens only on the namespace-scoped routes)",
        )
    return HubError(status, method, url, message, retry_after=retry_after)
