"""SARIF 2.1.0 output that GitHub code scanning accepts.

One run; ``tool.driver.rules`` lists every rule (ids, names, help, default level); each result
has ``ruleId``/``ruleIndex``, ``level``, a message, one physical location with a relative
artifact URI (``uriBaseId`` ``%SRCROOT%``) and a region whose columns count code points
(``columnKind`` ``unicodeCodePoints``), a ``partialFingerprints`` entry stable across line moves,
and, for fixable results, ``fixes`` with the exact replacements ``--fix`` would make.
Spec: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from imagevet.check.fix import edits_for
from imagevet.check.judge import Verdict
from imagevet.check.model import Span
from imagevet.check.report import CheckReport
from imagevet.check.rules import RULES, Rule, Severity
from imagevet.check.text import LineIndex

__all__ = [
    "SARIF_SCHEMA_URI",
    "SARIF_VERSION",
    "SRCROOT",
    "to_sarif",
]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
TOOL_NAME = "imagevet"
FINGERPRINT_KEY = "imagevetFinding/v1"


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.help},
        "help": {"text": rule.help, "markdown": f"**{rule.summary}**\n\n{rule.help}"},
        "defaultConfiguration": {"level": str(rule.severity)},
        "properties": {"tags": ["containers", "supply-chain"], "precision": "very-high"},
    }


def _artifact(path: str) -> dict[str, Any]:
    if path.startswith("/"):
        return {"uri": "file://" + quote(path)}
    return {"uri": quote(path), "uriBaseId": SRCROOT}


def _region(index: LineIndex, span: Span) -> dict[str, int]:
    loc = index.location(span.start, span.end)
    return {
        "startLine": loc.line,
        "startColumn": loc.column,
        "endLine": loc.end_line,
        "endColumn": loc.end_column,
    }


def _fingerprint(v: Verdict) -> str:
    f = v.found
    rule = v.rule.id if v.rule else ""
    key = "\0".join((f.path, rule, f.context, f.text))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _result(
    v: Verdict, rule_index: dict[str, int], texts: dict[str, str], indexes: dict[str, LineIndex]
) -> dict[str, Any]:
    assert v.rule is not None
    f = v.found
    index = indexes.setdefault(f.path, LineIndex(f.path, texts.get(f.path, "")))
    region: dict[str, Any] = dict(_region(index, f.location.span))
    if f.text and "\n" not in f.text:
        region["snippet"] = {"text": f.text}
    message = v.message + (f" (inferred from {f.inferred})" if f.inferred else "")
    message += f". Suggestion: {v.suggestion}" if v.suggestion else ""
    result: dict[str, Any] = {
        "ruleId": v.rule.id,
        "ruleIndex": rule_index[v.rule.id],
        "level": str(v.rule.severity),
        "message": {"text": message},
        "locations": [
            {"physicalLocation": {"artifactLocation": _artifact(f.path), "region": region}}
        ],
        "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(v)},
    }
    if f.inferred:
        result["properties"] = {"inferred": True, "inferredFrom": f.inferred}
    if v.fixable and f.path in texts:
        edits = edits_for(v, texts[f.path])
        result["fixes"] = [
            {
                "description": {"text": f"Use {v.replacement}"},
                "artifactChanges": [
                    {
                        "artifactLocation": _artifact(f.path),
                        "replacements": [
                            {
                                "deletedRegion": _region(index, e.span),
                                "insertedContent": {"text": e.new},
                            }
                            for e in edits
                        ],
                    }
                ],
            }
        ]
    return result


def to_sarif(
    report: CheckReport, *, threshold: Severity = Severity.NOTE, tool_version: str = "0"
) -> dict[str, Any]:
    """The SARIF 2.1.0 log of ``report``'s issues at or above ``threshold``."""
    rule_index = {rule.id: i for i, rule in enumerate(RULES)}
    texts = {f.path: f.text for f in report.files}
    indexes: dict[str, LineIndex] = {}
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": tool_version,
                        "rules": [_rule(rule) for rule in RULES],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": [
                    _result(v, rule_index, texts, indexes) for v in report.issues(threshold)
                ],
            }
        ],
    }
