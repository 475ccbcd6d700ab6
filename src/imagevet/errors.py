"""The one exception tree of imagevet.

Every error imagevet raises on purpose derives from ``ImagevetError``::

    ImagevetError
    ├── InvalidReferenceError (also ValueError)   a reference that does not parse
    ├── InvalidDigestError (also ValueError)      a digest that does not parse
    ├── PolicyError                               policy or lock file: path, line, column, field
    ├── CredentialsError                          a credential store or helper failed
    ├── TransportError                            connection refused/reset, timeout, TLS
    ├── RegistryError                             the registry answered with an error status
    │   ├── UnauthorizedError                     401 / 403 (also auth-flow failures)
    │   ├── NotFoundError                         404 (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN)
    │   ├── RateLimitedError                      429 (carries retry_after and remaining)
    │   └── UnavailableError                      5xx with Retry-After
    ├── DigestMismatchError                       content did not hash to what it claimed
    ├── SecurityError                             refused for safety (http realm, foreign redirect)
    ├── CopyError                                 one image could not be copied (wraps the cause)
    └── HubError                                  Docker Hub management API error
        └── HubRateLimitedError

Messages never contain secrets: URLs are passed through :func:`redact_url` before
they are stored in an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "CopyError",
    "CredentialsError",
    "Diagnostic",
    "DigestMismatchError",
    "HubError",
    "HubRateLimitedError",
    "ImagevetError",
    "InvalidDigestError",
    "InvalidReferenceError",
    "NotFoundError",
    "PolicyError",
    "RateLimitedError",
    "RegistryError",
    "SecurityError",
    "TransportError",
    "UnauthorizedError",
    "UnavailableError",
    "redact_url",
]


def redact_url(url: str) -> str:
    """Return ``url`` without user info and without its query string (which may hold signatures)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class ImagevetError(Exception):
    """Root of every error imagevet raises on purpose."""


class InvalidReferenceError(ImagevetError, ValueError):
    """An image reference does not follow the distribution reference grammar."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"invalid reference {text!r}: {reason}")


class InvalidDigestError(ImagevetError, ValueError):
    """A digest string is malformed or uses an unsupported algorithm."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"invalid digest {text!r}: {reason}")


class PolicyError(ImagevetError):
    """A policy or lock file is invalid; names the file, line, column and field."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.field = field
        self.message = message
        where = path
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        what = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {what}")


class CredentialsError(ImagevetError):
    """A credential store, helper or file could not be read (the secret is never included)."""


class TransportError(ImagevetError):
    """The request never got an HTTP answer: connection refused or reset, timeout, TLS failure."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        self.method = method
        self.url = redact_url(url)
        self.reason = reason
        super().__init__(f"{method} {self.url}: {reason}")

    @property
    def temporary(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One entry of the distribution error envelope ``{"errors": [{code, message, detail}]}``."""

    code: str
    message: str
    detail: object = None


class RegistryError(ImagevetError):
    """A registry answered with an error status; ``diagnostics`` come from its error envelope."""

    def __init__(
        self,
        status: int,
        method: str,
        url: str,
        diagnostics: tuple[Diagnostic, ...] = (),
        body: str = "",
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.url = redact_url(url)
        self.diagnostics = diagnostics
        self.body = body[:2048]
        self.retry_after = retry_after
        """Seconds the registry asked to wait (``Retry-After``), when it said so."""
        if diagnostics:
            why = "; ".join(f"{d.code}: {d.message}" if d.message else d.code for d in diagnostics)
        else:
            why = self.body.strip()[:200] or "no details"
        super().__init__(f"{method} {self.url}: HTTP {status}: {why}")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(d.code for d in self.diagnostics)

    @property
    def temporary(self) -> bool:
        """Whether retrying the same request may succeed (429, 5xx but 501)."""
        return self.status == 429 or (self.status >= 500 and self.status != 501)


class UnauthorizedError(RegistryError):
    """401 or 403: missing, wrong or insufficient credentials."""


class NotFoundError(RegistryError):
    """404: the repository, manifest or blob does not exist."""


class RateLimitedError(RegistryError):
    """429: too many requests; ``retry_after`` in seconds when the server said so."""

    def __init__(
        self,
        status: int,
        method: str,
        url: str,
        diagnostics: tuple[Diagnostic, ...] = (),
        body: str = "",
        *,
        retry_after: float | None = None,
        remaining: int | None = None,
    ) -> None:
        super().__init__(status, method, url, diagnostics, body, retry_after=retry_after)
        self.remaining = remaining


class UnavailableError(RegistryError):
    """5xx with a ``Retry-After``: the registry asked to be retried later."""


class DigestMismatchError(ImagevetError):
    """Content did not hash to the digest (or size) it was announced with; it is refused."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.what = what
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}")


class SecurityError(ImagevetError):
    """A request was refused for safety: an http token realm for an https registry, and the like."""


class CopyError(ImagevetError):
    """One image could not be copied; ``__cause__`` holds the underlying error."""

    def __init__(self, source: str, target: str, reason: str) -> None:
        self.source = source
        self.target = target
        self.reason = reason
        super().__init__(f"copy {source} -> {target}: {reason}")


class HubError(ImagevetError):
    """The Docker Hub management API answered with an error."""

    def __init__(self, status: int, method: str, url: str, message: str) -> None:
        self.status = status
        self.method = method
        self.url = redact_url(url)
        self.message = message
        super().__init__(f"Docker Hub: {method} {self.url}: HTTP {status}: {message}")


class HubRateLimitedError(HubError):
    """The Docker Hub API answered 429; ``retry_after`` in seconds."""

    def __init__(
        self, status: int, method: str, url: str, message: str, *, retry_after: float | None
    ) -> None:
        super().__init__(status, method, url, message)
        self.retry_after = retry_after
