"""The policy file's schema (pydantic, used at the edge only); see docs/policy.md.

Field validators check what one value can check on its own (regexes compile, ranges parse,
platforms, references, digests, templates, dates); the loader checks what needs several values
(duplicate targets, Docker Hub naming, merged defaults).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from imagevet.digest import Digest
from imagevet.errors import InvalidDigestError, InvalidReferenceError
from imagevet.manifest import Platform
from imagevet.policy.model import (
    BACKUP_FIELDS,
    DESCRIPTION_FIELDS,
    NAMING_FIELDS,
    render_template,
    template_fields,
)
from imagevet.policy.versions import InvalidRangeError, VersionRange
from imagevet.reference import Reference, canonical_registry, is_valid_tag

__all__ = [
    "ApprovalModel",
    "AuditModel",
    "EntryModel",
    "HINTS",
    "NotifyModel",
    "PolicyModel",
    "ScanModel",
    "SettingsModel",
    "SignModel",
    "TagRulesModel",
    "TargetModel",
    "VerifyModel",
]

_PLATFORM_PART = re.compile(r"^[a-z0-9][a-z0-9._-]*\Z")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")

HINTS: dict[str, str] = {
    "policy.version": "1",
    "policy.target": "a mapping with registry (or layout), namespace, naming",
    "policy.target.registry": "a registry host such as docker.io or registry.example.com:5000",
    "policy.target.layout": "a directory for OCI image layouts, relative to the policy file, e.g. mirror",
    "policy.target.namespace": "the organization (Docker Hub) or path prefix to mirror into",
    "policy.target.naming": "a template using {name}, {namespace}, {path}",
    "policy.defaults": "a mapping of settings every entry inherits",
    "policy.images": "a list of entries, each with at least source",
    "source": "an upstream repository such as bitnami/redis or ghcr.io/org/app",
    "target": "a repository name inside the target namespace, e.g. redis",
    "name": "a name for the entry (default: the source, e.g. bitnami/redis)",
    "mode": "pinned or follow",
    "platforms": "all, or a list of os/arch[/variant] such as [linux/amd64, linux/arm64]",
    "referrers": "true or false",
    "private": "true or false",
    "description": "a template using {source}, {name}, {namespace}, {path}",
    "backup_tag": "a template using {tag} and {digest12}, {digest} or {date}",
    "teams": "a mapping of team name: read, write, admin or none",
    "approval": "a mapping with approved_by, reason, ticket, approved_on, expires",
    "approval.approved_by": "who vetted the image (a name or email)",
    "approval.approved_on": "a date YYYY-MM-DD",
    "approval.expires": "a date YYYY-MM-DD",
    "tags": "a mapping with allow, deny, range, keep, prereleases, tags, digests",
    "tags.allow": "a list of regular expressions, each matched against the whole tag",
    "tags.deny": "a list of regular expressions, each matched against the whole tag",
    "tags.range": 'a version range such as ">=1.2 <2", "^1.2" or "~1.2"',
    "tags.keep": "a whole number, 1 or more",
    "tags.prereleases": "true or false",
    "tags.tags": 'a list of tag names (quote numbers: "1.10")',
    "tags.digests": "a list of digests such as sha256:<64 hex>",
    "verify": "a mapping with key (a PEM public key file) or key_env (a variable holding one)",
    "verify.key": "a cosign public key file (PEM), relative to the policy file, e.g. keys/cosign.pub",
    "verify.key_env": "the name of an environment variable holding a PEM public key, e.g. UPSTREAM_COSIGN_PUB",
    "policy.audit": "a mapping with checkpoint, public_key",
    "scan": "a mapping with command (a list with {ref}), fail_on, timeout",
    "scan.command": "the scanner's arguments as a list, one of them with {ref}, e.g. [trivy, image, --format, json, '{ref}']",
    "scan.fail_on": "critical, high, medium or low",
    "scan.timeout": "a duration such as 90s, 10m or 1h (at most 24h)",
    "policy.audit.checkpoint": "a repository[:tag] for the ledger checkpoint, e.g. registry.example.com/acme/imagevet-audit:checkpoint",
    "policy.audit.public_key": "the public key printed by imagevet audit keygen: <name>+<8 hex>+<base64>",
    "policy.sign": "a mapping with key (a PEM file) or key_env (a variable holding the PEM), and optionally password_env",
    "policy.sign.key": "the organization's private key file (PEM), relative to the policy file, e.g. org.key",
    "policy.sign.key_env": "the name of an environment variable holding the private key (PEM), e.g. IMAGEVET_SIGN_KEY",
    "policy.sign.password_env": "the name of an environment variable holding the key's password",
    "policy.notify": "a list of targets, each a mapping with type, url_env (docs/notifications.md)",
    "policy.notify.type": "webhook or slack",
    "policy.notify.url_env": "the name of the environment variable holding the webhook URL, e.g. SLACK_WEBHOOK_URL",
    "policy.notify.secret_env": "the name of the environment variable holding the HMAC secret",
    "policy.notify.events": "a list of held-update, sync-failure, approval-expiring, approval-expired, budget-exhausted",
    "policy.notify.expiring_within": "a number of days such as 14d",
}


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(
            f"invalid regular expression '{value}': {e.msg} at position {e.pos}"
        ) from None
    return value


def _range(value: str) -> str:
    try:
        VersionRange.parse(value)
    except InvalidRangeError as e:
        raise ValueError(str(e)) from None
    return value


def _tag(value: str) -> str:
    if not is_valid_tag(value):
        raise ValueError(
            f"invalid tag {value!r}: letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-'"
        )
    return value


def _digest(value: str) -> str:
    try:
        Digest.parse(value)
    except InvalidDigestError as e:
        raise ValueError(str(e)) from None
    return value


def _platform(value: str) -> str:
    if value == "all":
        return value
    try:
        platform = Platform.parse(value)
    except ValueError as e:
        raise ValueError(f"{e}, e.g. linux/amd64 or linux/arm/v7") from None
    parts = [platform.os, platform.architecture, platform.variant or "x"]
    if value != value.strip() or not all(_PLATFORM_PART.match(p) for p in parts):
        raise ValueError(
            f"invalid platform {value!r}: lowercase os/architecture[/variant], e.g. linux/amd64"
        )
    return value


def _platforms_before(value: Any) -> Any:
    if isinstance(value, str):
        if value == "all":
            return ["all"]
        raise ValueError(f"expected all or a list of os/arch[/variant], got the string {value!r}")
    return value


def _platforms_after(value: list[str]) -> list[str]:
    if "all" in value and len(value) > 1:
        raise ValueError("'all' cannot be combined with other platforms")
    if not value:
        raise ValueError("empty list: write all, or list at least one os/arch[/variant]")
    duplicates = sorted({p for p in value if value.count(p) > 1})
    if duplicates:
        raise ValueError(f"listed twice: {', '.join(duplicates)}")
    return value


def _source(value: str) -> str:
    try:
        ref = Reference.parse(value)
    except InvalidReferenceError as e:
        raise ValueError(str(e)) from None
    if ref.tag is not None or ref.digest is not None:
        raise ValueError(f"{value!r}: give the repository only; choose tags under tags:")
    return value


_VERIFIER_KEY_RE = re.compile(r"^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{43}[A-Za-z0-9+/=]=?\Z", re.ASCII)


def _verifier_key(value: str) -> str:
    if not _VERIFIER_KEY_RE.match(value):
        raise ValueError(
            f"invalid public key {value[:60]!r}: <name>+<8 hex>+<base64>, as printed by imagevet audit keygen"
        )
    return value


def _checkpoint_ref(value: str) -> str:
    try:
        ref = Reference.parse(value)
    except InvalidReferenceError as e:
        raise ValueError(str(e)) from None
    if ref.digest is not None:
        raise ValueError(f"{value!r}: a checkpoint is pushed to a tag, not a digest")
    return value


def _host(value: str) -> str:
    try:
        ref = Reference.parse(f"{value}/x/y")
    except InvalidReferenceError:
        ref = None
    if ref is None or ref.registry != canonical_registry(value):
        raise ValueError(
            f"invalid registry host {value!r}: a host name with an optional :port, e.g. docker.io or registry.example.com:5000"
        )
    return value


def _layout_dir(value: str) -> str:
    if not value or value != value.strip():
        raise ValueError(f"invalid layout directory {value!r}: a non-empty path without leading or trailing blanks")
    if "\x00" in value or "\n" in value:
        raise ValueError("invalid layout directory: a path without NUL or line breaks")
    return value


def _path_part(value: str) -> str:
    try:
        Reference.parse(f"example.com/{value}")
    except InvalidReferenceError:
        raise ValueError(
            f"invalid repository path {value!r}: lowercase letters, digits and '.', '_', '-' separators, parts joined by '/'"
        ) from None
    return value


def _template(allowed: tuple[str, ...]) -> Any:
    def check(value: str) -> str:
        try:
            names = template_fields(value)
        except ValueError as e:
            raise ValueError(f"invalid template {value!r}: {e}") from None
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise ValueError(
                f"unknown field {{{unknown[0]}}} in {value!r}; allowed: {', '.join('{' + a + '}' for a in allowed)}"
            )
        return value

    return AfterValidator(check)


def _backup(value: str) -> str:
    names = template_fields(value)
    if "tag" not in names:
        raise ValueError(f"{value!r} must contain {{tag}}")
    if "digest12" not in names and "digest" not in names and "date" not in names:
        raise ValueError(
            f"{value!r} must contain {{digest12}}, {{digest}} or {{date}}, or a backup would be overwritten"
        )
    sample = render_template(
        value, {"tag": "1.2.3", "digest12": "0" * 12, "digest": "0" * 64, "date": "20260101"}
    )
    if not is_valid_tag(sample):
        raise ValueError(f"{value!r} does not give a valid tag (e.g. {sample!r})")
    return value


def _date(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise ValueError(f"invalid date {value!r}: {e}") from None


Regex = Annotated[StrictStr, AfterValidator(_regex)]
RangeText = Annotated[StrictStr, AfterValidator(_range)]
TagName = Annotated[StrictStr, AfterValidator(_tag)]
DigestText = Annotated[StrictStr, AfterValidator(_digest)]
PlatformText = Annotated[StrictStr, AfterValidator(_platform)]
Platforms = Annotated[
    list[PlatformText], BeforeValidator(_platforms_before), AfterValidator(_platforms_after)
]
SourceText = Annotated[StrictStr, AfterValidator(_source)]
HostText = Annotated[StrictStr, AfterValidator(_host)]
LayoutText = Annotated[StrictStr, AfterValidator(_layout_dir)]
PathText = Annotated[StrictStr, AfterValidator(_path_part)]
NonEmpty = Annotated[StrictStr, Field(min_length=1)]
Date = Annotated[date, BeforeValidator(_date)]
Permission = Literal["read", "write", "admin", "none"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagRulesModel(_Model):
    allow: list[Regex] | None = None
    deny: list[Regex] | None = None
    range: RangeText | None = None
    keep: Annotated[StrictInt, Field(ge=1)] | None = None
    prereleases: StrictBool | None = None
    tags: list[TagName] | None = None
    digests: list[DigestText] | None = None


class ApprovalModel(_Model):
    approved_by: NonEmpty | None = None
    reason: StrictStr | None = None
    ticket: StrictStr | None = None
    approved_on: Date | None = None
    expires: Date | None = None


class TargetModel(_Model):
    registry: HostText | None = None
    """None: ``docker.io``, unless ``layout`` is set."""
    layout: LayoutText | None = None
    """A directory holding one OCI image layout per repository (exclusive with ``registry``)."""
    namespace: PathText
    naming: Annotated[StrictStr, _template(NAMING_FIELDS)] = "{name}"


_DURATION_RE = re.compile(r"^([1-9][0-9]{0,5})(s|m|h)\Z")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}
SCAN_TIMEOUT_MAX = 24 * 3600


def duration_seconds(value: str) -> int:
    """Seconds in a duration ``90s``, ``10m``, ``1h`` (checked by the schema first)."""
    m = _DURATION_RE.match(value)
    assert m is not None
    return int(m[1]) * _DURATION_UNITS[m[2]]


def _duration(value: str) -> str:
    m = _DURATION_RE.match(value)
    if m is None:
        raise ValueError(f"invalid duration {value[:40]!r}: a whole number and s, m or h, e.g. 90s or 10m")
    if duration_seconds(value) > SCAN_TIMEOUT_MAX:
        raise ValueError(f"{value!r} is longer than 24h")
    return value


def _scan_command(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("empty command: give the scanner and its arguments, e.g. [trivy, image, --format, json, '{ref}']")
    if not any("{ref}" in arg for arg in value):
        raise ValueError("no argument holds {ref}, the pinned reference (repo@sha256:...) to scan")
    if any("\x00" in arg for arg in value):
        raise ValueError("an argument holds a NUL character")
    return value


class ScanModel(_Model):
    """The vulnerability scanner hook (see docs/evidence.md)."""

    command: Annotated[list[StrictStr], AfterValidator(_scan_command)] | None = None
    fail_on: Literal["critical", "high", "medium", "low"] | None = None
    timeout: Annotated[StrictStr, AfterValidator(_duration)] | None = None


_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")


def _env_name(value: str) -> str:
    """A variable's name (``key_env``, ``url_env``, ...); the error never echoes the value,
    which may be the secret itself (a URL, a PEM key) put where its name belongs."""
    if not _ENV_NAME_RE.match(value):
        raise ValueError(
            "expected the name of an environment variable (letters, digits, '_', not starting "
            "with a digit), e.g. SLACK_WEBHOOK_URL; the value itself never goes in the policy"
        )
    return value


def _key_path(value: str) -> str:
    if not value or value != value.strip() or "\x00" in value or "\n" in value:
        raise ValueError(f"invalid key file {value[:80]!r}: a path without leading or trailing blanks, NUL or line breaks")
    return value


def _whole_regexp(value: str) -> str:
    if len(value) > 1024:
        raise ValueError(f"a pattern of {len(value)} characters: at most 1024")
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"invalid regular expression: {e}") from None
    return value


class VerifyModel(_Model):
    """``verify:``: the cosign signature each selected digest must carry (docs/verify.md): by a
    key, or keyless by an identity."""

    key: Annotated[StrictStr, AfterValidator(_key_path)] | None = None
    key_env: Annotated[StrictStr, AfterValidator(_env_name)] | None = None
    identity: NonEmpty | None = None
    identity_regexp: Annotated[StrictStr, AfterValidator(_whole_regexp)] | None = None
    issuer: NonEmpty | None = None
    issuer_regexp: Annotated[StrictStr, AfterValidator(_whole_regexp)] | None = None
    trust_root: Annotated[StrictStr, AfterValidator(_key_path)] | None = None

    @model_validator(mode="after")
    def _one_key(self) -> VerifyModel:
        keyless = [self.identity, self.identity_regexp, self.issuer, self.issuer_regexp, self.trust_root]
        if any(v is not None for v in keyless):
            if self.key is not None or self.key_env is not None:
                raise ValueError("a key (key, key_env) or a keyless identity (identity, issuer), not both")
            if (self.identity is None) == (self.identity_regexp is None):
                raise ValueError("keyless: give exactly one of identity or identity_regexp (the certificate's subject)")
            if (self.issuer is None) == (self.issuer_regexp is None):
                raise ValueError("keyless: give exactly one of issuer or issuer_regexp (the OIDC issuer)")
            return self
        if (self.key is None) == (self.key_env is None):
            raise ValueError(
                "give exactly one of key (a PEM file) or key_env (a variable holding the PEM), "
                "or a keyless identity and issuer"
            )
        return self


class SettingsModel(_Model):
    """What ``defaults`` sets for every entry and an entry may override."""

    mode: Literal["pinned", "follow"] | None = None
    platforms: Platforms | None = None
    referrers: StrictBool | None = None
    tags: TagRulesModel | None = None
    backup_tag: Annotated[StrictStr, _template(BACKUP_FIELDS), AfterValidator(_backup)] | None = (
        None
    )
    approval: ApprovalModel | None = None
    private: StrictBool | None = None
    description: Annotated[StrictStr, _template(DESCRIPTION_FIELDS)] | None = None
    teams: dict[NonEmpty, Permission] | None = None
    scan: ScanModel | None = None
    verify: VerifyModel | None = None


class EntryModel(SettingsModel):
    name: NonEmpty | None = None
    source: SourceText
    target: PathText | None = None


class AuditModel(_Model):
    checkpoint: Annotated[StrictStr, AfterValidator(_checkpoint_ref)] | None = None
    public_key: Annotated[StrictStr, AfterValidator(_verifier_key)] | None = None


# -- notify: notification targets (docs/notifications.md) ----------------------------------------

_DAYS_RE = re.compile(r"^(\d{1,3})d\Z")


def _no_literal_url(value: str) -> str:
    raise ValueError(
        "a webhook URL is a secret (its path or query is the credential): put it in an "
        "environment variable and name that variable with url_env"
    )


def _days(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number of days such as 14d")
    if isinstance(value, int):
        days = value
    elif isinstance(value, str) and _DAYS_RE.match(value):
        days = int(value[:-1])
    else:
        raise ValueError(f"expected a number of days such as 14d, got {str(value)[:40]!r}")
    if not 0 <= days <= 366:
        raise ValueError(f"expected 0d to 366d, got {days}d")
    return days


NotifyEvent = Literal[
    "held-update", "sync-failure", "approval-expiring", "approval-expired", "budget-exhausted"
]


class NotifyModel(_Model):
    type: Literal["webhook", "slack"]
    url_env: Annotated[StrictStr, AfterValidator(_env_name)]
    secret_env: Annotated[StrictStr, AfterValidator(_env_name)] | None = None
    events: Annotated[list[NotifyEvent], Field(min_length=1)] | None = None
    expiring_within: Annotated[int, BeforeValidator(_days)] = 14
    url: Annotated[StrictStr, AfterValidator(_no_literal_url)] | None = None
    """Never valid: here to refuse a literal URL with a message that says what to do instead."""


EnvName = Annotated[StrictStr, AfterValidator(_env_name)]


class SignModel(_Model):
    """``sign:``: the organization's key, which signs an attestation for every mirror."""

    key: NonEmpty | None = None
    key_env: EnvName | None = None
    password_env: EnvName | None = None

    @model_validator(mode="after")
    def _one_key(self) -> SignModel:
        if (self.key is None) == (self.key_env is None):
            raise ValueError("give exactly one of key (a PEM file) or key_env (a variable holding the PEM)")
        return self


class PolicyModel(_Model):
    version: Literal[1]
    target: TargetModel
    defaults: SettingsModel | None = None
    images: list[EntryModel]
    audit: AuditModel | None = None
    sign: SignModel | None = None
    notify: list[NotifyModel] | None = None
