"""Docker Hub error bodies turned into :class:`~imagevet.errors.HubError` with Docker's own message.

The shapes (dockerhub-api.md §2): ``{"errinfo": {...}|null, "detail": "...", "message": "..."}``,
validation errors ``{"fields": {"name": ["..."]}, "text": "..."}``, login errors
``{"detail": "..."}`` and the rate-limit body ``{"detail": "Rate limit exceeded", "error": false}``.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from imagevet.errors import HubError, HubRateLimitedError

__all__ = ["MAX_MESSAGE", "error_message", "hub_error"]

MAX_MESSAGE = 300


def _fields(fields: Any) -> str:
    if not isinstance(fields, dict):
        return ""
    parts = []
    for name, problems in fields.items():
        text = "; ".join(str(p) for p in problems) if isinstance(problems, list) else str(problems)
        parts.append(f"{name}: {text}")
    return ", ".join(parts)


def error_message(status: int, body: bytes) -> str:
    """Docker's message from an error ``body``, or the status phrase when it has none."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
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
    return message[:MAX_MESSAGE]


def hub_error(
    status: int, method: str, url: str, body: bytes, *, retry_after: float | None = None
) -> HubError:
    """The typed error for an error response (429 gives :class:`HubRateLimitedError`)."""
    message = error_message(status, body)
    if status == 429:
        return HubRateLimitedError(status, method, url, message, retry_after=retry_after)
    return HubError(status, method, url, message)
