"""Trivy and Grype JSON reports, as their projects publish them in their own test data
(tests/fixtures/scanners/README.md), reduced to exact counts by severity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagevet.errors import ScanError
from imagevet.scanreport import ScanReport, parse_scan_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scanners"


@pytest.mark.parametrize(
    ("name", "scanner", "version", "counts"),
    [
        ("trivy-alpine-310.json", "trivy", "dev", {"medium": 4}),
        ("trivy-alpine-39-high-critical.json", "trivy", "dev", {"critical": 2}),
        ("trivy-centos-7.json", "trivy", "dev", {"medium": 1, "low": 2}),
        ("trivy-fluentd-multiple-lockfiles.json", "trivy", "dev", {"critical": 1, "high": 1, "low": 1}),
        ("grype-TestJsonImgsPresenter.json", "grype", None, {"critical": 1, "low": 1}),
        ("grype-TestEmptyJsonPresenter.json", "grype", None, {}),
    ],
)
def test_published_reports_give_exact_counts(
    name: str, scanner: str, version: str | None, counts: dict[str, int]
) -> None:
    report = parse_scan_report((FIXTURES / name).read_bytes())
    assert report.scanner == scanner
    assert dict(report.counts) == counts
    assert report.version == version  # grype's "[not provided]" is not a version


def test_thresholds_count_what_is_at_or_above() -> None:
    report = parse_scan_report((FIXTURES / "trivy-fluentd-multiple-lockfiles.json").read_bytes())
    assert report.failing("critical") == {"critical": 1}
    assert report.failing("high") == {"critical": 1, "high": 1}
    assert report.failing("medium") == {"critical": 1, "high": 1}
    assert report.failing("low") == {"critical": 1, "high": 1, "low": 1}
    clean = parse_scan_report((FIXTURES / "grype-TestEmptyJsonPresenter.json").read_bytes())
    assert clean.failing("low") == {}
    assert clean.summary() == "no vulnerabilities"
    assert report.summary() == "1 critical, 1 high, 1 low"


def test_trivy_schema_1_a_bare_list_of_results() -> None:
    results = json.loads((FIXTURES / "trivy-centos-7.json").read_text())["Results"]
    report = parse_scan_report(json.dumps(results).encode())
    assert (report.scanner, dict(report.counts)) == ("trivy", {"medium": 1, "low": 2})


def test_grype_negligible_and_odd_severities_are_kept_apart() -> None:
    data = json.loads((FIXTURES / "grype-TestJsonImgsPresenter.json").read_text())
    data["matches"] += [
        {"vulnerability": {"severity": "Negligible"}},
        {"vulnerability": {"severity": "catastrophic"}},
    ]
    report = parse_scan_report(json.dumps(data).encode())
    assert dict(report.counts) == {"critical": 1, "low": 1, "negligible": 1, "unknown": 1}
    assert report.failing("low") == {"critical": 1, "low": 1}


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "printed no report"),
        (b"   \n", "printed no report"),
        (b"Segmentation fault\n", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b'{"hello": "world"}', "not a Trivy"),
        (b"[]", "not a Trivy"),
        (b'{"SchemaVersion": 2, "Results": {"a": 1}}', "Results is not a list"),
        (b'{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"Severity": 3}]}]}',
         "Results[0].Vulnerabilities[0].Severity is not a string"),
        (b'{"SchemaVersion": 2, "Results": [7]}', "Results[0] is not an object"),
        (b'{"matches": [{"vulnerability": null}], "descriptor": {}}', "matches[0].vulnerability"),
        (b'{"matches": "many", "descriptor": {}}', "matches is not a list"),
    ],
)
def test_what_is_not_a_report_is_refused_with_the_reason(data: bytes, said: str) -> None:
    with pytest.raises(ScanError, match=None) as e:
        parse_scan_report(data)
    assert said in str(e.value)


def test_a_huge_report_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    import imagevet.scanreport as mod

    monkeypatch.setattr(mod, "MAX_REPORT_BYTES", 1000)
    with pytest.raises(ScanError, match="larger than"):
        parse_scan_report(b" " * 1001)


def test_a_report_value_refuses_what_a_report_cannot_hold() -> None:
    with pytest.raises(ValueError):
        ScanReport("clair", {})
    with pytest.raises(ValueError):
        ScanReport("trivy", {"severe": 1})
    with pytest.raises(ValueError):
        ScanReport("trivy", {"high": -1})
    with pytest.raises(ValueError):
        ScanReport("trivy", {}, "1.0\n")
    with pytest.raises(ValueError):
        ScanReport("trivy", {}).failing("extreme")
