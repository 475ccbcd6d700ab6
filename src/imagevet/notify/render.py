"""The request bodies: imagevet's JSON webhook body and a Slack incoming-webhook message.

The JSON body (``schema: imagevet.notification/v1``, docs/notifications.md)::

    {"schema", "id", "kind", "entry", "tag", "source", "target",
     "digests": {"wanted", "current", "upstream"}, "reason", "time", "imagevet_version",
     "approval": {"expires", "approved_by", "days_left"} | null,
     "deferred": {"count", "listed": ["entry:tag", ...]} | null}

The Slack body is what an incoming webhook takes: ``text`` (the notification and fallback
line) and ``blocks`` (a ``section`` with mrkdwn text and a ``context`` line), as Slack's own
``slack_sdk.webhook.WebhookClient.send(text=..., blocks=...)`` posts it.  Every value from
elsewhere (tags, reasons, registry messages) is escaped for mrkdwn (``&``, ``<``, ``>``), so no
``<!channel>`` or link can be injected, and cut to Slack's 3000 characters per text.
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any

from imagevet import __version__
from imagevet.notify.events import Event, EventKind

__all__ = ["SCHEMA", "SIGNATURE_HEADER", "sign", "slack_body", "webhook_body"]

SCHEMA = "imagevet.notification/v1"
SIGNATURE_HEADER = "X-Imagevet-Signature"
_SLACK_TEXT_MAX = 3000
_REASON_MAX = 2000


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def webhook_body(event: Event, *, now: datetime) -> dict[str, Any]:
    """The JSON document POSTed to a ``webhook`` target (see the module docstring)."""
    approval = None
    if event.expires is not None:
        approval = {"expires": event.expires, "approved_by": event.approved_by, "days_left": event.days_left}
    deferred = None
    if event.kind is EventKind.BUDGET_EXHAUSTED:
        deferred = {"count": event.deferred_count, "listed": list(event.deferred)}
    return {
        "schema": SCHEMA,
        "id": event.id,
        "kind": str(event.kind),
        "entry": event.entry,
        "tag": event.tag,
        "source": event.source,
        "target": event.target,
        "digests": {"wanted": event.wanted, "current": event.current, "upstream": event.upstream},
        "reason": event.reason[:_REASON_MAX],
        "time": _stamp(now),
        "imagevet_version": __version__,
        "approval": approval,
        "deferred": deferred,
    }


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret, body, "sha256").hexdigest()


def _esc(text: str) -> str:
    """Text safe in Slack mrkdwn: the three characters Slack asks to escape."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _title(event: Event) -> str:
    what = event.entry + (f":{event.tag}" if event.tag else "")
    match event.kind:
        case EventKind.HELD_UPDATE:
            return f"Update held: {what}"
        case EventKind.SYNC_FAILURE:
            return f"Sync failing: {what}"
        case EventKind.APPROVAL_EXPIRING:
            return f"Approval expiring: {what} on {event.expires}"
        case EventKind.APPROVAL_EXPIRED:
            return f"Approval expired: {what} on {event.expires}"
        case EventKind.BUDGET_EXHAUSTED:
            return f"Pull budget exhausted: {event.deferred_count} copies deferred"
    return str(event.kind)  # pragma: no cover


def slack_body(event: Event, *, now: datetime) -> dict[str, Any]:
    """A Slack incoming-webhook message for ``event``: ``text`` plus ``blocks``."""
    title = _esc(_title(event))
    lines = [f"*{title}*", _esc(event.reason[:_REASON_MAX])]
    if event.upstream is not None:
        lines.append(f"upstream `{_esc(event.upstream)}`, mirrored `{_esc(event.current or '-')}`")
    if event.deferred:
        more = event.deferred_count - len(event.deferred)
        lines.append(_esc(", ".join(event.deferred)) + (f" and {more} more" if more > 0 else ""))
    context = [f"imagevet {__version__}", _stamp(now)]
    if event.target:
        context.insert(0, f"`{_esc(event.target)}`")
    return {
        "text": f"imagevet: {title}"[:_SLACK_TEXT_MAX],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:_SLACK_TEXT_MAX]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)[:_SLACK_TEXT_MAX]}]},
        ],
    }


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
