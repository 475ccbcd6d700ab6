"""``imagevet check``: find every image reference a repository uses, judge it, and fix it.

The data flow, one module per step::

    discover      which files to read (by name, then by content)
    dockerfile    compose  kubernetes  helm  kustomize  workflow    finders: text -> FoundImage (pure)
    scan          read the files, run the finders        -> ScanResult
    judge         IAM settings + categories + vetted mirrors -> Verdict per finding (pure)
    report        suppressions, counts, JSON, human lines   -> CheckReport
    sarif         SARIF 2.1.0 for GitHub code scanning
    fix           verdicts -> edits at exact offsets -> fixed text, unified diffs

Nothing here prints or reads the environment; the CLI (``imagevet.cli.check``) does, and fills
the :class:`CheckContext` from the Hub or from declared settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from imagevet.check.compose import find_in_compose
from imagevet.check.discover import discover, kind_by_name, sniff_yaml
from imagevet.check.dockerfile import find_in_dockerfile
from imagevet.check.files import DEFAULT_MAX_FILE_SIZE
from imagevet.check.fix import (
    Edit,
    FileFix,
    FixPlan,
    apply_edits,
    edits_for,
    plan_fixes,
    write_fixes,
)
from imagevet.check.helm import find_in_helm_template, find_in_helm_values
from imagevet.check.judge import CheckContext, Judge, Verdict, judge_all, repositories_to_classify
from imagevet.check.kubernetes import find_in_kubernetes
from imagevet.check.kustomize import find_in_kustomization
from imagevet.check.model import (
    FindingKind,
    FixTarget,
    FoundImage,
    HelmImageMap,
    KustomizeImage,
    Location,
    ReplaceSpan,
    SourceKind,
    Span,
)
from imagevet.check.report import CheckReport, check_scan, format_verdict, verdict_to_json
from imagevet.check.rules import RULES, RULES_BY_ID, Rule, Severity
from imagevet.check.sarif import to_sarif
from imagevet.check.scan import ScannedFile, ScanResult, SkippedFile, find_images, scan_paths
from imagevet.check.vetted import VettedImage, read_vetted, vetted_from_data, vetted_from_lock
from imagevet.check.workflow import find_in_workflow

__all__ = [
    "CheckContext",
    "CheckReport",
    "DEFAULT_MAX_FILE_SIZE",
    "Edit",
    "FileFix",
    "FindingKind",
    "FixPlan",
    "FixTarget",
    "FoundImage",
    "HelmImageMap",
    "Judge",
    "KustomizeImage",
    "Location",
    "RULES",
    "RULES_BY_ID",
    "ReplaceSpan",
    "Rule",
    "ScanResult",
    "ScannedFile",
    "Severity",
    "SkippedFile",
    "SourceKind",
    "Span",
    "Verdict",
    "VettedImage",
    "apply_edits",
    "check_paths",
    "check_scan",
    "discover",
    "edits_for",
    "find_images",
    "find_in_compose",
    "find_in_dockerfile",
    "find_in_helm_template",
    "find_in_helm_values",
    "find_in_kubernetes",
    "find_in_kustomization",
    "find_in_workflow",
    "format_verdict",
    "judge_all",
    "kind_by_name",
    "plan_fixes",
    "read_vetted",
    "repositories_to_classify",
    "scan_paths",
    "sniff_yaml",
    "to_sarif",
    "verdict_to_json",
    "vetted_from_data",
    "vetted_from_lock",
    "write_fixes",
]


def check_paths(
    paths: Sequence[Path],
    context: CheckContext,
    *,
    root: Path,
    exclude: Sequence[str] = (),
    notes: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
) -> CheckReport:
    """Scan ``paths`` and judge every reference found (categories as ``context`` gives them)."""
    scan = scan_paths(paths, root=root, exclude=exclude, max_file_size=max_file_size)
    return check_scan(scan, context, notes=notes)
