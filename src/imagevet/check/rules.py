"""The rules ``imagevet check`` applies: stable ids, names, severities and help texts."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "COMMUNITY_DIGEST_NOT_VETTED",
    "COMMUNITY_HAS_MIRROR",
    "COMMUNITY_NOT_VETTED",
    "COMMUNITY_TAG_NOT_VETTED",
    "INVALID_REFERENCE",
    "MIRROR_DIGEST_NOT_VETTED",
    "MIRROR_NOT_PINNED",
    "MIRROR_TAG_NOT_VETTED",
    "OFFICIAL_BLOCKED",
    "OTHER_REGISTRY",
    "PARSE_ERROR",
    "RULES",
    "RULES_BY_ID",
    "Rule",
    "Severity",
    "UNRESOLVED",
    "VERIFIED_BLOCKED",
]


class Severity(enum.StrEnum):
    """How bad a result is; the names are SARIF's ``level`` values."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, threshold: Severity) -> bool:
        """Whether this severity is ``threshold`` or worse."""
        return self.rank >= threshold.rank


_RANK = {Severity.NOTE: 1, Severity.WARNING: 2, Severity.ERROR: 3}


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: ``id`` never changes meaning once released; ``name`` is its kebab-case title."""

    id: str
    name: str
    severity: Severity
    summary: str
    help: str
    fixable: bool = False


COMMUNITY_HAS_MIRROR = Rule(
    "IV001", "use-vetted-mirror", Severity.ERROR,
    "Community image that has a vetted mirror",
    "The organization mirrors this image after vetting it. Pull the mirror, pinned to the vetted "
    "digest, instead of the community original (Image Access Management blocks community images, "
    "and where it is not enforced the original may change under the same tag). `imagevet check "
    "--fix` rewrites the reference.",
    fixable=True,
)
COMMUNITY_TAG_NOT_VETTED = Rule(
    "IV002", "tag-not-vetted", Severity.ERROR,
    "Community image whose repository is mirrored, but not this tag",
    "The repository has a vetted mirror, but the tag used here was not selected for vetting. Use "
    "one of the vetted tags, or ask for this tag to be added to the policy.",
)
COMMUNITY_DIGEST_NOT_VETTED = Rule(
    "IV003", "digest-not-vetted", Severity.ERROR,
    "Community image pinned to a digest that was not vetted",
    "The repository has a vetted mirror, but the digest pinned here is not one of the vetted "
    "digests. Use a vetted tag of the mirror, pinned to its digest.",
)
COMMUNITY_NOT_VETTED = Rule(
    "IV004", "request-vetting", Severity.ERROR,
    "Community image with no vetted mirror",
    "Nobody has vetted this community image for the organization and Image Access Management "
    "blocks community images for its members. Ask for it to be vetted (added to the imagevet "
    "policy and mirrored), or use an official or organization image.",
)
MIRROR_DIGEST_NOT_VETTED = Rule(
    "IV005", "mirror-digest-not-vetted", Severity.ERROR,
    "Vetted mirror pinned to a digest that was not vetted",
    "The reference names the organization's vetted mirror but pins a digest that is not in the "
    "lock: it was never vetted. Pin the digest the lock records for the tag.",
    fixable=True,
)
MIRROR_TAG_NOT_VETTED = Rule(
    "IV006", "mirror-tag-not-vetted", Severity.WARNING,
    "Vetted mirror used with a tag that was not vetted",
    "The reference names the organization's vetted mirror with a tag the lock does not record. "
    "Use a vetted tag, pinned to its digest.",
)
MIRROR_NOT_PINNED = Rule(
    "IV007", "pin-mirror-digest", Severity.NOTE,
    "Vetted mirror tag not pinned by digest",
    "The tag is vetted; pinning the vetted digest makes the build pull exactly what was vetted "
    "even if the tag moves. `imagevet check --fix` adds the digest.",
    fixable=True,
)
OFFICIAL_BLOCKED = Rule(
    "IV010", "official-image-blocked", Severity.ERROR,
    "Docker Official Image blocked by Image Access Management",
    "The organization's Image Access Management does not allow Docker Official Images. Use the "
    "vetted mirror when there is one, or an organization image.",
    fixable=True,
)
VERIFIED_BLOCKED = Rule(
    "IV011", "verified-publisher-blocked", Severity.ERROR,
    "Verified Publisher image blocked by Image Access Management",
    "The organization's Image Access Management does not allow Docker Verified Publisher images. "
    "Use the vetted mirror when there is one, or an organization image.",
    fixable=True,
)
OTHER_REGISTRY = Rule(
    "IV020", "other-registry", Severity.NOTE,
    "Image from a registry other than Docker Hub",
    "Image Access Management covers Docker Hub only; this registry is governed by Registry Access "
    "Management (if at all). Shown for completeness.",
)
UNRESOLVED = Rule(
    "IV030", "unresolved-reference", Severity.WARNING,
    "Image reference that depends on variables or templates",
    "The reference is built from a build argument, an environment variable or a template that the "
    "scan cannot know, so it cannot be judged. Give the variable a default, or check the rendered "
    "output.",
)
INVALID_REFERENCE = Rule(
    "IV031", "invalid-reference", Severity.ERROR,
    "Not a valid image reference",
    "The text in an image position does not follow the reference grammar (lowercase repository, "
    "tag of letters, digits, '_', '.', '-', digest algorithm:hex); a pull would fail.",
)
PARSE_ERROR = Rule(
    "IV032", "parse-error", Severity.ERROR,
    "File could not be parsed",
    "The file could not be read or parsed, so its image references were not checked. The other "
    "files were.",
)

RULES: tuple[Rule, ...] = (
    COMMUNITY_HAS_MIRROR,
    COMMUNITY_TAG_NOT_VETTED,
    COMMUNITY_DIGEST_NOT_VETTED,
    COMMUNITY_NOT_VETTED,
    MIRROR_DIGEST_NOT_VETTED,
    MIRROR_TAG_NOT_VETTED,
    MIRROR_NOT_PINNED,
    OFFICIAL_BLOCKED,
    VERIFIED_BLOCKED,
    OTHER_REGISTRY,
    UNRESOLVED,
    INVALID_REFERENCE,
    PARSE_ERROR,
)
"""Every rule, in id order."""

RULES_BY_ID = {rule.id: rule for rule in RULES}
