"""Image Access Management categories and the rules that need no network to apply.

Docker Hub's IAM sorts every Hub image into one category (dockerhub-api.md §8):

1. not on Docker Hub                   -> OTHER_REGISTRY (outside IAM; RAM governs it)
2. namespace ``library``               -> OFFICIAL (Docker Official Image)
3. namespace equal to the org          -> ORGANIZATION (always allowed once IAM is on)
4. otherwise by the publisher's badge  -> VERIFIED_PUBLISHER, SPONSORED_OSS or COMMUNITY

Step 4 needs the Hub catalog (``imagevet.hub.categories``); :func:`classify_static` does 1-3
and returns ``None`` where the badge decides.  IAM treats Docker-Sponsored Open Source as
Community: it cannot be allowed on its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from imagevet.reference import Reference

__all__ = ["AccessSettings", "Category", "Classification", "classify_static", "is_allowed"]


class Category(enum.StrEnum):
    """Where Image Access Management puts an image."""

    OFFICIAL = "official"
    VERIFIED_PUBLISHER = "verified_publisher"
    SPONSORED_OSS = "sponsored_oss"
    ORGANIZATION = "organization"
    COMMUNITY = "community"
    OTHER_REGISTRY = "other_registry"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Category.OFFICIAL: "Docker Official Image",
    Category.VERIFIED_PUBLISHER: "Verified Publisher",
    Category.SPONSORED_OSS: "Docker-Sponsored Open Source",
    Category.ORGANIZATION: "Organization image",
    Category.COMMUNITY: "Community image",
    Category.OTHER_REGISTRY: "Other registry",
}


@dataclass(frozen=True, slots=True)
class Classification:
    """The category of one repository; ``verified`` is False when the Hub lookup failed."""

    reference: Reference
    category: Category
    verified: bool = True

    def describe(self) -> str:
        return self.category.label + ("" if self.verified else " (unverified)")


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """An organization's IAM settings (``GET /v2/orgs/{org}/settings`` → ``restricted_images``)."""

    org: str
    enabled: bool
    allow_official: bool = True
    allow_verified_publishers: bool = True


def classify_static(ref: Reference, org: str | None) -> Category | None:
    """Apply the rules that need no lookup; ``None`` means the Hub badge decides."""
    if not ref.is_docker_hub:
        return Category.OTHER_REGISTRY
    namespace = ref.repository.split("/", 1)[0]
    if namespace == "library":
        return Category.OFFICIAL
    if org is not None and namespace == org.lower():
        return Category.ORGANIZATION
    return None


def is_allowed(category: Category, settings: AccessSettings) -> bool:
    """Whether IAM lets a signed-in org member pull an image of ``category``."""
    if not settings.enabled or category in (Category.ORGANIZATION, Category.OTHER_REGISTRY):
        return True
    if category is Category.OFFICIAL:
        return settings.allow_official
    if category is Category.VERIFIED_PUBLISHER:
        return settings.allow_verified_publishers
    return False  # community, sponsored OSS
