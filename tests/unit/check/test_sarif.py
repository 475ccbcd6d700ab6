"""SARIF 2.1.0 output: valid against the schema (subset, see the fixture), and what GitHub needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from imagevet.check import RULES, CheckContext, Severity, check_paths, to_sarif
from tests.unit.check.conftest import FIXTURES, REPO

SCHEMA = json.loads((FIXTURES / "sarif-2.1.0-subset.schema.json").read_text())


@pytest.fixture
def sarif(context: CheckContext) -> dict[str, Any]:
    report = check_paths([REPO], context, root=REPO)
    return to_sarif(report, tool_version="9.9.9")


def test_valid_against_the_schema(sarif: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(sarif), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_rejects_what_it_should() -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    assert not validator.is_valid({"version": "2.0.0", "runs": []})
    bad_region = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
        {"message": {"text": "m"}, "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "a"}, "region": {"startLine": 0}}}]}]}]}
    assert not validator.is_valid(bad_region)
    assert not validator.is_valid({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x", "extra": 1}}}]})


def test_driver_and_rules(sarif: dict[str, Any]) -> None:
    (run,) = sarif["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "imagevet" and driver["version"] == "9.9.9"
    assert [r["id"] for r in driver["rules"]] == [r.id for r in RULES]
    assert run["columnKind"] == "unicodeCodePoints"
    assert sarif["version"] == "2.1.0"


def test_results_as_github_code_scanning_reads_them(sarif: dict[str, Any]) -> None:
    (run,) = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    assert len(results) == 33  # every issue of the fixture repository, no ok verdicts
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        assert r["level"] == rules[r["ruleIndex"]]["defaultConfiguration"]["level"]
        (loc,) = r["locations"]
        artifact = loc["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "%SRCROOT%" and not artifact["uri"].startswith("/")
        assert (REPO / artifact["uri"]).is_file()
        region = loc["physicalLocation"]["region"]
        assert region["endColumn"] >= region["startColumn"] or region["endLine"] > region["startLine"]
        assert len(next(iter(r["partialFingerprints"].values()))) == 32


def test_one_result_in_full(sarif: dict[str, Any]) -> None:
    (result,) = [
        r for r in sarif["runs"][0]["results"]
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "compose.yaml"
        and r["ruleId"] == "IV001" and r["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    ]
    digest = "sha256:09760665f0af12dc6887689c1fa1afe346138a545ce1efbe277acf07bc92780a"
    region = {"startLine": 3, "startColumn": 11, "endLine": 3, "endColumn": 28}
    assert result["message"]["text"] == (
        "bitnami/redis:7.2: Community image (unverified); use the vetted mirror. "
        f"Suggestion: use docker.io/acme/redis:7.2@{digest}"
    )
    assert result["locations"][0]["physicalLocation"]["region"] == {**region, "snippet": {"text": "bitnami/redis:7.2"}}
    assert result["fixes"] == [{
        "description": {"text": f"Use docker.io/acme/redis:7.2@{digest}"},
        "artifactChanges": [{
            "artifactLocation": {"uri": "compose.yaml", "uriBaseId": "%SRCROOT%"},
            "replacements": [{"deletedRegion": region, "insertedContent": {"text": f"docker.io/acme/redis:7.2@{digest}"}}],
        }],
    }]


def test_arg_fix_replaces_the_arg_default(sarif: dict[str, Any]) -> None:
    (result,) = [
        r for r in sarif["runs"][0]["results"]
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "Dockerfile"
        and r["locations"][0]["physicalLocation"]["region"]["startLine"] == 28
    ]
    (change,) = result["fixes"][0]["artifactChanges"]
    assert change["replacements"][0]["deletedRegion"] == {"startLine": 5, "startColumn": 18, "endLine": 5, "endColumn": 35}


def test_threshold_and_paths_with_spaces(tmp_path: Path, context: CheckContext) -> None:
    (tmp_path / "my app").mkdir()
    (tmp_path / "my app" / "Dockerfile").write_text("FROM ghcr.io/a/b:1\nFROM bitnami/x:1\n")
    report = check_paths([tmp_path], context, root=tmp_path)
    full = to_sarif(report)
    assert [r["ruleId"] for r in full["runs"][0]["results"]] == ["IV020", "IV004"]
    assert full["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "my%20app/Dockerfile"
    errors_only = to_sarif(report, threshold=Severity.ERROR)
    assert [r["ruleId"] for r in errors_only["runs"][0]["results"]] == ["IV004"]
    jsonschema.validate(full, SCHEMA)
