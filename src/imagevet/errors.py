"""The one exception tree of imagevet.

Every error imagevet raises on purpose derives from ``ImagevetError``::

    ImagevetError
    ├── InvalidReferenceError (also ValueError)   a reference that does not parse
    ├── InvalidDigestError (also ValueError)      a digest that does not parse
    ├── PolicyError                               policy or lock file: path, line, column, field
    ├── CredentialsError                          a credential store or helper failed
    ├── TransportError                            connection refused/reset, timeout, TLS
    │   └── TransferTimeoutError                  a body stalled or crawled below the minimum rate
    ├── RegistryError                             the registry answered with an error status
    │   ├── UnauthorizedError                     401 / 403 (also auth-flow failures)
    │   ├── NotFoundError                         404 (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN)
    │   ├── RateLimitedError                      429 (carries retry_after and remaining)
    │   └── UnavailableError                      5xx with Retry-After
    ├── DigestMismatchError                       content did not hash to what it claimed
    ├── SecurityError                             refused for safety (http realm, foreign redirect)
    ├── LimitExceededError                        upstream went past a bound (redirects, tag pages)
    ├── StoreError                                an image store cannot serve a reference (no such store)
    │   └── LayoutError                           an OCI layout (directory or tar) is invalid or unsafe
    ├── CopyError                                 one image could not be copied (wraps the cause)
    └── HubError                                  Docker Hub management API error
        ├── HubRateLimitedError                   429 after the retries (carries retry_after)
        └── HubTokenError                         a call this kind of token cannot make (OAT)

Messages never contain secrets: URLs are passed through :func:`redact_url` before
they are stored in an error, and text a registry sent is passed through :func:`scrub` (known
credential values and ``Authorization``/``Bearer``/``Basic`` forms become ``***``, control
characters become visible escapes, length is capped).

Retry layering: :class:`TransportError`, :class:`RegistryError` and :class:`HubError` carry
``exhausted``; the retry policy sets it when it gives up on a request it was allowed to retry, and
no outer layer sends such a request again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

__all__ = [
    "CopyError",
    "CredentialsError",
    "Diagnostic",
    "DigestMismatchError",
    "HubError",
    "HubRateLimitedError",
    "HubTokenError",
    "ImagevetError",
    "LayoutError",
    "InvalidDigestError",
    "InvalidReferenceError",
    "LimitExceededError",
    "NotFoundError",
    "PolicyError",
    "RateLimitedError",
    "RegistryError",
    "SecurityError",
    "SignatureError",
    "StoreError",
    "TransferTimeoutError",
    "TransportError",
    "UnauthorizedError",
    "UnavailableError",
    "redact_url",
    "scrub",
]

#: Secrets shorter than this are not searched for (they would mask ordinary words).
MIN_SECRET_LENGTH = 4
_AUTH_FORMS = (
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic)\s+)?[^\s\"',;}]+"),
    # a credential-looking word (with a digit or a symbol) after Bearer/Basic
    re.compile(r"(?i)\b(bearer|basic)(\s+)(?=[\w.~+/=-]*[\d.~+/=-])[\w.~+/=-]{4,}"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NEWLINES = re.compile(r"[\t\r\n]")


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Every spelling of ``secrets`` worth searching for, longest first (URL-encoded too)."""
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) < MIN_SECRET_LENGTH:
            continue
        forms.update((secret, quote(secret, safe=""), quote_plus(secret)))
    return sorted(forms, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str] = (), *, limit: int = 2048) -> str:
    """``text`` fit to store: secrets masked, control characters escaped, at most ``limit`` chars.

    Every value of ``secrets`` (passwords, tokens, Basic header values and what they decode to,
    URL-encoded too) and every ``Authorization: ...``, ``Bearer xyz``, ``Basic xyz`` becomes
    ``***``.  Tabs and line breaks become spaces; other control characters (ESC included) become
    visible ``\\xNN`` escapes, so the stored text cannot drive a terminal.  Callers pass text of
    bounded size (an error body is read up to 64 KiB).
    """
    for secret in secret_forms(secrets):  # on the whole text: a cut could split a secret
        text = text.replace(secret, "***")
    text = _AUTH_FORMS[0].sub(lambda m: m.group(1) + "***", text)
    text = _AUTH_FORMS[1].sub(lambda m: m.group(1) + m.group(2) + "***", text)
    text = _NEWLINES.sub(" ", text)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text[:limit]



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


class StateError(ImagevetError):
    """Run state (ledger, checkpoint, run summary, held updates, ...) cannot be read or written:
    a symlinked or read-only state directory, a full disk, a store that does not answer."""


class TransportError(ImagevetError):
    """The request never got an HTTP answer: connection refused or reset, timeout, TLS failure."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        self.method = method
        self.url = redact_url(url)
        self.reason = reason
        self.exhausted = False
        """The request pipeline already retried this request as often as its policy allows."""
        super().__init__(f"{method} {self.url}: {reason}")

    @property
    def temporary(self) -> bool:
        return True


class TransferTimeoutError(TransportError):
    """A response stalled (no byte for the idle timeout) or crawled below the minimum rate."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One entry of the distribution error envelope ``{"errors": [{code, message, detail}]}``."""

    code: str
    message: str
    detail: object = None


_DETAIL_SHOWN = 300
"""Characters of a diagnostic's ``detail`` shown in an error message (the rest stays in ``detail``)."""


def _diagnostic_text(d: Diagnostic) -> str:
    """``CODE: message (detail)``: the registry's own words, its detail compact and cut."""
    text = f"{d.code}: {d.message}" if d.message else d.code
    if d.detail:
        detail = d.detail if isinstance(d.detail, str) else json.dumps(
            d.detail, separators=(",", ":"), default=str
        )
        text += f" ({detail[:_DETAIL_SHOWN]}{'...' if len(detail) > _DETAIL_SHOWN else ''})"
    return text


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
        self.exhausted = False
        """The request pipeline already retried this request as often as its policy allows."""
        if diagnostics:
            why = "; ".join(_diagnostic_text(d) for d in diagnostics)
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


class LimitExceededError(ImagevetError):
    """Upstream went past a documented bound: a redirect loop or too long a chain, a tag listing
    linking back to a page already read or longer than the page or tag cap.  Not retried."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class StoreError(ImagevetError):
    """An image store cannot serve a reference: no store for its scheme, or the store is closed."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class LayoutError(StoreError):
    """An OCI image layout (a directory or a tar file) is invalid, unsafe or cannot be written:
    ``what`` names the layout (and the file inside it), ``reason`` says what is wrong."""


class CopyError(ImagevetError):
    """One image could not be copied; ``__cause__`` holds the underlying error."""

    def __init__(
        self, source: str, target: str, reason: str, *, cause: ImagevetError | None = None
    ) -> None:
        self.source = source
        self.target = target
        self.reason = reason
        self.cause = cause
        """The typed error the copy failed with (:class:`DigestMismatchError`,
        :class:`UnauthorizedError`, :class:`NotFoundError`, :class:`RateLimitedError`, ...);
        None for an unexpected one.  Also ``__cause__``, even when this error is not raised."""
        super().__init__(f"copy {source} -> {target}: {reason}")
        if cause is not None:
            self.__cause__ = cause


class SignatureError(ImagevetError):
    """A signature, certificate, attestation or key cannot be read or does not verify:
    ``what`` names the image or file, ``reason`` says what is wrong (never key material)."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class EvidenceError(ImagevetError):
    """An evidence file (``imagevet.evidence/sha256-<hex>.json``) is missing, damaged or does
    not match the digest the lock names: ``what`` names the file, ``reason`` says what is wrong."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class ScanError(ImagevetError):
    """A vulnerability scanner could not give a verdict: it failed, timed out, or its output is
    not a Trivy or Grype JSON report.  ``reason`` is already escaped and cut."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class HubError(ImagevetError):
    """The Docker Hub management API answered with an error (``message`` is already scrubbed).

    Like :class:`RegistryError` it says whether it is ``temporary`` (429, 5xx but 501), carries
    the ``retry_after`` the Hub asked for, and ``exhausted`` once the retry policy gave up on it.
    """

    def __init__(
        self,
        status: int,
        method: str,
        url: str,
        message: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.url = redact_url(url)
        self.message = message
        self.retry_after = retry_after
        """Seconds the Hub asked to wait (``Retry-After`` and its variants), when it said so."""
        self.exhausted = False
        """The request was already retried as often as the retry policy allows."""
        super().__init__(f"Docker Hub: {method} {self.url}: HTTP {status}: {message}")

    @property
    def temporary(self) -> bool:
        """Whether sending the same call again may succeed (429, 5xx but 501)."""
        return self.status == 429 or (self.status >= 500 and self.status != 501)


class HubRateLimitedError(HubError):
    """The Docker Hub API answered 429; ``retry_after`` in seconds."""

    def __init__(
        self, status: int, method: str, url: str, message: str, *, retry_after: float | None
    ) -> None:
        super().__init__(status, method, url, message, retry_after=retry_after)


class HubTokenError(HubError):
    """The configured token cannot make this call: an organization access token on a route
    that takes personal access tokens only.  Raised before anything is sent (status 403), or
    from the Hub's own refusal; the message says what to use instead."""

    def __init__(self, status: int, method: str, url: str, message: str) -> None:
        super().__init__(status, method, url, message)
        self.args = (f"Docker Hub: {method} {self.url}: {message}",)
