"""The in-toto v1 Statement imagevet signs for every mirror, and its predicate.

An in-toto Statement (in-toto/attestation ``spec/v1/statement.md``)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": <mirror repository>, "digest": {"sha256": <hex>}}],
     "predicateType": "https://imagevet.dev/mirror/v1",
     "predicate": {...}}

The subject is the digest the mirror holds (an index digest for a multi-arch image, the
rewritten index for a platform subset), named by the mirror repository as cosign names it
(``attestation.GenerateStatement``: ``Repo: digest.Repository.String()``).  The predicate
(:class:`MirrorPredicate`, documented in docs/attestations.md) says what was mirrored from
where, under which policy entry and approval, with which lock, when, by which imagevet.

Pure: values in, JSON bytes out, and the reverse with every field checked
(:func:`parse_statement`): a statement is hostile input when it comes back from a registry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from imagevet.digest import Digest
from imagevet.errors import InvalidDigestError, SignatureError

__all__ = [
    "MIRROR_PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "MirrorPredicate",
    "Statement",
    "parse_statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
MIRROR_PREDICATE_TYPE = "https://imagevet.dev/mirror/v1"
"""Our predicate type: an imagevet mirror of a vetted upstream digest (docs/attestations.md)."""

_MAX_TEXT = 4096
_MAX_SUBJECTS = 64
_TIME = "%Y-%m-%dT%H:%M:%SZ"


def _json(value: Any) -> Any:
    """A JSON-able copy of a mapping given by another area (signature, scan records)."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True, slots=True)
class MirrorPredicate:
    """What one imagevet mirror is: the ``predicate`` of :data:`MIRROR_PREDICATE_TYPE`."""

    source: str
    """The upstream repository, with the tag mirrored (``docker.io/bitnami/redis:7.2``)."""
    source_digest: Digest
    """The upstream digest vetted and copied."""
    entry: str
    """The policy entry's name."""
    approved_by: str
    lock_sha256: str
    """SHA-256 (hex) of the lock file's bytes as written after the run."""
    time: datetime
    imagevet_version: str
    reason: str | None = None
    ticket: str | None = None
    expires: str | None = None
    """The approval's last day (``YYYY-MM-DD``), or None."""
    signature: Mapping[str, Any] | None = field(default=None, compare=False)
    """How the upstream signature was verified (the lock's ``verified`` record), if any."""
    scan: Mapping[str, Any] | None = field(default=None, compare=False)
    """The vulnerability scan's result (the lock's evidence record), if any."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": {"reference": self.source, "digest": {self.source_digest.algorithm: self.source_digest.hex}},
            "entry": self.entry,
            "approval": {
                "by": self.approved_by,
                "reason": self.reason,
                "ticket": self.ticket,
                "expires": self.expires,
            },
            "lock": {"sha256": self.lock_sha256},
            "time": self.time.astimezone(UTC).strftime(_TIME),
            "imagevet": {"version": self.imagevet_version},
        }
        if self.signature is not None:
            out["signature"] = _json(self.signature)
        if self.scan is not None:
            out["scan"] = _json(self.scan)
        return out

    def same_statement(self, other: MirrorPredicate) -> bool:
        """Whether ``other`` says the same as this one but maybe at another time (then a
        mirror that carries it needs no new attestation)."""
        return (
            replace(self, time=other.time, imagevet_version=other.imagevet_version) == other
            and _json(self.signature) == _json(other.signature)
            and _json(self.scan) == _json(other.scan)
        )

    @classmethod
    def from_json(cls, obj: Any, what: str) -> MirrorPredicate:
        if not isinstance(obj, dict):
            raise SignatureError(what, "predicate is not a JSON object")
        source = _obj(obj, "source", what)
        approval = _obj(obj, "approval", what)
        lock = _obj(obj, "lock", what)
        tool = _obj(obj, "imagevet", what)
        time_text = _text(obj, "time", what)
        try:
            when = datetime.strptime(time_text, _TIME).replace(tzinfo=UTC)
        except ValueError:
            raise SignatureError(what, f"predicate time {time_text[:40]!r} is not YYYY-MM-DDTHH:MM:SSZ") from None
        lock_hex = _text(lock, "sha256", what)
        if len(lock_hex) != 64 or any(c not in "0123456789abcdef" for c in lock_hex):
            raise SignatureError(what, "predicate lock.sha256 is not 64 lowercase hex digits")
        signature = obj.get("signature")
        scan = obj.get("scan")
        return cls(
            source=_text(source, "reference", what),
            source_digest=_digest_map(source.get("digest"), what, "predicate source.digest"),
            entry=_text(obj, "entry", what),
            approved_by=_text(approval, "by", what),
            lock_sha256=lock_hex,
            time=when,
            imagevet_version=_text(tool, "version", what),
            reason=_optional(approval, "reason", what),
            ticket=_optional(approval, "ticket", what),
            expires=_optional(approval, "expires", what),
            signature=signature if isinstance(signature, dict) else None,
            scan=scan if isinstance(scan, dict) else None,
        )


def _obj(obj: Mapping[str, Any], key: str, what: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise SignatureError(what, f"predicate {key} is not a JSON object")
    return value


def _text(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise SignatureError(what, f"{key} is not a non-empty string of at most {_MAX_TEXT} characters")
    return value


def _optional(obj: Mapping[str, Any], key: str, what: str) -> str | None:
    return None if obj.get(key) is None else _text(obj, key, what)


def _digest_map(value: Any, what: str, field_name: str) -> Digest:
    """The sha256 (else sha512) digest of an in-toto DigestSet."""
    if not isinstance(value, dict):
        raise SignatureError(what, f"{field_name} is not a digest set")
    for algorithm in ("sha256", "sha512"):
        hexdigits = value.get(algorithm)
        if isinstance(hexdigits, str):
            try:
                return Digest.parse(f"{algorithm}:{hexdigits}")
            except InvalidDigestError:
                raise SignatureError(what, f"{field_name}.{algorithm} is not a valid digest") from None
    raise SignatureError(what, f"{field_name} has no sha256 or sha512 digest")


@dataclass(frozen=True, slots=True)
class Statement:
    """An in-toto v1 Statement about one mirrored digest."""

    subject_name: str
    subject_digest: Digest
    predicate: MirrorPredicate
    predicate_type: str = MIRROR_PREDICATE_TYPE

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [
                {"name": self.subject_name, "digest": {self.subject_digest.algorithm: self.subject_digest.hex}}
            ],
            "predicateType": self.predicate_type,
            "predicate": self.predicate.to_json(),
        }

    def to_bytes(self) -> bytes:
        """The serialized statement (compact JSON, UTF-8): the DSSE payload."""
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_statement(payload: bytes, *, what: str) -> tuple[Statement, tuple[Digest, ...]]:
    """The imagevet statement in ``payload`` and every subject digest it names.

    SignatureError when it is not an in-toto v1 (or v0.1) statement of
    :data:`MIRROR_PREDICATE_TYPE` with a well-formed predicate.  The first subject is the one
    :class:`Statement` keeps; callers check the digest they expect against all of them.
    """
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError(what, "the attestation payload is not JSON") from None
    if not isinstance(doc, dict):
        raise SignatureError(what, "the attestation payload is not a JSON object")
    kind = doc.get("_type")
    if kind not in (STATEMENT_TYPE, "https://in-toto.io/Statement/v0.1"):
        raise SignatureError(what, f"not an in-toto statement (_type {str(kind)[:80]!r})")
    predicate_type = doc.get("predicateType")
    if predicate_type != MIRROR_PREDICATE_TYPE:
        raise SignatureError(what, f"predicate type {str(predicate_type)[:100]!r} is not {MIRROR_PREDICATE_TYPE}")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise SignatureError(what, "the statement has no subject")
    if len(subjects) > _MAX_SUBJECTS:
        raise SignatureError(what, f"the statement has {len(subjects)} subjects (at most {_MAX_SUBJECTS})")
    digests: list[Digest] = []
    names: list[str] = []
    for item in subjects:
        if not isinstance(item, dict):
            raise SignatureError(what, "a statement subject is not a JSON object")
        digests.append(_digest_map(item.get("digest"), what, "subject digest"))
        name = item.get("name")
        names.append(name[:_MAX_TEXT] if isinstance(name, str) else "")
    predicate = MirrorPredicate.from_json(doc.get("predicate"), what)
    return Statement(names[0], digests[0], predicate, MIRROR_PREDICATE_TYPE), tuple(digests)
