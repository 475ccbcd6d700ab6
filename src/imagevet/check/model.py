"""What a finder reports: one image reference (or a failure to read one) at an exact place in a file."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagevet.reference import Reference

__all__ = [
    "FindingKind",
    "FixTarget",
    "FoundImage",
    "HelmImageMap",
    "Location",
    "ReplaceSpan",
    "SourceKind",
    "Span",
]


class FindingKind(enum.StrEnum):
    """What a finder found at a location."""

    REFERENCE = "reference"
    """A literal image reference (after ARG defaults or Helm map fields were put together)."""
    UNRESOLVED = "unresolved"
    """A reference that depends on a variable or template the scan cannot know."""
    INVALID = "invalid-reference"
    """Literal text in an image position that is not a valid reference."""
    PARSE_ERROR = "parse-error"
    """The file could not be parsed; the location is where the parser gave up."""


class SourceKind(enum.StrEnum):
    """The kind of file a reference was found in."""

    DOCKERFILE = "dockerfile"
    COMPOSE = "compose"
    KUBERNETES = "kubernetes"
    HELM_VALUES = "helm-values"
    HELM_TEMPLATE = "helm-template"
    WORKFLOW = "workflow"


@dataclass(frozen=True, slots=True)
class Span:
    """Character offsets ``[start, end)`` into a file's decoded text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Location:
    """Where a finding is: 1-based line and column, ``end_column`` exclusive, plus its offsets."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    span: Span


@dataclass(frozen=True, slots=True)
class ReplaceSpan:
    """Fix by writing the new reference, in full, over ``span`` (quotes and prefixes stay outside it).

    ``via`` names what is edited when it is not the reference itself (``ARG BASE``).
    """

    span: Span
    via: str = ""


@dataclass(frozen=True, slots=True)
class HelmImageMap:
    """Fix a Helm ``image: {registry, repository, tag, digest}`` map by editing its scalar values.

    ``repository`` and ``tag`` must be present; without a ``digest`` key the digest is appended to
    the tag (``7.2@sha256:...``), which the usual ``{{ repository }}:{{ tag }}`` template renders.
    """

    repository: Span
    tag: Span
    registry: Span | None = None
    digest: Span | None = None


FixTarget = ReplaceSpan | HelmImageMap


@dataclass(frozen=True, slots=True)
class FoundImage:
    """One image position in one file.

    ``text`` is the source text as written; ``value`` the string the scan resolved it to
    (variables substituted, Helm map fields joined); ``reference`` its parse when ``kind`` is
    REFERENCE.  ``fix`` says how ``--fix`` may rewrite it, or is None with ``fix_note`` saying why not.
    """

    kind: FindingKind
    source: SourceKind
    location: Location
    text: str
    value: str
    context: str
    reference: Reference | None = None
    detail: str = ""
    fix: FixTarget | None = None
    fix_note: str = ""

    @property
    def path(self) -> str:
        return self.location.path

    def sort_key(self) -> tuple[str, int, int, str]:
        loc = self.location
        return (loc.path, loc.line, loc.column, self.context)
