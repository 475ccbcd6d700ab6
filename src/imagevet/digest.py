"""Content digests (``sha256:<hex>``, ``sha512:<hex>``): parsing, computing, verifying while streaming."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from imagevet.errors import DigestMismatchError, InvalidDigestError

__all__ = [
    "MAX_TAG_LENGTH",
    "SUPPORTED_ALGORITHMS",
    "Digest",
    "DigestVerifier",
    "digest_tag_subject",
    "is_digest_tag",
]

MAX_TAG_LENGTH = 128

# algorithm -> length of the lowercase hex encoding (OCI image-spec, descriptor.md#registered-algorithms)
SUPPORTED_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

_DIGEST_RE = re.compile(
    r"^(?P<alg>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)\Z", re.ASCII
)


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A content digest; ``str()`` gives ``algorithm:hex`` and ``Digest.parse`` reverses it."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        want = SUPPORTED_ALGORITHMS.get(self.algorithm)
        text = f"{self.algorithm}:{self.hex}"
        if want is None:
            raise InvalidDigestError(text, f"unsupported algorithm {self.algorithm!r}")
        if len(self.hex) != want or not re.fullmatch(r"[0-9a-f]+", self.hex):
            raise InvalidDigestError(text, f"{self.algorithm} needs {want} lowercase hex characters")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algorithm:hex``; raise InvalidDigestError when it is malformed."""
        m = _DIGEST_RE.match(text)
        if not m:
            raise InvalidDigestError(text, "expected <algorithm>:<hex>")
        return cls(m["alg"], m["hex"])

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """Compute the digest of ``data``."""
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise InvalidDigestError(f"{algorithm}:", f"unsupported algorithm {algorithm!r}")
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def verifier(self) -> DigestVerifier:
        """Start a streaming check of content announced with this digest."""
        return DigestVerifier(self)

    def tag(self, suffix: str = "") -> str | None:
        """The tag attached to this digest: ``sha256-<hex>`` (the OCI referrers fallback tag, cut
        to 128 characters) or, with a suffix, cosign's ``sha256-<hex>.sig``; ``None`` when a
        suffixed name would not fit in a tag."""
        base = f"{self.algorithm}-{self.hex}"
        if not suffix:
            return base[:MAX_TAG_LENGTH]
        name = base + suffix
        return name if len(name) <= MAX_TAG_LENGTH else None

    @property
    def encoded(self) -> str:
        """The hex part alone (as used in cosign tags ``sha256-<hex>.sig``)."""
        return self.hex

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


_DIGEST_TAG_RE = re.compile(r"^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{121}|[0-9a-f]{128})(\.[a-z]+)?\Z")


def is_digest_tag(tag: str) -> bool:
    """Whether ``tag`` is an attachment tag (``sha256-<hex>[.sig|.att|.sbom]``, the OCI referrers
    fallback and cosign's tags), not an image tag; the one parser of such tags every layer uses."""
    return _DIGEST_TAG_RE.match(tag) is not None


def digest_tag_subject(tag: str) -> Digest | None:
    """The manifest a digest tag is attached to (``sha256-<hex>.sig`` -> ``sha256:<hex>``);
    None when ``tag`` is not a digest tag or names no whole digest (a sha512 tag cut to 128)."""
    m = _DIGEST_TAG_RE.match(tag)
    if m is None or len(m.group(2)) != {"sha256": 64, "sha512": 128}[m.group(1)]:
        return None
    return Digest(m.group(1), m.group(2))


class DigestVerifier:
    """Hash bytes as they stream and check them against an expected digest and size."""

    __slots__ = ("expected", "_hash", "size")

    def __init__(self, expected: Digest) -> None:
        self.expected = expected
        self._hash = hashlib.new(expected.algorithm)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def actual(self) -> Digest:
        return Digest(self.expected.algorithm, self._hash.hexdigest())

    def verify(self, what: str, expected_size: int | None = None) -> None:
        """Raise DigestMismatchError unless the bytes seen match the digest (and size, if given)."""
        if expected_size is not None and self.size != expected_size:
            raise DigestMismatchError(
                what, f"{self.expected} ({expected_size} bytes)", f"{self.size} bytes"
            )
        got = self.actual()
        if got != self.expected:
            raise DigestMismatchError(what, str(self.expected), str(got))
