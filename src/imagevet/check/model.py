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
    "KustomizeImage",
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
    KUSTOMIZE = "kustomize"


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
    digest_hex: bool = False
    """The digest key holds the hex part only (a ``sha:`` key the template writes as
    ``@sha256:{{ .sha }}``, or a value written without ``sha256:``)."""


@dataclass(frozen=True, slots=True)
class KustomizeImage:
    """Fix a Kustomize ``images:`` entry: ``newName``, ``newTag`` and ``digest`` are set to the
    vetted mirror (edited where written, added as new keys where missing); ``name`` never changes.

    ``insert_at`` is where a missing key goes (the end of the entry's last line) and ``indent``
    the text that starts it (``"\n    "`` for a block entry, ``", "`` for a flow one).
    """

    new_name: Span | None
    new_tag: Span | None
    digest: Span | None
    insert_at: int
    indent: str
    flow: bool = False


FixTarget = ReplaceSpan | HelmImageMap | KustomizeImage


@dataclass(frozen=True, slots=True)
class FoundImage:
    """One image position in one file.

    ``text`` is the source text as written; ``value`` the string the scan resolved it to
    (variables substituted, Helm map fields joined); ``reference`` its parse when ``kind`` is
    REFERENCE.  ``fix`` says how ``--fix`` may rewrite it, or is None with ``fix_note`` saying why not.

    ``inferred`` is empty for a reference read as written; otherwise it says what the scan put it
    together from (``values.yaml image (registry, repository) and Chart.yaml appVersion 2.20.0,
    v-prefixed as templates/_helpers.tpl:145 builds it``; ``.env TAG``): every output shows it.
    ``note_only`` findings are not judged: they become one line of the report's notes (a value
    the scan must not guess, like a Compose ``${TAG:?required}`` that nothing sets).
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
    inferred: str = ""
    note_only: bool = False

    @property
    def path(self) -> str:
        return self.location.path

    def sort_key(self) -> tuple[str, int, int, str]:
        loc = self.location
        return (loc.path, loc.line, loc.column, self.context)
