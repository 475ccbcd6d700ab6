"""Evidence records: classification of what registries hold, the canonical file form, the
scan verdict the planner holds a tag on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.errors import EvidenceError
from imagevet.evidence import (
    MAX_ITEMS,
    Evidence,
    EvidenceItem,
    ScanVerdict,
    classify_artifact,
    classify_layer,
    parse_evidence,
    scan_hold_reason,
)
from imagevet.scanreport import ScanReport, parse_scan_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scanners"
D = [Digest.of(f"d{i}".encode()) for i in range(8)]


@pytest.mark.parametrize(
    ("artifact_type", "annotations", "expected"),
    [
        # cosign signatures, as a .sig layer and as an OCI 1.1 referrer
        ("application/vnd.dev.cosign.simplesigning.v1+json", {}, ("signature", "application/vnd.dev.cosign.simplesigning.v1+json")),
        ("application/vnd.dev.cosign.artifact.sig.v1+json", {}, ("signature", "application/vnd.dev.cosign.artifact.sig.v1+json")),
        # sigstore bundles (cosign BUNDLE_SPEC): a signature, or an attestation of its predicate
        ("application/vnd.dev.sigstore.bundle.v0.3+json", {}, ("signature", "application/vnd.dev.sigstore.bundle.v0.3+json")),
        ("application/vnd.dev.sigstore.bundle.v0.3+json",
         {"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"},
         ("provenance", "https://slsa.dev/provenance/v1")),
        ("application/vnd.cncf.notary.signature", {}, ("signature", "application/vnd.cncf.notary.signature")),
        ("application/spdx+json", {}, ("sbom", "application/spdx+json")),
        ("application/vnd.cyclonedx+json", {}, ("sbom", "application/vnd.cyclonedx+json")),
        ("text/spdx", {}, ("sbom", "text/spdx")),
        # in-toto statements: by predicate when annotated (BuildKit, cosign .att)
        ("application/vnd.in-toto+json", {"in-toto.io/predicate-type": "https://spdx.dev/Document"},
         ("sbom", "https://spdx.dev/Document")),
        ("application/vnd.in-toto+json", {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
         ("provenance", "https://slsa.dev/provenance/v0.2")),
        ("application/vnd.dsse.envelope.v1+json", {"predicateType": "https://cyclonedx.org/bom"},
         ("sbom", "https://cyclonedx.org/bom")),
        ("application/vnd.dsse.envelope.v1+json", {"predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1"},
         ("attestation", "https://cosign.sigstore.dev/attestation/vuln/v1")),
        ("application/vnd.in-toto+json", {}, ("attestation", "application/vnd.in-toto+json")),
        ("application/vnd.example.thing", {}, ("other", "application/vnd.example.thing")),
        (None, {}, ("other", "")),
        # hostile text is kept printable and short
        ("application/x\x1b[31m" + "y" * 400, {}, ("other", ("application/x\\u001b[31m" + "y" * 400)[:256])),
    ],
)
def test_classify_artifact(
    artifact_type: str | None, annotations: dict[str, str], expected: tuple[str, str]
) -> None:
    assert classify_artifact(artifact_type, annotations) == expected


def test_a_layer_of_a_cosign_tag_takes_the_tags_kind_when_its_type_says_nothing() -> None:
    assert classify_layer("application/octet-stream", {}, ".sbom") == ("sbom", "application/octet-stream")
    assert classify_layer("application/octet-stream", {}, ".att") == ("attestation", "application/octet-stream")
    assert classify_layer("application/vnd.dsse.envelope.v1+json",
                          {"predicateType": "https://slsa.dev/provenance/v0.2"}, ".att") == (
        "provenance", "https://slsa.dev/provenance/v0.2")


def sample() -> Evidence:
    scan = parse_scan_report((FIXTURES / "trivy-fluentd-multiple-lockfiles.json").read_bytes())
    return Evidence(
        D[0],
        (
            EvidenceItem("signature", "application/vnd.dev.cosign.simplesigning.v1+json", D[1], "tag", D[2]),
            EvidenceItem("sbom", "application/spdx+json", D[3], "referrer"),
            EvidenceItem("provenance", "https://slsa.dev/provenance/v0.2", D[4], "index", D[5], D[6]),
            EvidenceItem("sbom", "application/spdx+json", D[3], "referrer"),  # twice: kept once
        ),
        scan=scan,
    )


def test_the_file_form_is_canonical_and_reads_back() -> None:
    evidence = sample()
    data = evidence.to_bytes()
    assert data == sample().to_bytes()  # same evidence, same bytes
    assert data.endswith(b"}\n") and data.isascii()
    assert json.loads(data) == {
        "version": 1,
        "subject": str(D[0]),
        "items": [
            {"found": "index", "kind": "provenance", "type": "https://slsa.dev/provenance/v0.2",
             "manifest": str(D[4]), "layer": str(D[5]), "subject": str(D[6])},
            {"found": "referrer", "kind": "sbom", "type": "application/spdx+json", "manifest": str(D[3])},
            {"found": "tag", "kind": "signature", "type": "application/vnd.dev.cosign.simplesigning.v1+json",
             "manifest": str(D[1]), "layer": str(D[2])},
        ],
        "scan": {"scanner": "trivy", "version": "dev",
                 "counts": {"critical": 1, "high": 1, "medium": 0, "low": 1, "negligible": 0, "unknown": 0}},
    }
    assert evidence.digest == Digest.of(data)
    back = parse_evidence(data, evidence.digest)
    assert back == evidence
    assert back.kinds() == {"provenance": 1, "sbom": 1, "signature": 1}


def test_a_failed_scan_is_kept_as_its_reason() -> None:
    evidence = Evidence(D[0], scan_error="the scanner timed out after 10s")
    back = parse_evidence(evidence.to_bytes(), evidence.digest)
    assert back.scan_error == "the scanner timed out after 10s" and back.scan is None
    assert not back.empty and Evidence(D[0]).empty


def test_items_past_the_bound_are_counted_not_kept() -> None:
    items = [EvidenceItem("other", "x", Digest.of(str(n).encode()), "referrer") for n in range(MAX_ITEMS + 50)]
    evidence = Evidence(D[0], tuple(items))
    assert len(evidence.items) == MAX_ITEMS and evidence.omitted == 50
    assert parse_evidence(evidence.to_bytes(), evidence.digest) == evidence


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda b: b + b" ", "is sha256:"),
        (lambda b: b.replace(b"  ", b"   ", 1), "is sha256:"),
    ],
)
def test_a_file_that_is_not_what_the_lock_names_is_refused(change: object, said: str) -> None:
    evidence = sample()
    data = change(evidence.to_bytes())  # type: ignore[operator]
    with pytest.raises(EvidenceError, match=said):
        parse_evidence(data, evidence.digest, what="imagevet.evidence/x.json")


@pytest.mark.parametrize(
    ("obj", "said"),
    [
        ("not json", "not JSON"),
        ({"version": 2, "subject": str(D[0]), "items": []}, "version 2 is not 1"),
        ({"version": 1, "subject": "sha256:nope", "items": []}, "subject"),
        ({"version": 1, "subject": str(D[0]), "items": [{"kind": "virus", "type": "x", "manifest": str(D[1]), "found": "tag"}]},
         "items[0]: kind must be one of"),
        ({"version": 1, "subject": str(D[0]), "items": [], "extra": 1}, "unknown field 'extra'"),
        ({"version": 1, "subject": str(D[0]), "items": [], "scan": {"scanner": "trivy", "counts": {"high": "many"}}},
         "scan: invalid count"),
        ({"version": 1, "subject": str(D[0]), "items": [{"kind": "other"}]}, "items[0]: missing"),
    ],
)
def test_a_damaged_file_is_refused_with_the_reason(obj: object, said: str) -> None:
    data = obj.encode() if isinstance(obj, str) else (json.dumps(obj, sort_keys=True, indent=2) + "\n").encode()
    with pytest.raises(EvidenceError) as e:
        parse_evidence(data, Digest.of(data), what="ev.json")
    assert said in str(e.value) and str(e.value).startswith("ev.json: ")


def test_a_file_in_another_json_form_is_refused() -> None:
    evidence = sample()
    other = json.dumps(evidence.to_json()).encode()  # same data, not the canonical form
    with pytest.raises(EvidenceError, match="canonical"):
        parse_evidence(other, Digest.of(other))


def test_scan_hold_reasons_fail_closed() -> None:
    report = ScanReport("trivy", {"critical": 2, "high": 5, "low": 9})
    assert scan_hold_reason(ScanVerdict(report), "high", D[0]) == "scan: 2 critical, 5 high (fail_on: high)"
    assert scan_hold_reason(ScanVerdict(report), "critical", D[0]) == "scan: 2 critical (fail_on: critical)"
    assert scan_hold_reason(ScanVerdict(ScanReport("grype", {"low": 3})), "medium", D[0]) is None
    no_scan = scan_hold_reason(None, "high", D[0])
    assert no_scan is not None and no_scan.startswith(f"scan: no scan is recorded for sha256:{D[0].hex[:12]}")
    failed = scan_hold_reason(ScanVerdict(problem="the scanner exited with status 2"), "low", D[0])
    assert failed == f"scan: no verdict for sha256:{D[0].hex[:12]}: the scanner exited with status 2"
