"""Notification targets with their secrets filled in from the environment the caller passes.

The policy names environment variables (``url_env``, ``secret_env``); the CLI passes
``os.environ`` and this module never reads it.  A target is named in every message by its
variable and its host only (:attr:`Receiver.label`): the path and query of an incoming-webhook
URL are its credential, and :func:`imagevet.errors.redact_url` keeps paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from imagevet.notify.events import Event, EventKind
from imagevet.policy.model import NotifyTarget
from imagevet.registry.hosts import is_loopback

__all__ = ["Receiver", "resolve_receivers"]

_MIN_SECRET_PART = 6
"""URL path segments and query values at least this long are masked wherever text is shown."""


@dataclass(frozen=True, slots=True)
class Receiver:
    """A notification target ready to send to: its policy config, URL and HMAC key."""

    config: NotifyTarget
    url: str = field(repr=False)
    secret: bytes | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """What notices are kept under: the URL's variable name."""
        return self.config.url_env

    @property
    def host(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        if ":" in host:
            host = f"[{host}]"
        try:
            port = parts.port
        except ValueError:
            port = None
        return host + (f":{port}" if port else "")

    @property
    def label(self) -> str:
        """``SLACK_WEBHOOK_URL (hooks.slack.com)``: never the path, query or user info."""
        return f"{self.name} ({self.host})"

    def secrets(self) -> list[str]:
        """Every piece of the URL and key that must never be shown (for ``scrub``)."""
        parts = urlsplit(self.url)
        out = [self.url, parts.path, parts.query, parts.password or "", parts.username or ""]
        for piece in (*parts.path.split("/"), *parts.query.replace("&", "=").split("=")):
            if len(piece) >= _MIN_SECRET_PART:
                out += [piece, unquote(piece)]
        if self.secret is not None:
            out.append(self.secret.decode("utf-8", "replace"))
        return [s for s in out if s]

    def wants(self, event: Event) -> bool:
        """Whether ``event`` goes to this target (its ``events`` and ``expiring_within``)."""
        if not self.config.wants(str(event.kind)):
            return False
        if event.kind is EventKind.APPROVAL_EXPIRING:
            return event.days_left is not None and event.days_left <= self.config.expiring_within
        return True


def resolve_receivers(
    targets: Sequence[NotifyTarget], env: Mapping[str, str]
) -> tuple[list[Receiver], list[str]]:
    """The targets whose variables are set and valid, and one message per target left out.

    A URL must be ``https://``, or ``http://`` to a loopback host (``localhost``, 127.0.0.0/8,
    ``[::1]``: a receiver on the same machine); a target whose ``secret_env`` is named but not
    set is left out rather than sent unsigned.  Messages name the variable (and the host) only.
    """
    receivers: list[Receiver] = []
    problems: list[str] = []
    for target in targets:
        url = env.get(target.url_env, "").strip()
        if not url:
            problems.append(f"{target.url_env} is not set: notifications for it are not sent")
            continue
        try:
            parts = urlsplit(url)
            host, scheme = parts.hostname, parts.scheme.lower()
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            host, scheme = None, ""
        if scheme not in ("http", "https") or not host or any(c.isspace() for c in url):
            problems.append(f"{target.url_env} does not hold an http(s) URL: notifications for it are not sent")
            continue
        secret: bytes | None = None
        if target.secret_env is not None:
            value = env.get(target.secret_env, "")
            if not value:
                problems.append(
                    f"{target.secret_env} (the HMAC key of {target.url_env}) is not set: "
                    "notifications for it are not sent unsigned"
                )
                continue
            secret = value.encode()
        receiver = Receiver(target, url, secret)
        if scheme == "http" and not is_loopback(receiver.host):
            problems.append(
                f"{receiver.label}: plain http is allowed only for a receiver on this machine "
                "(localhost, 127.0.0.0/8, [::1]); use https: notifications for it are not sent"
            )
            continue
        receivers.append(receiver)
    return receivers, problems
