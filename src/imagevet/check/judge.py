"""Judge each found reference against the org's IAM settings and its vetted mirrors (pure).

In order, for a reference ``ref`` (digest pins decide what is pulled; a tagless, digestless
reference means ``:latest``):

1. ``ref`` names a vetted mirror: pinned to a vetted digest -> ok; to another digest -> IV005;
   a vetted tag not pinned -> IV007 (note, fixable); a tag that is not vetted -> IV006.
2. Its category (from ``categories``, else :func:`~imagevet.category.classify_static`; a Hub
   repository nobody looked up is treated as Community, *unverified*, and the message says so):

   * Organization image -> ok;
   * Official / Verified Publisher -> ok when IAM allows the category, else IV010 / IV011
     (with the vetted mirror as replacement when there is one);
   * Community (and Docker-Sponsored Open Source, which IAM treats as Community), and images on
     other registries that the policy mirrors: a vetted mirror matching the tag or digest ->
     IV001 with the replacement; mirrored but not this tag -> IV002; not this digest -> IV003;
     not mirrored -> IV004 (other registries: IV020, a note).

Unresolved, invalid and unparseable findings map to IV030, IV031 and IV032.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from imagevet.category import AccessSettings, Category, Classification, classify_static, is_allowed
from imagevet.check.model import FindingKind, FoundImage
from imagevet.check.rules import (
    COMMUNITY_DIGEST_NOT_VETTED,
    COMMUNITY_HAS_MIRROR,
    COMMUNITY_NOT_VETTED,
    COMMUNITY_TAG_NOT_VETTED,
    INVALID_REFERENCE,
    MIRROR_DIGEST_NOT_VETTED,
    MIRROR_NOT_PINNED,
    MIRROR_TAG_NOT_VETTED,
    OFFICIAL_BLOCKED,
    OTHER_REGISTRY,
    PARSE_ERROR,
    UNRESOLVED,
    VERIFIED_BLOCKED,
    Rule,
    Severity,
)
from imagevet.check.vetted import VettedImage
from imagevet.reference import DEFAULT_TAG, Reference

__all__ = [
    "CheckContext",
    "Judge",
    "Verdict",
    "judge_all",
    "repositories_to_classify",
]

_MAX_LISTED_TAGS = 5


@dataclass(frozen=True, slots=True)
class CheckContext:
    """Everything the judgement needs, as plain data.

    ``access`` are the org's IAM settings (read from the Hub, or declared for offline use);
    ``categories`` maps a repository's :attr:`Reference.name` (``docker.io/bitnami/redis``) to its
    classification (from :class:`imagevet.hub.categories.CatalogClassifier`); ``vetted`` are the
    mirrors.  ``access_source`` says where ``access`` came from, for messages.
    """

    org: str | None
    access: AccessSettings
    vetted: Sequence[VettedImage] = ()
    categories: Mapping[str, Classification] = field(default_factory=dict)
    access_source: str = "declared"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judgement of one finding: the rule it breaks (None: ok), why, and what to use instead."""

    found: FoundImage
    rule: Rule | None
    message: str
    suggestion: str = ""
    category: Classification | None = None
    replacement: Reference | None = None

    @property
    def ok(self) -> bool:
        return self.rule is None

    @property
    def severity(self) -> Severity | None:
        return self.rule.severity if self.rule else None

    @property
    def fixable(self) -> bool:
        """Whether ``--fix`` can rewrite this reference to ``replacement``."""
        return self.replacement is not None and self.found.fix is not None


def _tag(ref: Reference) -> str:
    return ref.tag or DEFAULT_TAG


def _short(ref: Reference) -> str:
    return ref.familiar


def _describe(category: Classification) -> str:
    text = category.describe()
    if category.category is Category.SPONSORED_OSS:
        text += ", which IAM treats as Community"
    return text


def _listed(tags: Iterable[str]) -> str:
    tags = sorted(tags)
    more = f" and {len(tags) - _MAX_LISTED_TAGS} more" if len(tags) > _MAX_LISTED_TAGS else ""
    return ", ".join(tags[:_MAX_LISTED_TAGS]) + more if tags else "none"


class Judge:
    """Applies the rules of the module docstring with the context's mirrors indexed."""

    def __init__(self, context: CheckContext) -> None:
        self.context = context
        self._by_mirror = {v.mirror.name: v for v in reversed(context.vetted)}
        self._by_source = {v.source.name: v for v in reversed(context.vetted)}

    def classify(self, ref: Reference) -> Classification:
        """The category of ``ref``'s repository: looked up, static, or Community (unverified)."""
        known = self.context.categories.get(ref.name)
        if known is not None:
            return known
        static = classify_static(ref, self.context.org)
        if static is not None:
            return Classification(ref.repo(), static)
        return Classification(ref.repo(), Category.COMMUNITY, verified=False)

    def judge(self, found: FoundImage) -> Verdict:
        """Judge one finding."""
        if found.kind is FindingKind.PARSE_ERROR:
            return Verdict(found, PARSE_ERROR, f"cannot parse {found.source} file: {found.detail}",
                           "fix the syntax; the rest of the scan went on")
        if found.kind is FindingKind.INVALID:
            return Verdict(found, INVALID_REFERENCE,
                           f"{found.text!r} is not a valid image reference: {found.detail}")
        if found.kind is FindingKind.UNRESOLVED or found.reference is None:
            return Verdict(found, UNRESOLVED, f"{found.text} cannot be judged: {found.detail}",
                           "give the variable a default, or check the rendered result")
        ref = found.reference
        mirror = self._by_mirror.get(ref.name)
        if mirror is not None:
            return self._judge_mirror(found, ref, mirror)
        category = self.classify(ref)
        cat = category.category
        if cat is Category.ORGANIZATION:
            return Verdict(found, None, f"{_short(ref)}: {category.describe()}", category=category)
        source = self._by_source.get(ref.name)
        if cat in (Category.OFFICIAL, Category.VERIFIED_PUBLISHER):
            return self._judge_trusted(found, ref, category, source)
        if source is not None:
            return self._judge_mirrored(found, ref, category, source)
        if cat is Category.OTHER_REGISTRY:
            return Verdict(found, OTHER_REGISTRY,
                           f"{_short(ref)}: on {ref.registry}, outside Docker Hub Image Access "
                           "Management", category=category)
        return self._judge_unvetted(found, ref, category)

    def _judge_mirror(self, found: FoundImage, ref: Reference, v: VettedImage) -> Verdict:
        what = f"vetted mirror of {_short(v.source)}"
        if ref.digest is not None:
            if v.tags_for(ref.digest):
                return Verdict(found, None, f"{_short(ref)}: {what}, pinned to a vetted digest")
            part = v.platform_of(ref.digest)
            if part:
                tag, platform = part[0]
                return Verdict(found, None, f"{_short(ref)}: {what}, pinned to the {platform} manifest "
                                            f"of vetted tag {tag}")
            replacement = v.pinned(ref.tag) if ref.tag is not None and ref.tag in v.tags else None
            hint = f"pin the vetted digest: {replacement}" if replacement else (
                f"use a vetted tag ({_listed(v.tags)}) pinned to its digest")
            return Verdict(found, MIRROR_DIGEST_NOT_VETTED,
                           f"{_short(ref)}: {what}, but digest {ref.digest} was not vetted",
                           hint, replacement=replacement)
        tag = _tag(ref)
        if tag in v.tags:
            replacement = v.pinned(tag)
            return Verdict(found, MIRROR_NOT_PINNED,
                           f"{_short(ref)}: {what}, tag {tag} vetted but not pinned by digest",
                           f"pin it: {replacement}", replacement=replacement)
        return Verdict(found, MIRROR_TAG_NOT_VETTED,
                       f"{_short(ref)}: {what}, but tag {tag} was not vetted",
                       f"use a vetted tag: {_listed(v.tags)}")

    def _match(self, ref: Reference, v: VettedImage) -> Reference | None:
        """The vetted, pinned mirror reference for ``ref``, when its tag or digest was vetted."""
        if ref.digest is not None:
            tags = v.tags_for(ref.digest)
            if tags:
                return v.pinned(ref.tag if ref.tag in tags else tags[0])
            part = [t for t, _ in v.platform_of(ref.digest)]
            if not part:
                return None
            # a platform manifest of a vetted index: the mirror holds it byte for byte, keep it
            return v.mirror.with_tag(ref.tag if ref.tag in part else part[0]).with_digest(ref.digest)
        tag = _tag(ref)
        return v.pinned(tag) if tag in v.tags else None

    def _judge_trusted(
        self, found: FoundImage, ref: Reference, category: Classification, v: VettedImage | None
    ) -> Verdict:
        if is_allowed(category.category, self.context.access):
            return Verdict(found, None,
                           f"{_short(ref)}: {category.describe()}, allowed by Image Access Management",
                           category=category)
        rule = OFFICIAL_BLOCKED if category.category is Category.OFFICIAL else VERIFIED_BLOCKED
        message = (f"{_short(ref)}: {category.describe()}, blocked by "
                   f"{self.context.access.org}'s Image Access Management")
        replacement = self._match(ref, v) if v is not None else None
        if replacement is not None:
            return Verdict(found, rule, message, f"use the vetted mirror {replacement}",
                           category=category, replacement=replacement)
        hint = (f"use a vetted tag of {_short(v.mirror)}: {_listed(v.tags)}" if v is not None
                else "ask for it to be vetted and mirrored, or use an organization image")
        return Verdict(found, rule, message, hint, category=category)

    def _judge_mirrored(
        self, found: FoundImage, ref: Reference, category: Classification, v: VettedImage
    ) -> Verdict:
        what = f"{_short(ref)}: {_describe(category)}"
        replacement = self._match(ref, v)
        if replacement is not None:
            return Verdict(found, COMMUNITY_HAS_MIRROR, f"{what}; use the vetted mirror",
                           f"use {replacement}", category=category, replacement=replacement)
        if ref.digest is not None:
            return Verdict(found, COMMUNITY_DIGEST_NOT_VETTED,
                           f"{what}; digest {ref.digest} was not vetted (mirrored as "
                           f"{_short(v.mirror)})",
                           f"use a vetted tag of {_short(v.mirror)}: {_listed(v.tags)}",
                           category=category)
        return Verdict(found, COMMUNITY_TAG_NOT_VETTED,
                       f"{what}; tag {_tag(ref)} was not vetted (mirrored as {_short(v.mirror)})",
                       f"use a vetted tag ({_listed(v.tags)}) or ask for {_tag(ref)} to be vetted",
                       category=category)

    def _judge_unvetted(self, found: FoundImage, ref: Reference, category: Classification) -> Verdict:
        access = self.context.access
        blocked = "blocked by Image Access Management" if access.enabled else "not vetted"
        message = f"{_short(ref)}: {_describe(category)} with no vetted mirror, {blocked}"
        suggestion = f"request vetting of {ref.repo().familiar} (add it to the imagevet policy)"
        if not category.verified:
            suggestion += "; its category was not looked up on Docker Hub"
        return Verdict(found, COMMUNITY_NOT_VETTED, message, suggestion, category=category)


def judge_all(found: Iterable[FoundImage], context: CheckContext) -> list[Verdict]:
    """Judge every finding (see the module docstring)."""
    judge = Judge(context)
    return [judge.judge(f) for f in found]


def repositories_to_classify(
    found: Iterable[FoundImage], *, org: str | None, vetted: Sequence[VettedImage] = ()
) -> list[Reference]:
    """The repositories whose category only the Hub can tell, each once, sorted.

    References to vetted mirrors are judged without a category and are left out.
    """
    mirrors = {v.mirror.name for v in vetted}
    out: dict[str, Reference] = {}
    for f in found:
        ref = f.reference
        if ref is None or ref.name in mirrors or classify_static(ref, org) is not None:
            continue
        out.setdefault(ref.name, ref.repo())
    return [out[k] for k in sorted(out)]
