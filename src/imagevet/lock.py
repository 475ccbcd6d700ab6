"""The lock file (``imagevet.lock``, next to the policy): the digest vetted for every selected tag.

Format: YAML written by this module, never by a generic dumper::

    # imagevet.lock: the digests vetted for each policy entry. ...
    version: 1
    images:
      - source: "docker.io/bitnami/redis"
        target: "docker.io/acme/redis"
        tags:
          "7.2.4":
            digest: "sha256:…"
            media_type: "application/vnd.oci.image.index.v1+json"
            platforms:
              - "linux/amd64"
              - "linux/arm64"
            manifests:      # an index: the digest of each platform's manifest
              "linux/amd64": "sha256:…"
              "linux/arm64": "sha256:…"
            referrers: []
            resolved_at: "2026-05-01T10:00:00Z"
            approval:       # only for a tag `imagevet approve` moved
              by: "Alice <alice@acme.example>"
              reason: "CVE-2026-1234 fixed upstream"
              at: "2026-05-02T09:00:00Z"
        digests:            # only when the policy lists explicit digests
          "sha256:…":
            media_type: …

Why YAML written by hand rather than JSON or a YAML dumper:

* it is reviewed in pull requests: one value per line (lists too), entries sorted by source then
  target, tags and digests sorted by text, so a re-pointed tag is a two-line diff (digest and
  resolved_at) and nothing else moves;
* every scalar is a JSON string literal (valid YAML double-quoted), so ``"7.10"`` can never turn
  into the float 7.1 and the bytes depend on nothing but the values: writing the same lock twice
  gives the same bytes;
* it reads back through the policy's located YAML loader, so a damaged lock (a bad merge) is
  reported with its line and column, and it may carry a comment header.

What the writer writes, the reader reads: every value of a record is checked when the record is
built (:class:`LockedImage`, :class:`LockEntry`: tag names, media types, platforms, digests) by
the same rules the reader applies, so a lock written from upstream values always reads back
equal; upstream values are normalised first (platforms, see :class:`imagevet.manifest.Platform`).

One damaged entry never refuses the whole file: an entry the reader cannot read becomes an
:class:`UnreadableEntry` of :attr:`Lock.unreadable`, with every error at its file:line:column,
filed under its source -> target when those can be read.  Commands fail that entry only
(:meth:`Lock.problems`); rewriting the lock keeps it as it was read, until a readable record of
the same source -> target (``imagevet lock`` resolving it again) replaces it.  Only a file that
is not a lock at all (YAML syntax, the version, ``images`` not a list) is refused whole.

``manifests`` maps each of an index's ``platforms`` to the digest of its platform manifest (the
first one the index lists for that platform; attestation entries ``unknown/unknown`` and invalid
platforms are left out, as from ``platforms``), so ``check`` can tell that a reference pinned to
one platform manifest is part of a vetted image.  It is written only when it holds something; a
record without it (a lock written before it existed, or a ``follow`` record ``sync`` wrote) reads
as it did, and ``imagevet lock`` fills it in once, with one manifest GET for each such digest
(:meth:`LockedImage.lacks_manifests`).  When present it names every platform of ``platforms``,
nothing else.

``evidence`` (optional) is the digest of the evidence file kept beside the lock for that digest
(``imagevet.evidence/sha256-<hex>.json``, see :mod:`imagevet.evidence` and docs/evidence.md):
the SBOMs, attestations and signatures found upstream and the scan.  It is written only when
there is evidence, so a record without it renders as it always did.

``verified`` (only for an entry with a ``verify:`` rule, so other locks read and render as they
always did) names the cosign signature that verified the digest when ``imagevet lock`` resolved
it: ``signature`` (the signature manifest's digest) and ``key`` (the key's id), or, for a keyless
signature, ``identity`` and ``issuer`` (the Fulcio certificate's subject and OIDC issuer); see
docs/verify.md.

``resolved_at`` is when the tag was first seen at that digest.  :func:`carry_resolved_at` keeps
the old time of every tag whose digest did not change, so re-locking with no upstream change
rewrites identical bytes.  :func:`write_lock` replaces the file atomically (temporary file in the
same directory, fsync, rename).

``approval`` (optional, tags only) says who moved a tag to its digest with ``imagevet approve``,
why and when (:class:`TagApproval`).  A record without it renders exactly as before, so a lock
with no approval is byte-identical to one written before the field existed.  It belongs to the
tag at that digest: :func:`carry_resolved_at` keeps it while the tag stays at the same digest,
a re-pointed tag loses it, and :meth:`LockEntry.find_digest` (which may find another tag's
record of the same digest) returns records without it, so it is never copied to another tag.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictStr,
    ValidationError,
    model_validator,
)

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import ImagevetError, InvalidReferenceError, PolicyError
from imagevet.manifest import Platform
from imagevet.policy.located import (
    MAX_YAML_CHARS,
    Located,
    PolicyErrors,
    parse_yaml,
    read_yaml_file,
    validation_errors,
)
from imagevet.policy.model import EntryKey
from imagevet.policy.schema import DigestText
from imagevet.reference import Reference, is_valid_tag

__all__ = [
    "LOCK_VERSION",
    "Lock",
    "LockChange",
    "LockDiff",
    "LockEntry",
    "LockRecordError",
    "LockedImage",
    "TagApproval",
    "UnreadableEntry",
    "Verified",
    "carry_resolved_at",
    "check_media_type",
    "check_platform",
    "check_tag",
    "diff_locks",
    "lock_path_for",
    "parse_lock",
    "read_lock",
    "render_lock",
    "valid_media_type",
    "write_lock",
]

LOCK_VERSION = 1
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
_HEADER = (
    "# imagevet.lock: the digest vetted for every selected tag of each policy entry.\n"
    "# Written by `imagevet lock`; review its changes, never edit it by hand.\n"
)


_MEDIA_PART = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_RE = re.compile(rf"{_MEDIA_PART}/{_MEDIA_PART}")


class LockRecordError(ImagevetError, ValueError):
    """A value a lock record cannot hold (an invalid tag, media type, platform or digest)."""


def check_tag(value: str) -> str:
    """``value`` if it is a valid tag name; LockRecordError otherwise."""
    if not is_valid_tag(value):
        raise LockRecordError(
            f"invalid tag {value[:140]!r}: letters, digits, '_', '.', '-', at most 128, "
            "not starting with '.' or '-'"
        )
    return value


def check_media_type(value: str) -> str:
    """``value`` if it is a media type ``type/subtype`` (RFC 6838 names); LockRecordError otherwise."""
    if not _MEDIA_RE.fullmatch(value):
        raise LockRecordError(
            f"invalid media type {value[:140]!r}: expected type/subtype such as {mediatype.OCI_INDEX}"
        )
    return value


def valid_media_type(value: str) -> bool:
    """Whether a lock record can hold ``value`` as its media type (see :func:`check_media_type`)."""
    return _MEDIA_RE.fullmatch(value) is not None


def check_platform(value: str) -> str:
    """``value`` if it is a normalised ``os/architecture[/variant]``; LockRecordError otherwise."""
    try:
        platform = Platform.parse(value) if value == value.strip() else None
    except ValueError:
        platform = None
    problem = "expected os/architecture[/variant]" if platform is None else platform.problem
    if problem is None and str(platform) != value:
        problem = "expected os/architecture[/variant]"
    if problem is not None:
        raise LockRecordError(
            f"invalid platform {value[:200]!r}: lowercase os/architecture[/variant], e.g. "
            f"linux/amd64 ({problem})"
        )
    return value


def _check_manifests(platforms: Iterable[str], manifests: Mapping[str, object]) -> None:
    """LockRecordError unless ``manifests`` is empty or names each of ``platforms`` once."""
    if manifests and set(manifests) != set(platforms):
        extra = sorted(set(manifests) - set(platforms))
        missing = sorted(set(platforms) - set(manifests))
        said = "; ".join(
            part
            for part in (
                f"not in platforms: {', '.join(extra)}" if extra else "",
                f"missing: {', '.join(missing)}" if missing else "",
            )
            if part
        )
        raise LockRecordError(f"manifests must give one digest for each of platforms ({said})"[:400])


def lock_path_for(policy_path: Path) -> Path:
    """The lock next to a policy: ``imagevet.yaml`` -> ``imagevet.lock``."""
    return policy_path.with_suffix(".lock")


APPROVAL_BY_MAX = 256
"""Longest ``approval.by`` a record holds (characters)."""
APPROVAL_REASON_MAX = 4096
"""Longest ``approval.reason`` a record holds (characters)."""


def _check_approval_text(name: str, value: str, limit: int) -> str:
    if not value.strip():
        raise LockRecordError(f"approval {name}: must not be empty")
    if len(value) > limit:
        raise LockRecordError(f"approval {name}: {len(value)} characters, at most {limit}")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise LockRecordError(f"approval {name}: not valid Unicode text (a lone surrogate)")
    return value


@dataclass(frozen=True, slots=True)
class TagApproval:
    """Who moved a tag to its digest with ``imagevet approve``, why and when (UTC, whole seconds).

    ``by`` and ``reason`` are any text (written escaped, one line each), not empty, at most
    :data:`APPROVAL_BY_MAX` and :data:`APPROVAL_REASON_MAX` characters."""

    by: str
    reason: str
    at: datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("approval at must be timezone-aware")
        _check_approval_text("by", self.by, APPROVAL_BY_MAX)
        _check_approval_text("reason", self.reason, APPROVAL_REASON_MAX)
        object.__setattr__(self, "at", self.at.astimezone(UTC).replace(microsecond=0))


VERIFIED_TEXT_MAX = 1024
"""Longest keyless ``identity`` or ``issuer`` a verified record holds (characters)."""


def _check_verified_text(name: str, value: str) -> str:
    if not value or len(value) > VERIFIED_TEXT_MAX or not value.isprintable():
        raise LockRecordError(
            f"verified {name}: printable text of 1 to {VERIFIED_TEXT_MAX} characters, got {value[:80]!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class Verified:
    """Which signature verified a digest (the digest of the cosign signature manifest holding
    it) and whose key it carries (``sha256:`` of the key's DER SubjectPublicKeyInfo); written
    as the record's ``verified`` mapping, only for entries with a ``verify:`` rule."""

    signature: Digest
    key: str | None = None
    identity: str | None = None
    """For a keyless signature (``key`` None): the Fulcio certificate's subject..."""
    issuer: str | None = None
    """...and its OIDC issuer."""

    def __post_init__(self) -> None:
        if self.key is not None:
            if self.identity is not None or self.issuer is not None:
                raise LockRecordError("a verified record names a key or a keyless identity, not both")
            try:
                Digest.parse(self.key)
            except ValueError:
                raise LockRecordError(f"invalid key id {self.key[:80]!r}: expected sha256:<64 hex>") from None
            return
        for name, value in (("identity", self.identity), ("issuer", self.issuer)):
            if value is None:
                raise LockRecordError(f"a verified record needs a key, or an identity and an issuer (no {name})")
            _check_verified_text(name, value)


@dataclass(frozen=True, slots=True)
class LockedImage:
    """What one tag (or explicit digest) resolved to upstream."""

    digest: Digest
    media_type: str
    resolved_at: datetime
    """When the tag was first seen at ``digest`` (UTC, whole seconds)."""
    platforms: tuple[str, ...] = ()
    """Every platform of the source image, ``os/arch[/variant]``; empty for a single manifest
    whose platform was not read."""
    referrers: tuple[Digest, ...] = ()
    """Digests of the referrers (signatures, SBOMs, attestations) of the image upstream."""
    manifests: tuple[tuple[str, Digest], ...] = ()
    """``(platform, digest)`` of each platform manifest of an index, sorted by platform: empty,
    or one for each of ``platforms`` (see :meth:`RawManifest.platform_manifests`).  Empty for an index when it was
    not recorded (see :attr:`lacks_manifests`)."""
    approval: TagApproval | None = None
    """Who moved the tag to ``digest`` with ``imagevet approve`` (tags only; None: not recorded)."""
    evidence: Digest | None = None
    """The digest of the evidence file kept for this digest (None: no evidence recorded)."""
    verified: Verified | None = None
    """The signature that verified this digest under the entry's ``verify:`` rule (None: not
    verified, or no rule)."""

    def __post_init__(self) -> None:
        """Check every value as the reader does (LockRecordError), then normalise the order."""
        if self.resolved_at.tzinfo is None:
            raise ValueError("resolved_at must be timezone-aware")
        check_media_type(self.media_type)
        for p in self.platforms:
            check_platform(p)
        children = dict(self.manifests)
        if len(children) != len(self.manifests):
            raise LockRecordError("manifests: a platform given twice")
        for p in children:
            check_platform(p)
        _check_manifests(self.platforms, children)
        when = self.resolved_at.astimezone(UTC).replace(microsecond=0)
        object.__setattr__(self, "resolved_at", when)
        object.__setattr__(self, "platforms", tuple(sorted(set(self.platforms))))
        object.__setattr__(self, "referrers", tuple(sorted(set(self.referrers))))
        object.__setattr__(self, "manifests", tuple(sorted(children.items())))

    @property
    def by_platform(self) -> dict[str, Digest]:
        """Platform -> digest of its platform manifest (empty when not recorded)."""
        return dict(self.manifests)

    @property
    def lacks_manifests(self) -> bool:
        """Whether the record names platforms but not their manifests' digests (a lock written
        before ``manifests`` existed): ``imagevet lock`` reads the manifest once to fill them."""
        return bool(self.platforms) and not self.manifests

    @property
    def is_index(self) -> bool:
        return mediatype.is_index(self.media_type)

    def same_content(self, other: LockedImage) -> bool:
        """Equal but for ``resolved_at``."""
        return replace(self, resolved_at=other.resolved_at) == other


@dataclass(frozen=True, slots=True)
class LockEntry:
    """The locked tags (and explicit digests) of one policy entry, filed under source -> target."""

    source: Reference
    target: Reference
    tags: Mapping[str, LockedImage] = field(default_factory=dict)
    digests: Mapping[Digest, LockedImage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for tag in self.tags:
            check_tag(tag)
        object.__setattr__(self, "source", self.source.repo())
        object.__setattr__(self, "target", self.target.repo())
        object.__setattr__(self, "tags", dict(sorted(self.tags.items())))
        object.__setattr__(
            self, "digests", dict(sorted(self.digests.items(), key=lambda kv: str(kv[0])))
        )
        for d, image in self.digests.items():
            if image.digest != d:
                raise ValueError(f"digests[{d}] holds {image.digest}")
            if image.approval is not None:
                raise LockRecordError(f"digests[{d}]: an explicit digest carries no approval record")

    @property
    def key(self) -> EntryKey:
        return EntryKey(self.source, self.target)

    def find_digest(self, digest: Digest) -> LockedImage | None:
        """A record of ``digest`` under any tag or explicit digest (to reuse its platforms)."""
        if digest in self.digests:
            return self.digests[digest]
        found = next((i for i in self.tags.values() if i.digest == digest), None)
        # an approval belongs to its own tag: never handed on to another tag of the same digest
        return replace(found, approval=None) if found is not None and found.approval else found


def _key_text(key: EntryKey) -> tuple[str, str]:
    return (key.source.name, key.target.name)


@dataclass(frozen=True, slots=True)
class UnreadableEntry:
    """An item of ``images`` the reader could not read: kept as it was read, reported as its
    entry's error."""

    key: EntryKey | None
    """Its source -> target, when both could be read (else it belongs to no policy entry)."""
    data: Any = field(compare=True)
    """The item as read (plain YAML data), written back as it is when the lock is rewritten."""
    errors: tuple[PolicyError, ...] = field(default=(), compare=False)
    """Every problem, each at its file:line:column (where the file was read)."""


@dataclass(frozen=True, slots=True)
class Lock:
    """A whole lock file: its entries sorted by source then target, and the entries that could
    not be read (a readable entry replaces an unreadable one of the same source -> target)."""

    entries: tuple[LockEntry, ...] = ()
    version: int = LOCK_VERSION
    unreadable: tuple[UnreadableEntry, ...] = ()

    def __post_init__(self) -> None:
        entries = tuple(sorted(self.entries, key=lambda e: _key_text(e.key)))
        keys = [e.key for e in entries]
        if len(set(keys)) != len(keys):
            raise ValueError("two lock entries for the same source -> target")
        object.__setattr__(self, "entries", entries)
        have = set(keys)
        object.__setattr__(
            self, "unreadable", tuple(u for u in self.unreadable if u.key not in have)
        )

    def entry(self, key: EntryKey) -> LockEntry | None:
        """The entry filed under ``key``, if any (None when its records cannot be read)."""
        return next((e for e in self.entries if e.key == key), None)

    def problems(self, key: EntryKey) -> tuple[PolicyError, ...]:
        """Why the records filed under ``key`` cannot be read (empty when they can)."""
        return tuple(e for u in self.unreadable if u.key == key for e in u.errors)

    def image(self, key: EntryKey, tag: str) -> LockedImage | None:
        """The locked record of ``tag`` in the entry ``key``, if any."""
        entry = self.entry(key)
        return entry.tags.get(tag) if entry is not None else None

    def with_entry(self, entry: LockEntry) -> Lock:
        """A copy with ``entry`` added, or replacing the one with the same key."""
        return Lock(
            (*[e for e in self.entries if e.key != entry.key], entry), self.version, self.unreadable
        )

    def only(self, keys: Iterable[EntryKey]) -> Lock:
        """A copy keeping only the entries of ``keys`` (those of the current policy), and the
        unreadable entries of ``keys`` or of no readable key (no one can tell they are gone)."""
        wanted = set(keys)
        return Lock(
            tuple(e for e in self.entries if e.key in wanted),
            self.version,
            tuple(u for u in self.unreadable if u.key is None or u.key in wanted),
        )


def carry_resolved_at(new: Lock, old: Lock) -> Lock:
    """``new`` with the ``resolved_at`` of ``old`` for every tag or digest still at the same digest
    (and, for a tag, its ``approval`` record when ``new`` has none)."""
    entries = []
    for entry in new.entries:
        before = old.entry(entry.key)
        if before is None:
            entries.append(entry)
            continue

        def keep(image: LockedImage, previous: LockedImage | None) -> LockedImage:
            if previous is not None and previous.digest == image.digest:
                # the tag's approval stays with it while it stays at the approved digest
                approval = image.approval or previous.approval
                return replace(image, resolved_at=previous.resolved_at, approval=approval)
            return image

        tags = {t: keep(i, before.tags.get(t)) for t, i in entry.tags.items()}
        digests = {d: keep(i, before.digests.get(d)) for d, i in entry.digests.items()}
        entries.append(replace(entry, tags=tags, digests=digests))
    return Lock(tuple(entries), new.version, new.unreadable)


# ---- text form -------------------------------------------------------------------------------


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _q(value: str) -> str:
    """A YAML double-quoted scalar that reads back as exactly ``value``, in printable ASCII:
    the same text as ``json.dumps`` for printable ASCII, and ``\\UXXXXXXXX`` (not a surrogate
    pair, which YAML would read as two characters) beyond the BMP."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_PLAIN_KEY = re.compile(r"[a-z_]+")


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return _q(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    return _q(str(value))


def _data_lines(value: Any, indent: str, path: tuple[str, ...]) -> list[str]:
    """The block YAML of ``value`` (the lock's own style) below a ``key:`` or ``-`` line."""
    lines: list[str] = []
    if isinstance(value, dict):
        quoted = bool(path) and path[-1] in ("tags", "digests")
        for k, v in value.items():
            key = str(k)
            name = key if _PLAIN_KEY.fullmatch(key) and not quoted else _q(key)
            lines.extend(_keyed(f"{indent}{name}:", v, indent, (*path, key)))
    else:
        for v in value:
            lines.extend(_item(indent, v, (*path, "-")))
    return lines


def _keyed(head: str, value: Any, indent: str, path: tuple[str, ...]) -> list[str]:
    if isinstance(value, dict | list) and value:
        return [head, *_data_lines(value, indent + "  ", path)]
    if isinstance(value, dict | list):
        return [f"{head} {'{}' if isinstance(value, dict) else '[]'}"]
    return [f"{head} {_plain(value)}"]


def _item(indent: str, value: Any, path: tuple[str, ...]) -> list[str]:
    """One ``- value`` of a list at ``indent``; a mapping's first key on the dash's line."""
    if isinstance(value, dict) and value:
        body = _data_lines(value, indent + "  ", path)
        return [f"{indent}- {body[0].lstrip()}", *body[1:]]
    if isinstance(value, list) and value:
        return [f"{indent}-", *_data_lines(value, indent + "  ", path)]
    return _keyed(f"{indent}-", value, indent, path)


def _image_lines(image: LockedImage, indent: str, *, with_digest: bool) -> list[str]:
    lines = [f"{indent}digest: {_q(str(image.digest))}"] if with_digest else []
    lines.append(f"{indent}media_type: {_q(image.media_type)}")
    for name, values in (
        ("platforms", image.platforms),
        ("referrers", [str(r) for r in image.referrers]),
    ):
        if values:
            lines.append(f"{indent}{name}:")
            lines.extend(f"{indent}  - {_q(v)}" for v in values)
        else:
            lines.append(f"{indent}{name}: []")
        if name == "referrers" and image.evidence is not None:  # only when recorded
            lines.append(f"{indent}evidence: {_q(str(image.evidence))}")
        if name == "platforms" and image.manifests:  # only when recorded: old locks stay as they are
            lines.append(f"{indent}manifests:")
            lines.extend(f"{indent}  {_q(p)}: {_q(str(d))}" for p, d in image.manifests)
    if image.verified is not None:  # only with a verify: rule: other locks stay as they are
        lines.append(f"{indent}verified:")
        lines.append(f"{indent}  signature: {_q(str(image.verified.signature))}")
        if image.verified.key is not None:
            lines.append(f"{indent}  key: {_q(image.verified.key)}")
        else:  # keyless: whose certificate signed it
            lines.append(f"{indent}  identity: {_q(image.verified.identity or '')}")
            lines.append(f"{indent}  issuer: {_q(image.verified.issuer or '')}")
    lines.append(f"{indent}resolved_at: {_q(image.resolved_at.strftime(_TIME_FORMAT))}")
    if image.approval is not None:  # only when recorded: a lock without approvals stays as it was
        lines.append(f"{indent}approval:")
        lines.append(f"{indent}  by: {_q(image.approval.by)}")
        lines.append(f"{indent}  reason: {_q(image.approval.reason)}")
        lines.append(f"{indent}  at: {_q(image.approval.at.strftime(_TIME_FORMAT))}")
    return lines


def render_lock(lock: Lock) -> str:
    """The lock's text: deterministic, sorted, one value per line (see the module docstring)."""
    lines = [f"version: {lock.version}", "images:"]
    items: list[tuple[tuple[int, str, str], list[str]]] = []
    for entry in lock.entries:
        items.append(((0, *_key_text(entry.key)), _entry_lines(entry)))
    for n, bad in enumerate(lock.unreadable):  # as read; those of no readable key last, in order
        order = (0, *_key_text(bad.key)) if bad.key is not None else (1, f"{n:09d}", "")
        items.append((order, _item("  ", bad.data, ("images",))))
    for _, item_lines in sorted(items, key=lambda kv: kv[0]):
        lines.extend(item_lines)
    if not items:
        lines[-1] = "images: []"
    return _HEADER + "\n".join(lines) + "\n"


def _entry_lines(entry: LockEntry) -> list[str]:
    lines: list[str] = []
    lines.append(f"  - source: {_q(entry.source.name)}")
    lines.append(f"    target: {_q(entry.target.name)}")
    if entry.tags:
        lines.append("    tags:")
        for tag, image in entry.tags.items():
            lines.append(f"      {_q(tag)}:")
            lines.extend(_image_lines(image, "        ", with_digest=True))
    else:
        lines.append("    tags: {}")
    if entry.digests:
        lines.append("    digests:")
        for digest, image in entry.digests.items():
            lines.append(f"      {_q(str(digest))}:")
            lines.extend(_image_lines(image, "        ", with_digest=False))
    return lines


def _time(value: str) -> str:
    if not _TIME_RE.match(value):
        raise ValueError(f"expected a UTC time YYYY-MM-DDTHH:MM:SSZ, got {value!r}")
    try:
        datetime.strptime(value, _TIME_FORMAT)
    except ValueError as e:
        raise ValueError(f"invalid time {value!r}: {e}") from None
    return value


def _ref(value: str) -> str:
    try:
        ref = Reference.parse(value)
    except InvalidReferenceError as e:
        raise ValueError(str(e)) from None
    if ref.tag is not None or ref.digest is not None:
        raise ValueError(f"{value!r}: expected a repository without tag or digest")
    return value


def _checked(check: Any) -> Any:
    def run(value: str) -> str:
        try:
            return str(check(value))
        except LockRecordError as e:
            raise ValueError(str(e)) from None

    return AfterValidator(run)


_Time = Annotated[StrictStr, AfterValidator(_time)]
_Repo = Annotated[StrictStr, AfterValidator(_ref)]
_Tag = Annotated[StrictStr, _checked(check_tag)]
_MediaType = Annotated[StrictStr, _checked(check_media_type)]
_Platform = Annotated[StrictStr, _checked(check_platform)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _verified_text(name: str) -> Any:
    def check(value: str) -> str:
        try:
            return _check_verified_text(name, value)
        except LockRecordError as e:
            raise ValueError(str(e)) from None

    return AfterValidator(check)


class _VerifiedRecord(_Model):
    signature: DigestText
    key: DigestText | None = None
    identity: Annotated[StrictStr, _verified_text("identity")] | None = None
    issuer: Annotated[StrictStr, _verified_text("issuer")] | None = None

    @model_validator(mode="after")
    def _key_or_identity(self) -> _VerifiedRecord:
        if self.key is not None and (self.identity is not None or self.issuer is not None):
            raise ValueError("a key or a keyless identity and issuer, not both")
        if self.key is None and (self.identity is None or self.issuer is None):
            raise ValueError("a key, or a keyless identity and issuer")
        return self


class _DigestRecord(_Model):
    media_type: _MediaType
    platforms: list[_Platform] = []
    manifests: dict[_Platform, DigestText] = {}
    referrers: list[DigestText] = []
    evidence: DigestText | None = None
    verified: _VerifiedRecord | None = None
    resolved_at: _Time

    @model_validator(mode="after")
    def _manifests_match_platforms(self) -> _DigestRecord:
        try:
            _check_manifests(self.platforms, self.manifests)
        except LockRecordError as e:
            raise ValueError(str(e)) from None
        return self


def _approval_text(limit: int, name: str) -> Any:
    def run(value: str) -> str:
        try:
            return _check_approval_text(name, value, limit)
        except LockRecordError as e:
            raise ValueError(str(e)) from None

    return AfterValidator(run)


class _ApprovalRecord(_Model):
    by: Annotated[StrictStr, _approval_text(APPROVAL_BY_MAX, "by")]
    reason: Annotated[StrictStr, _approval_text(APPROVAL_REASON_MAX, "reason")]
    at: _Time


class _TagRecord(_DigestRecord):
    digest: DigestText
    approval: _ApprovalRecord | None = None


class _EntryModel(_Model):
    source: _Repo
    target: _Repo
    tags: dict[_Tag, _TagRecord] = {}
    digests: dict[DigestText, _DigestRecord] = {}


class _LockModel(_Model):
    version: Literal[1]
    images: list[_EntryModel] = []


class _FileModel(_Model):
    """The whole file, entries unread: what must hold for it to be a lock at all."""

    version: Literal[1]
    images: list[Any] = []


_HINTS = {
    "policy.version": str(LOCK_VERSION),
    "policy.images": "a list of {source, target, tags, digests}",
    "tags": "a mapping of tag: {digest, media_type, platforms, manifests, referrers, evidence, verified, resolved_at, approval}",
    "digests": "a mapping of digest: {media_type, platforms, manifests, referrers, evidence, verified, resolved_at}",
}


def _image(record: _DigestRecord, digest: str) -> LockedImage:
    approval = record.approval if isinstance(record, _TagRecord) else None
    return LockedImage(
        digest=Digest.parse(digest),
        media_type=record.media_type,
        platforms=tuple(record.platforms),
        referrers=tuple(Digest.parse(r) for r in record.referrers),
        manifests=tuple((p, Digest.parse(d)) for p, d in record.manifests.items()),
        resolved_at=datetime.strptime(record.resolved_at, _TIME_FORMAT).replace(tzinfo=UTC),
        approval=(
            TagApproval(
                approval.by, approval.reason,
                datetime.strptime(approval.at, _TIME_FORMAT).replace(tzinfo=UTC),
            )
            if approval is not None
            else None
        ),
        evidence=Digest.parse(record.evidence) if record.evidence is not None else None,
        verified=(
            Verified(
                Digest.parse(record.verified.signature), record.verified.key,
                record.verified.identity, record.verified.issuer,
            )
            if record.verified is not None else None
        ),
    )


def _item_key(item: Any) -> EntryKey | None:
    """The source -> target of an ``images`` item, when both can be read."""
    if not isinstance(item, dict):
        return None
    refs = []
    for name in ("source", "target"):
        value = item.get(name)
        try:
            refs.append(Reference.parse(_ref(value)).repo() if isinstance(value, str) else None)
        except (ValueError, InvalidReferenceError):
            return None
    source, target = refs
    return EntryKey(source, target) if source is not None and target is not None else None


def _item_errors(located: Located) -> dict[int, list[PolicyError]]:
    """Every error of each ``images`` item, by its index (each at its file:line:column)."""
    try:
        _LockModel.model_validate(located.data)
    except ValidationError as e:
        out: dict[int, list[PolicyError]] = {}
        whole: list[PolicyError] = []
        located_errors = validation_errors(located, e, _LockModel, hints=_HINTS)
        for err, error in zip(e.errors(include_url=False), located_errors, strict=True):
            loc = tuple(err["loc"])
            if len(loc) > 1 and loc[0] == "images" and isinstance(loc[1], int):
                out.setdefault(loc[1], []).append(error)
            else:  # pragma: no cover - _FileModel has checked everything outside the items
                whole.append(error)
        if whole:  # pragma: no cover
            raise PolicyErrors(whole) from None
        return out
    return {}


def _read_item(item: Any) -> LockEntry:
    entry = _EntryModel.model_validate(item)
    return LockEntry(
        source=Reference.parse(entry.source),
        target=Reference.parse(entry.target),
        tags={t: _image(r, r.digest) for t, r in entry.tags.items()},
        digests={Digest.parse(d): _image(r, d) for d, r in entry.digests.items()},
    )


# ---- reading the writer's own form fast --------------------------------------------------------
#
# ruamel.yaml's round-trip composer (pure Python here: ruamel.yaml.clib is not installed, and the
# C loaders keep no positions) took ~90 ms of CPU for a lock of 42 tags and ~600 ms for 500: most
# of a no-op sync's work after its imports.  A lock is almost always exactly what render_lock
# wrote, so that form is read line by line (one regular expression a line); anything else (a
# hand edit in another YAML style, an anchor, a flow collection, a deep nesting, a duplicate key)
# is "not canonical" and read by the located loader, as is every lock with an error, so errors
# keep their file:line:column.  Bounded as the located loader is: the same size limit, at most
# _CANONICAL_DEPTH levels, linear in the lines.

_CANONICAL_DEPTH = 12
"""Deepest nesting the fast reader follows (a lock is 7 deep; an unreadable entry kept as read may
be deeper): beyond, the located loader reads the file (and bounds it)."""

_JSON_STR = r'"(?:[ !#-\[\]-~]|\\["\\bfnrt]|\\u[0-9a-fA-F]{4})*"'
_KEY = rf"(?P<key>(?!(?:null|true|false):)[a-z_]+|{_JSON_STR})"  # null:, true:, false: are not string keys in YAML
_VALUE = rf"(?P<value>{_JSON_STR}|\[\]|\{{\}}|null|true|false|0|-?[1-9][0-9]{{0,17}})"
_LINE = re.compile(rf"(?P<indent> *)(?P<dash>- )?(?:{_KEY}:(?: {_VALUE})?|{_VALUE.replace('value', 'item')})")
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_CONSTANTS: dict[str, Any] = {"null": None, "true": True, "false": False}


class _NotCanonical(Exception):
    """The text is not in render_lock's form: the located loader reads it."""


def _scalar_text(text: str) -> Any:
    if text.startswith('"'):
        if _SURROGATE.search(text):
            raise _NotCanonical  # YAML reads a surrogate pair as two characters, JSON as one
        return json.loads(text)
    if text == "[]":
        return []
    if text == "{}":
        return {}
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    return int(text)


_Token = tuple[int, str, Any]
"""(column, "-" | "key" | "scalar", key or value); a key's value is _OPEN when a block follows."""
_OPEN = object()
_END: _Token = (-1, "end", None)


def _tokens(text: str) -> Iterator[_Token]:
    """The lines of ``text`` as tokens, one line at a time (nothing but the data is kept)."""
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and whole-line comments, as YAML
        m = _LINE.fullmatch(line)
        if m is None:
            raise _NotCanonical
        column = len(m["indent"])
        if m["dash"]:
            yield (column, "-", None)
            column += 2
        if m["key"] is not None:
            key = m["key"]
            name = _scalar_text(key) if key.startswith('"') else key
            value = _OPEN if m["value"] is None else _scalar_text(m["value"])
            yield (column, "key", (name, value))
        else:
            yield (column, "scalar", _scalar_text(m["item"]))
    yield _END


class _Reader:
    """Block YAML in render_lock's form, from tokens, with one token of lookahead."""

    def __init__(self, text: str) -> None:
        self._tokens = _tokens(text)
        self.next = next(self._tokens)

    def take(self) -> _Token:
        token, self.next = self.next, next(self._tokens)
        return token

    def node(self, column: int, depth: int) -> Any:
        if depth > _CANONICAL_DEPTH or self.next[0] != column:
            raise _NotCanonical
        if self.next[1] == "-":
            return self._sequence(column, depth)
        if self.next[1] == "key":
            return self._mapping(column, depth)
        raise _NotCanonical

    def _sequence(self, column: int, depth: int) -> list[Any]:
        items: list[Any] = []
        while self.next[0] == column and self.next[1] == "-":
            self.take()
            at, kind, value = self.next
            if at != column + 2:
                raise _NotCanonical  # "-" alone, its block below (not what the writer writes)
            if kind == "scalar":
                items.append(value)
                self.take()
            else:
                items.append(self.node(column + 2, depth + 1))
        return items

    def _mapping(self, column: int, depth: int) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        while self.next[0] == column and self.next[1] == "key":
            name, value = self.take()[2]
            if name in mapping:
                raise _NotCanonical  # the located loader reports it, with both positions
            if value is _OPEN:
                if self.next[0] <= column:
                    raise _NotCanonical  # "key:" and nothing below: null, not the writer's
                value = self.node(self.next[0], depth + 1)
            mapping[name] = value
        return mapping


def _canonical_data(text: str) -> Any:
    """The plain data of a lock in render_lock's form, as the located loader would read it;
    raises _NotCanonical for any other text."""
    if len(text) > MAX_YAML_CHARS:
        raise _NotCanonical
    reader = _Reader(text)
    data = reader.node(0, 0)
    if reader.next is not _END:
        raise _NotCanonical  # a line at a column no open block has
    return data


def _parse_valid(data: Any) -> Lock | None:
    """The lock ``data`` holds when every entry reads without an error; None when anything
    must be reported (then the located loader reads the file again, for the positions)."""
    try:
        model = _FileModel.model_validate(data)
        entries = [_read_item(item) for item in model.images]
    except (ValidationError, LockRecordError, ValueError):
        return None
    if len({e.key for e in entries}) != len(entries):
        return None  # two entries for one source -> target: reported where they are
    return Lock(tuple(entries), model.version)


def parse_lock(text: str, *, path: str = "imagevet.lock") -> Lock:
    """Read a lock from its text (see the module docstring).

    A file that is not a lock (YAML syntax, ``version``, ``images`` not a list) raises
    PolicyErrors; an entry that cannot be read is an :class:`UnreadableEntry` of the result,
    with the line and column of every problem.

    A valid lock in the writer's own form is read without the located loader (fast); any
    other text, and any lock with a problem to report, through it (for the positions).
    """
    if text.strip():
        try:
            fast = _parse_valid(_canonical_data(text))
        except _NotCanonical:
            fast = None
        if fast is not None:
            return fast
    located = parse_yaml(text, path=path) if text.strip() else Located(path, {"version": 1}, {})
    try:
        model = _FileModel.model_validate(located.data)
    except ValidationError as e:
        raise PolicyErrors(validation_errors(located, e, _FileModel, hints=_HINTS)) from None
    failed = _item_errors(located)
    read: list[tuple[int, Any, EntryKey | None, LockEntry | list[PolicyError]]] = []
    for index, item in enumerate(model.images):
        got = failed[index] if index in failed else _read_item(item)
        key = got.key if isinstance(got, LockEntry) else _item_key(item)
        read.append((index, item, key, got))
    first: dict[EntryKey, int] = {}
    for index, _, key, _ in read:
        if key is not None:
            first.setdefault(key, index)
    twice = {k for k in first if sum(1 for _, _, key, _ in read if key == k) > 1}
    entries: list[LockEntry] = []
    unreadable: list[UnreadableEntry] = []
    for index, item, key, got in read:
        errors = [] if isinstance(got, LockEntry) else list(got)
        if key is not None and key in twice:
            where = first[key]
            if where == index:
                errors.append(located.error(("images", index), f"{key} has another entry below"))
            else:
                errors.append(
                    located.error(
                        ("images", index),
                        f"second entry for {key} (first: images[{where}], "
                        f"{located.location(('images', where))})",
                    )
                )
        if isinstance(got, LockEntry) and not errors:
            entries.append(got)
        else:
            unreadable.append(UnreadableEntry(key, item, tuple(errors)))
    return Lock(tuple(entries), model.version, tuple(unreadable))


def read_lock(path: Path) -> Lock:
    """Read the lock at ``path``: a missing file is an empty lock, a damaged one PolicyErrors."""
    try:
        text = read_yaml_file(path)
    except FileNotFoundError:
        return Lock()
    except OSError as e:
        raise PolicyErrors([PolicyError(str(path), f"cannot read: {e.strerror or e}")]) from None
    except UnicodeDecodeError as e:
        raise PolicyErrors(
            [PolicyError(str(path), f"not UTF-8 text: {e.reason} at byte {e.start}")]
        ) from None
    return parse_lock(text, path=str(path))


def write_lock(path: Path, lock: Lock) -> None:
    """Write ``lock`` to ``path`` atomically: the file is either the old one or the new one.

    Call :func:`carry_resolved_at` first (``write_lock(p, carry_resolved_at(new, read_lock(p)))``)
    so unchanged tags keep their time.  OSError propagates.
    """
    data = render_lock(lock).encode("utf-8")
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ---- diff ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockChange:
    """One tag (or explicit digest, ``tag`` None) that differs between two locks."""

    key: EntryKey
    tag: str | None
    old: Digest | None
    new: Digest | None
    referrers_added: tuple[Digest, ...] = ()
    referrers_removed: tuple[Digest, ...] = ()

    @property
    def name(self) -> str:
        """The tag, or ``@sha256:…`` for an explicit digest."""
        if self.tag is not None:
            return self.tag
        return f"@{self.new or self.old}"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.key.source.name,
            "target": self.key.target.name,
            "tag": self.tag,
            "old": str(self.old) if self.old else None,
            "new": str(self.new) if self.new else None,
            "referrers_added": [str(d) for d in self.referrers_added],
            "referrers_removed": [str(d) for d in self.referrers_removed],
        }


def _short(digest: Digest | None) -> str:
    return f"{digest.algorithm}:{digest.hex[:12]}" if digest else "-"


@dataclass(frozen=True, slots=True)
class LockDiff:
    """What changed from one lock to the next; each list is sorted by entry, then tag."""

    added: tuple[LockChange, ...] = ()
    removed: tuple[LockChange, ...] = ()
    repointed: tuple[LockChange, ...] = ()
    """Same tag, new digest: the upstream tag moved."""
    referrers_changed: tuple[LockChange, ...] = ()
    """Same digest, other referrers (a new signature or SBOM upstream)."""
    unchanged: tuple[LockChange, ...] = ()
    completed: tuple[LockChange, ...] = ()
    """Those of ``unchanged`` whose record gained (or changed) its platform manifests' digests:
    nothing moved upstream, but the lock should be written again (``imagevet lock`` does,
    ``--check`` does not fail on it)."""
    evidence_changed: tuple[LockChange, ...] = ()
    """Same digest and referrers, other evidence (a new scan, evidence recorded for the first
    time): the approval's record changed."""
    verified: tuple[LockChange, ...] = ()
    """Those of ``unchanged`` whose ``verified`` record was added or changed (a signature
    verified under the entry's ``verify:`` rule): written, never a ``--check`` failure."""

    @property
    def has_changes(self) -> bool:
        """Whether the lock's content changed (``imagevet lock --check`` fails on it)."""
        return bool(
            self.added or self.removed or self.repointed or self.referrers_changed
            or self.evidence_changed
        )

    @property
    def needs_write(self) -> bool:
        """Whether the new lock says more than the old one (changes, or records completed)."""
        return self.has_changes or bool(self.completed) or bool(self.verified)

    def render(self) -> str:
        """A human summary: per entry, ``+`` added, ``-`` removed, ``~`` re-pointed, ``*`` referrers."""
        rows: list[tuple[tuple[str, str], int, str, str]] = []
        marks = [
            ("+", self.added),
            ("~", self.repointed),
            ("*", self.referrers_changed),
            ("!", self.evidence_changed),
            ("-", self.removed),
        ]
        for order, (mark, changes) in enumerate(marks):
            for c in changes:
                if mark == "+":
                    text = f"  + {c.name}  {_short(c.new)}"
                elif mark == "-":
                    text = f"  - {c.name}  {_short(c.old)}"
                elif mark == "!":
                    text = f"  ! {c.name}  {_short(c.new)}  evidence changed"
                elif mark == "~":
                    text = (
                        f"  ~ {c.name}  {_short(c.old)} -> {_short(c.new)}  (re-pointed upstream)"
                    )
                else:
                    text = f"  * {c.name}  {_short(c.new)}  referrers +{len(c.referrers_added)} -{len(c.referrers_removed)}"
                rows.append((_key_text(c.key), order, c.name, text))
        lines: list[str] = []
        current: tuple[str, str] | None = None
        for key, _, _, text in sorted(rows):
            if key != current:
                lines.append(f"{key[0]} -> {key[1]}")
                current = key
            lines.append(text)
        summary = (
            f"{len(self.added)} added, {len(self.removed)} removed, {len(self.repointed)} re-pointed, "
            f"{len(self.referrers_changed)} with new referrers, {len(self.unchanged)} unchanged"
        )
        if self.evidence_changed:
            summary += f", {len(self.evidence_changed)} with new evidence"
        if not self.has_changes:
            more = (
                f", {len(self.completed)} given their platform manifests' digests"
                if self.completed
                else ""
            )
            return f"no changes ({len(self.unchanged)} unchanged{more})\n"
        return "\n".join([*lines, summary]) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [c.to_json() for c in self.added],
            "removed": [c.to_json() for c in self.removed],
            "repointed": [c.to_json() for c in self.repointed],
            "referrers_changed": [c.to_json() for c in self.referrers_changed],
            "unchanged": len(self.unchanged),
            "completed": len(self.completed),
            "evidence_changed": [c.to_json() for c in self.evidence_changed],
        }


def _items(entry: LockEntry | None) -> dict[tuple[int, str], tuple[str | None, LockedImage]]:
    if entry is None:
        return {}
    out: dict[tuple[int, str], tuple[str | None, LockedImage]] = {
        (0, t): (t, i) for t, i in entry.tags.items()
    }
    out.update({(1, str(d)): (None, i) for d, i in entry.digests.items()})
    return out


def diff_locks(old: Lock, new: Lock) -> LockDiff:
    """Compare two locks tag by tag (``resolved_at`` is ignored; a record that only gained its
    platform manifests' digests is unchanged, and also listed as ``completed``)."""
    added: list[LockChange] = []
    removed: list[LockChange] = []
    repointed: list[LockChange] = []
    referrers: list[LockChange] = []
    unchanged: list[LockChange] = []
    completed: list[LockChange] = []
    evidence: list[LockChange] = []
    verified: list[LockChange] = []
    keys = sorted({e.key for e in old.entries} | {e.key for e in new.entries}, key=_key_text)
    for key in keys:
        before, after = _items(old.entry(key)), _items(new.entry(key))
        for item in sorted(before.keys() | after.keys()):
            tag, was = before.get(item, (None, None))
            tag2, now = after.get(item, (None, None))
            tag = tag if was is not None else tag2
            if was is None and now is not None:
                added.append(LockChange(key, tag, None, now.digest))
            elif now is None and was is not None:
                removed.append(LockChange(key, tag, was.digest, None))
            elif was is not None and now is not None:
                if was.digest != now.digest:
                    repointed.append(LockChange(key, tag, was.digest, now.digest))
                elif was.referrers != now.referrers:
                    plus = tuple(sorted(set(now.referrers) - set(was.referrers)))
                    minus = tuple(sorted(set(was.referrers) - set(now.referrers)))
                    referrers.append(LockChange(key, tag, was.digest, now.digest, plus, minus))
                elif was.evidence != now.evidence:
                    evidence.append(LockChange(key, tag, was.digest, now.digest))
                else:
                    unchanged.append(LockChange(key, tag, was.digest, now.digest))
                    if was.manifests != now.manifests:
                        completed.append(unchanged[-1])
                    if was.verified != now.verified:
                        verified.append(unchanged[-1])
    return LockDiff(
        tuple(added),
        tuple(removed),
        tuple(repointed),
        tuple(referrers),
        tuple(unchanged),
        tuple(completed),
        tuple(evidence),
        tuple(verified),
    )
