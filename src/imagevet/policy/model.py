"""The loaded policy as frozen values: Policy, Target, Entry, TagRules, Approval.

These are what the rest of imagevet works with; the YAML schema and its validation live in
``imagevet.policy.schema`` and ``imagevet.policy.loader`` and never leak out.
"""

from __future__ import annotations

import enum
import os.path
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from imagevet.digest import Digest
from imagevet.manifest import Platform
from imagevet.policy.versions import VersionRange
from imagevet.reference import DOCKER_HUB, Reference
from imagevet.repository_spec import RepoSpec, TeamPermission

__all__ = [
    "AUDIT_REPOSITORY",
    "Approval",
    "Audit",
    "BACKUP_FIELDS",
    "DEFAULT_BACKUP_TAG",
    "DEFAULT_DESCRIPTION",
    "DEFAULT_NAMING",
    "DEFAULT_SCAN_TIMEOUT",
    "DESCRIPTION_FIELDS",
    "Entry",
    "EntryKey",
    "KeySource",
    "KeylessRule",
    "Location",
    "Mode",
    "NAMING_FIELDS",
    "NOTIFY_EVENTS",
    "NotifyTarget",
    "Policy",
    "Scan",
    "Sign",
    "TagRules",
    "Target",
    "VerifyRule",
    "backup_tag_pattern",
    "render_template",
    "template_fields",
]

DEFAULT_NAMING = "{name}"
DEFAULT_DESCRIPTION = "Vetted mirror of {source}"
DEFAULT_BACKUP_TAG = "{tag}-backup-{digest12}"

NAMING_FIELDS = ("name", "namespace", "path")
DESCRIPTION_FIELDS = ("source", "name", "namespace", "path")
BACKUP_FIELDS = ("tag", "digest12", "digest", "date")


class Mode(enum.StrEnum):
    """How upstream changes reach the mirror."""

    PINNED = "pinned"
    """Only the digests in the lock are mirrored; a moved upstream tag waits for a new lock."""
    FOLLOW = "follow"
    """Upstream changes are mirrored as they come; the replaced digest keeps a backup tag."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was written: 1-based line and column in ``path``."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class EntryKey:
    """What the lock files an entry under: its source and target repositories."""

    source: Reference
    target: Reference

    def __str__(self) -> str:
        return f"{self.source.name} -> {self.target.name}"


@dataclass(frozen=True, slots=True)
class TagRules:
    """Which upstream tags an entry mirrors (applied by :func:`imagevet.policy.select_tags`).

    ``allow``/``deny`` are matched against the whole tag (anchored).  ``tags`` and ``digests``
    are taken as they are, whatever the other rules say.
    """

    allow: tuple[re.Pattern[str], ...] = ()
    deny: tuple[re.Pattern[str], ...] = ()
    range: VersionRange | None = None
    keep: int | None = None
    prereleases: bool = False
    tags: tuple[str, ...] = ()
    digests: tuple[Digest, ...] = ()

    @property
    def orders_versions(self) -> bool:
        """Whether ``range`` or ``keep`` is set: then only version tags pass the patterns."""
        return self.range is not None or self.keep is not None


@dataclass(frozen=True, slots=True)
class Approval:
    """Who vetted an entry, why, where it was recorded, and until when it holds."""

    approved_by: str
    reason: str | None = None
    ticket: str | None = None
    approved_on: date | None = None
    expires: date | None = None

    def expired(self, now: datetime) -> bool:
        """Whether the approval has run out at ``now``: it holds through its ``expires`` day (UTC)."""
        if self.expires is None:
            return False
        return now.astimezone(UTC).date() > self.expires

    def describe(self) -> str:
        """``approved by alice (SEC-1), expires 2026-12-31``."""
        out = f"approved by {self.approved_by}"
        if self.ticket:
            out += f" ({self.ticket})"
        if self.expires is not None:
            out += f", expires {self.expires.isoformat()}"
        return out


DEFAULT_SCAN_TIMEOUT = 600
"""Seconds a scanner may run (``scan.timeout``, default 10m)."""


@dataclass(frozen=True, slots=True)
class Scan:
    """The vulnerability scanner an entry's digests are scanned with (docs/evidence.md):
    ``command`` with ``{ref}`` for the pinned source reference, the severity at or above which
    a tag is held, and how long the scanner may run."""

    command: tuple[str, ...]
    fail_on: str
    timeout: int = DEFAULT_SCAN_TIMEOUT

    def argv(self, ref: str) -> list[str]:
        """The command with ``{ref}`` replaced by ``ref`` in every argument (no shell)."""
        return [arg.replace("{ref}", ref) for arg in self.command]


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where a public key comes from: a PEM file (resolved from the policy file's directory) or
    an environment variable holding the PEM.  The CLI reads it; nothing below it does."""

    path: str | None = None
    env: str | None = None
    location: Location | None = field(default=None, compare=False)

    def describe(self) -> str:
        return f"${self.env}" if self.env is not None else str(self.path)


@dataclass(frozen=True, slots=True)
class KeylessRule:
    """Whose keyless (Sigstore) signature is wanted: the Fulcio certificate's subject (its SAN:
    an email or a URI) and OIDC issuer, each exact or a whole-value regular expression, checked
    offline against ``trust_root`` (a ``trusted_root.json`` resolved from the policy file's
    directory; None: Sigstore's public-good root as the ``sigstore`` package ships it)."""

    subject: str | None = None
    subject_pattern: str | None = None
    issuer: str | None = None
    issuer_pattern: str | None = None
    trust_root: str | None = None
    location: Location | None = field(default=None, compare=False)

    def describe(self) -> str:
        who = self.subject if self.subject is not None else f"/{self.subject_pattern}/"
        by = self.issuer if self.issuer is not None else f"/{self.issuer_pattern}/"
        return f"keyless {who} from {by}"


@dataclass(frozen=True, slots=True)
class VerifyRule:
    """An entry's ``verify:``: each digest it mirrors needs a valid cosign signature by one of
    ``keys``, or, with ``keyless``, a keyless signature by that identity (docs/verify.md)."""

    keys: tuple[KeySource, ...] = ()
    location: Location | None = field(default=None, compare=False)
    keyless: KeylessRule | None = None

    def describe(self) -> str:
        if self.keyless is not None:
            return self.keyless.describe()
        return "key " + ", ".join(k.describe() for k in self.keys)


@dataclass(frozen=True, slots=True)
class Target:
    """Where every mirror goes: ``registry/namespace/<name>``, with ``naming`` giving ``<name>``;
    or, with ``layout`` (then ``registry`` is ``""``), the OCI image layout directory
    ``oci:<layout>/<namespace>/<name>``, one layout per repository."""

    registry: str
    namespace: str
    naming: str = DEFAULT_NAMING
    layout: str | None = None
    """The layout directory, relative to the current directory (the loader resolved it from the
    policy file's directory) and normalised; None for a registry target."""

    @property
    def is_layout(self) -> bool:
        return self.layout is not None

    @property
    def is_docker_hub(self) -> bool:
        """Whether mirrors go to Docker Hub (its repository manager applies); never for a layout."""
        return self.layout is None and self.registry == DOCKER_HUB

    def repository(self, name: str) -> Reference:
        """The target repository of a mirror called ``name`` (no tag, no digest)."""
        if self.layout is not None:
            path = os.path.normpath(os.path.join(self.layout, self.namespace, name))
            return Reference("", path, scheme="oci")
        return Reference.parse(f"{self.registry}/{self.namespace}/{name}")


@dataclass(frozen=True, slots=True)
class Entry:
    """One vetted image: what to mirror from ``source`` into ``target`` and under which rules."""

    name: str
    source: Reference
    """The upstream repository (no tag, no digest)."""
    target: Reference
    """The mirror repository (no tag, no digest)."""
    tags: TagRules
    approval: Approval
    mode: Mode = Mode.PINNED
    platforms: tuple[Platform, ...] | None = None
    """``None``: every platform, the index copied as it is.  A subset rewrites the index."""
    referrers: bool = True
    backup_tag: str = DEFAULT_BACKUP_TAG
    private: bool = True
    description: str = ""
    teams: Mapping[str, TeamPermission] = field(default_factory=dict)
    location: Location | None = None
    scan: Scan | None = None
    """The scanner hook; None: no scan (the default)."""
    verify: VerifyRule | None = None
    """The signature each mirrored digest must carry; None: none is checked."""

    @property
    def key(self) -> EntryKey:
        return EntryKey(self.source, self.target)

    @property
    def rewrites_index(self) -> bool:
        """Whether the mirror's index digest differs from the source's (a platform subset)."""
        return self.platforms is not None

    def repo_spec(self) -> RepoSpec:
        """The desired state of the target repository, for a RepositoryManager."""
        namespace, _, name = self.target.repository.rpartition("/")
        return RepoSpec(
            namespace=namespace,
            name=name,
            private=self.private,
            description=self.description,
            teams=dict(self.teams),
        )

    def backup_tag_for(self, tag: str, old: Digest, now: datetime) -> str:
        """The tag that keeps ``old`` when ``tag`` is re-pointed (from the ``backup_tag`` template)."""
        return render_template(
            self.backup_tag,
            {
                "tag": tag,
                "digest12": old.hex[:12],
                "digest": old.hex,
                "date": now.astimezone(UTC).strftime("%Y%m%d"),
            },
        )


AUDIT_REPOSITORY = "imagevet-audit"
"""The default checkpoint repository inside the target namespace."""


@dataclass(frozen=True, slots=True)
class Audit:
    """Where the audit ledger's signed checkpoint is pushed and the public key that checks it."""

    checkpoint: Reference | None = None
    """The checkpoint artifact (with its tag); None: ``<registry>/<namespace>/imagevet-audit:checkpoint``
    (for a layout target ``oci:<layout>/<namespace>/imagevet-audit:checkpoint``)."""
    public_key: str | None = None
    """The organization's Ed25519 verifier key (``<name>+<key id>+<base64>``, from ``audit keygen``)."""


NOTIFY_EVENTS = (
    "held-update", "sync-failure", "approval-expiring", "approval-expired", "budget-exhausted",
)
"""The event kinds a notification target can subscribe to (``imagevet.notify.EventKind``)."""


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    """One notification target of the ``notify:`` section (docs/notifications.md).

    The policy names where the secrets are, never the secrets: ``url_env`` is the environment
    variable holding the webhook URL, ``secret_env`` the one holding the HMAC key.
    """

    type: str
    """``webhook`` (imagevet's JSON body) or ``slack`` (an incoming webhook)."""
    url_env: str
    secret_env: str | None = None
    events: frozenset[str] | None = None
    """The event kinds sent there (None: every kind in :data:`NOTIFY_EVENTS`)."""
    expiring_within: int = 14
    """Days before an approval's ``expires`` date that ``approval-expiring`` is sent."""
    location: Location | None = None

    def wants(self, kind: str) -> bool:
        return self.events is None or kind in self.events


@dataclass(frozen=True, slots=True)
class Sign:
    """``sign:``: where the organization's signing key comes from (the CLI reads it; the key
    never appears in the policy).  Exactly one of ``key_file`` and ``key_env``."""

    key_file: Path | None = None
    """The PEM private key file (made absolute against the policy file's directory)."""
    key_env: str | None = None
    """The environment variable holding the PEM private key."""
    password_env: str | None = None
    """The environment variable holding the key's password, for an encrypted key."""


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded, valid policy file."""

    path: Path
    target: Target
    entries: tuple[Entry, ...]
    version: int = 1
    audit: Audit = field(default_factory=Audit)
    sign: Sign | None = None
    """The organization's signing key (``sign:``); None: mirrors are not signed."""
    notify: tuple[NotifyTarget, ...] = ()
    """Where notifications go (none by default: nothing is sent)."""

    @property
    def checkpoint_ref(self) -> Reference:
        """Where the audit ledger's latest signed checkpoint is pushed."""
        if self.audit.checkpoint is not None:
            return self.audit.checkpoint
        if self.target.layout is not None:
            return self.target.repository(AUDIT_REPOSITORY).with_tag("checkpoint")
        return Reference(self.target.registry, f"{self.target.namespace}/{AUDIT_REPOSITORY}", "checkpoint")

    def entry(self, name: str) -> Entry:
        """The entry called ``name``; KeyError if there is none."""
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    def expired(self, now: datetime) -> list[Entry]:
        """The entries whose approval has run out at ``now``."""
        return [e for e in self.entries if e.approval.expired(now)]


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names a template uses; ValueError for conversions, specs or bad braces."""
    names: list[str] = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"'{{{name}}}': no format spec or conversion allowed")
        if not name.isidentifier():
            raise ValueError(f"'{{{name}}}' is not a field name")
        names.append(name)
    return names


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{field}``s of a template already checked with :func:`template_fields`."""
    return template.format_map(dict(values))


_BACKUP_PARTS = {
    "tag": r"[\w][\w.-]*",
    "digest12": r"[0-9a-f]{12}",
    "digest": r"(?:[0-9a-f]{64}|[0-9a-f]{128})",
    "date": r"[0-9]{8}",
}


def backup_tag_pattern(template: str) -> re.Pattern[str]:
    """A regex matching every tag the backup template can produce (those are never pruned)."""
    out = ""
    for literal, name, _, _ in string.Formatter().parse(template):
        out += re.escape(literal)
        if name is not None:
            out += _BACKUP_PARTS.get(name, ".+")
    return re.compile(out)
