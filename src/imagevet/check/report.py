"""The result of a check: every verdict, suppressions applied, as JSON data or human lines."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from imagevet.check.judge import CheckContext, Verdict, judge_all
from imagevet.check.model import FindingKind, FoundImage, SourceKind
from imagevet.check.rules import Severity
from imagevet.check.scan import ScannedFile, ScanResult

__all__ = [
    "CheckReport",
    "JSON_FORMAT_VERSION",
    "SUPPRESSION",
    "check_scan",
    "format_verdict",
    "verdict_to_json",
]

JSON_FORMAT_VERSION = 1

SUPPRESSION = re.compile(r"#\s*imagevet:\s*ignore(?:\[([A-Za-z0-9_, -]*)\])?")
"""``# imagevet: ignore`` or ``# imagevet: ignore[IV004,IV020]`` on the finding's line or the line
above it silences that finding (all rules, or the listed ones)."""


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Every file read and every verdict, sorted by path and position."""

    files: tuple[ScannedFile, ...]
    verdicts: tuple[Verdict, ...]
    suppressed: int = 0
    notes: tuple[str, ...] = ()

    def issues(self, threshold: Severity = Severity.NOTE) -> list[Verdict]:
        """The verdicts that break a rule of ``threshold`` severity or worse."""
        return [v for v in self.verdicts if v.severity is not None and v.severity.at_least(threshold)]

    def shown(self, threshold: Severity = Severity.NOTE) -> list[Verdict]:
        """The ok verdicts and the issues at or above ``threshold``, in order."""
        return [
            v for v in self.verdicts if v.severity is None or v.severity.at_least(threshold)
        ]

    def failed(self, threshold: Severity = Severity.NOTE) -> bool:
        """Whether an error or warning at or above ``threshold`` remains (notes never fail)."""
        return any(
            v.severity is not None and v.severity is not Severity.NOTE
            for v in self.issues(threshold)
        )

    def summary(self, threshold: Severity = Severity.NOTE) -> dict[str, int]:
        """Counts: files, references (every image position; a file that could not be parsed is
        not one), ok, one per severity, fixable, suppressed."""
        issues = self.issues(threshold)
        by_level = Counter(str(v.severity) for v in issues)
        return {
            "files": len(self.files),
            "references": sum(1 for v in self.verdicts if v.found.kind is not FindingKind.PARSE_ERROR),
            "ok": sum(1 for v in self.verdicts if v.ok),
            "error": by_level["error"],
            "warning": by_level["warning"],
            "note": by_level["note"],
            "fixable": sum(1 for v in issues if v.fixable),
            "suppressed": self.suppressed,
        }

    def to_json(self, threshold: Severity = Severity.NOTE) -> dict[str, Any]:
        """The ``--format json`` document (see docs/check.md)."""
        return {
            "version": JSON_FORMAT_VERSION,
            "ok": not self.failed(threshold),
            "threshold": str(threshold),
            "summary": self.summary(threshold),
            "notes": list(self.notes),
            "results": [verdict_to_json(v) for v in self.shown(threshold)],
        }


def _suppressed(verdict: Verdict, lines: list[str]) -> bool:
    if verdict.rule is None:
        return False
    line = verdict.found.location.line
    for text in lines[max(0, line - 2) : line]:
        m = SUPPRESSION.search(text)
        if m and (m.group(1) is None or verdict.rule.id in re.split(r"[\s,]+", m.group(1))):
            return True
    return False


_MAX_LISTED_PLACES = 5


def _chart_template(found: FoundImage) -> tuple[str, str] | None:
    """``(chart, path in the chart)`` of an image a Helm chart's templates or values leave
    unresolved (Helm renders it; the scan does not); None for any other finding."""
    if found.kind is not FindingKind.UNRESOLVED:
        return None
    parts = PurePosixPath(found.path).parts
    if found.source is SourceKind.HELM_VALUES:
        chart = PurePosixPath(*parts[:-1]).as_posix() if len(parts) > 1 else "."
        return chart, f"{parts[-1]}:{found.location.line} ({found.context})"
    if found.source is not SourceKind.HELM_TEMPLATE:
        return None
    dirs = [i for i, part in enumerate(parts[:-1]) if part == "templates"]
    if not dirs:  # the scan started inside the chart's templates/: the chart is above it
        return "..", f"{found.path}:{found.location.line}"
    at = dirs[-1]
    chart = PurePosixPath(*parts[:at]).as_posix() if at else "."
    return chart, f"{PurePosixPath(*parts[at:]).as_posix()}:{found.location.line}"


def _chart_notes(unresolved: dict[str, list[str]]) -> list[str]:
    """One note per chart for its templated image lines: Helm renders them, the scan does not."""
    out = []
    for chart in sorted(unresolved):
        places = unresolved[chart]
        listed = ", ".join(places[:_MAX_LISTED_PLACES])
        if len(places) > _MAX_LISTED_PLACES:
            listed += f" and {len(places) - _MAX_LISTED_PLACES} more"
        what = "reference" if len(places) == 1 else "references"
        out.append(f"chart {chart}: {len(places)} templated image {what} not resolved without "
                   f"rendering ({listed}); check `helm template` output")
    return out


def _note(found: FoundImage) -> str:
    """The note line of a finding the scan must not guess (``note_only``)."""
    loc = found.location
    return f"{loc.path}:{loc.line}:{loc.column}: {found.text} not judged: {found.detail}"


def check_scan(scan: ScanResult, context: CheckContext, *, notes: Iterable[str] = ()) -> CheckReport:
    """Judge everything a scan found; drop the findings silenced by a suppression comment.

    The templated ``image:`` lines of Helm chart templates that the scan cannot resolve (Helm
    renders them from values; the images of ``values.yaml`` are judged on their own), and the
    values images it cannot put together, are not verdicts: each chart gets one note listing
    them, which never fails the check.  A ``note_only`` finding (a value the scan must not
    guess) is a note of its own.  Each file the scan skipped unread becomes a note
    (``skipped <path>: <why>``).
    """
    texts = {f.path: f.text for f in scan.files}
    lines: dict[str, list[str]] = {}
    kept: list[Verdict] = []
    unresolved: dict[str, list[str]] = {}
    own_notes: list[str] = []
    suppressed = 0
    for v in judge_all(scan.found, context):
        chart = _chart_template(v.found)
        path = v.found.path
        if path not in lines and v.rule is not None:
            lines[path] = texts.get(path, "").splitlines()
        if _suppressed(v, lines.get(path, [])):
            suppressed += 1
        elif v.found.note_only:
            own_notes.append(_note(v.found))
        elif chart is not None:
            unresolved.setdefault(chart[0], []).append(chart[1])
        else:
            kept.append(v)
    skipped = [f"skipped {f.path}: {f.reason}" for f in scan.skipped]
    return CheckReport(
        scan.files, tuple(kept), suppressed, (*notes, *_chart_notes(unresolved), *own_notes, *skipped)
    )


def verdict_to_json(v: Verdict) -> dict[str, Any]:
    """One result of the JSON report."""
    f, loc = v.found, v.found.location
    return {
        "path": loc.path,
        "line": loc.line,
        "column": loc.column,
        "endLine": loc.end_line,
        "endColumn": loc.end_column,
        "source": str(f.source),
        "context": f.context,
        "kind": str(f.kind),
        "text": f.text,
        "reference": str(f.reference) if f.reference else None,
        "verdict": str(v.severity) if v.severity else "ok",
        "rule": v.rule.id if v.rule else None,
        "ruleName": v.rule.name if v.rule else None,
        "message": v.message,
        "suggestion": v.suggestion,
        "category": str(v.category.category) if v.category else None,
        "categoryVerified": v.category.verified if v.category else None,
        "replacement": str(v.replacement) if v.replacement else None,
        "fixable": v.fixable,
        "fixNote": "" if v.fixable or v.replacement is None else f.fix_note,
        "inferred": bool(f.inferred),
        "inferredFrom": f.inferred or None,
    }


def format_verdict(v: Verdict) -> str:
    """One human line: ``path:line:col  RULE  message  suggestion``."""
    loc = v.found.location
    where = f"{loc.path}:{loc.line}:{loc.column}"
    inferred = f" (inferred from {v.found.inferred})" if v.found.inferred else ""
    if v.rule is None:
        return f"{where}  ok     {v.message}{inferred}"
    suggestion = v.suggestion
    if v.replacement is not None:
        suggestion += " (--fix)" if v.fixable else f" (not auto-fixable: {v.found.fix_note})"
    return f"{where}  {v.rule.id}  {v.message}{inferred}" + (f"  {suggestion}" if suggestion else "")
