"""Vulnerability scanner reports (Trivy and Grype JSON) reduced to counts by severity.

Pure: bytes in, :class:`ScanReport` out.  Which scanner wrote the report is detected from its
shape, not from the command that ran it:

* **Trivy** (``trivy image --format json``, schema 2): an object with ``SchemaVersion`` whose
  ``Results[].Vulnerabilities[].Severity`` is one of ``CRITICAL``, ``HIGH``, ``MEDIUM``,
  ``LOW``, ``UNKNOWN``; the version is ``Trivy.Version`` when the report has it.  The schema 1
  form (a bare list of results, Trivy before 0.20) is read too.
* **Grype** (``grype -o json``): an object with ``matches`` and ``descriptor`` whose
  ``matches[].vulnerability.severity`` is one of ``Critical``, ``High``, ``Medium``, ``Low``,
  ``Negligible``, ``Unknown``; the version is ``descriptor.version``.

Each vulnerability entry counts once, as both scanners' own summaries count them (the same CVE
in two packages counts twice).  A severity neither scanner defines counts as ``unknown``.
Anything else (not JSON, another shape, a field of the wrong type) raises
:class:`~imagevet.errors.ScanError`: a report imagevet cannot read never passes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagevet.errors import ScanError

__all__ = [
    "FAIL_ON",
    "MAX_REPORT_BYTES",
    "SEVERITIES",
    "ScanReport",
    "parse_scan_report",
]

SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "negligible", "unknown")
"""Every severity a count is kept for, most severe first."""

FAIL_ON: tuple[str, ...] = ("critical", "high", "medium", "low")
"""The thresholds ``scan.fail_on`` accepts: a count at this severity or above holds the tag."""

MAX_REPORT_BYTES = 64 << 20
"""The largest report read (a big image's Trivy report with descriptions is tens of MiB)."""

_VERSION_RE = re.compile(r"[\x21-\x7e]{1,64}")


@dataclass(frozen=True, slots=True)
class ScanReport:
    """What one scan found: the scanner (``trivy`` or ``grype``), its version when the report
    says it, and the number of vulnerabilities at each of :data:`SEVERITIES`."""

    scanner: str
    counts: Mapping[str, int]
    version: str | None = None

    def __post_init__(self) -> None:
        if self.scanner not in ("trivy", "grype"):
            raise ValueError(f"unknown scanner {self.scanner!r}")
        unknown = set(self.counts) - set(SEVERITIES)
        if unknown:
            raise ValueError(f"unknown severities {sorted(unknown)}")
        for n in self.counts.values():
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"invalid count {n!r}")
        if self.version is not None and not _VERSION_RE.fullmatch(self.version):
            raise ValueError(f"invalid version {self.version[:80]!r}")
        object.__setattr__(
            self, "counts", {s: self.counts[s] for s in SEVERITIES if self.counts.get(s)}
        )

    def count(self, severity: str) -> int:
        return self.counts.get(severity, 0)

    def failing(self, fail_on: str) -> dict[str, int]:
        """The severities at ``fail_on`` or above that have vulnerabilities, most severe first."""
        if fail_on not in FAIL_ON:
            raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
        limit = SEVERITIES.index(fail_on)
        return {s: self.count(s) for s in SEVERITIES[: limit + 1] if self.count(s)}

    def summary(self) -> str:
        """``2 critical, 5 high, 1 low`` (``no vulnerabilities`` when there are none)."""
        parts = [f"{n} {s}" for s, n in self.counts.items()]
        return ", ".join(parts) if parts else "no vulnerabilities"


def _severity(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ScanError(f"not a readable scan report: {where} is not a string")
    name = value.strip().lower()
    return name if name in SEVERITIES else "unknown"


def _list(value: Any, where: str, *, optional: bool = True) -> list[Any]:
    if value is None and optional:
        return []
    if not isinstance(value, list):
        raise ScanError(f"not a readable scan report: {where} is not a list")
    return value


def _trivy_results(results: list[Any], counts: dict[str, int]) -> None:
    for i, result in enumerate(results):
        if not isinstance(result, dict):
            raise ScanError(f"not a readable Trivy report: Results[{i}] is not an object")
        vulns = _list(result.get("Vulnerabilities"), f"Results[{i}].Vulnerabilities")
        for j, vuln in enumerate(vulns):
            if not isinstance(vuln, dict):
                raise ScanError(
                    f"not a readable Trivy report: Results[{i}].Vulnerabilities[{j}] is not an object"
                )
            severity = _severity(vuln.get("Severity"), f"Results[{i}].Vulnerabilities[{j}].Severity")
            counts[severity] = counts.get(severity, 0) + 1


def _version(value: Any) -> str | None:
    return value if isinstance(value, str) and _VERSION_RE.fullmatch(value) else None


def _trivy(data: Any) -> ScanReport:
    counts: dict[str, int] = {}
    if isinstance(data, list):  # schema 1: the results alone
        _trivy_results(data, counts)
        return ScanReport("trivy", counts)
    _trivy_results(_list(data.get("Results"), "Results"), counts)
    meta = data.get("Trivy")
    version = _version(meta.get("Version")) if isinstance(meta, dict) else None
    return ScanReport("trivy", counts, version)


def _grype(data: Mapping[str, Any]) -> ScanReport:
    counts: dict[str, int] = {}
    for i, match in enumerate(_list(data.get("matches"), "matches", optional=False)):
        vuln = match.get("vulnerability") if isinstance(match, dict) else None
        if not isinstance(vuln, dict):
            raise ScanError(f"not a readable Grype report: matches[{i}].vulnerability is not an object")
        severity = _severity(vuln.get("severity"), f"matches[{i}].vulnerability.severity")
        counts[severity] = counts.get(severity, 0) + 1
    descriptor = data.get("descriptor")
    version = _version(descriptor.get("version")) if isinstance(descriptor, dict) else None
    return ScanReport("grype", counts, version)


def _is_trivy_v1(data: Any) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(r, dict) and "Target" in r for r in data)
    )


def parse_scan_report(data: bytes) -> ScanReport:
    """The counts by severity of a Trivy or Grype JSON report (see the module docstring);
    ScanError for anything else."""
    if len(data) > MAX_REPORT_BYTES:
        raise ScanError(f"the scan report is larger than {MAX_REPORT_BYTES >> 20} MiB")
    if not data.strip():
        raise ScanError("the scanner printed no report")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScanError("the scanner's output is not UTF-8") from None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        raise ScanError("the scanner's output is not JSON") from None
    if isinstance(parsed, dict) and "SchemaVersion" in parsed:
        return _trivy(parsed)
    if isinstance(parsed, dict) and "matches" in parsed and isinstance(parsed.get("descriptor"), dict):
        return _grype(parsed)
    if _is_trivy_v1(parsed):
        return _trivy(parsed)
    raise ScanError(
        "the scanner's output is JSON but not a Trivy (SchemaVersion, Results) or Grype "
        "(matches, descriptor) report: run the scanner with its JSON output (trivy --format json, "
        "grype -o json)"
    )
