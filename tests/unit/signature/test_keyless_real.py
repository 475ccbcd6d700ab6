"""Real signatures made against the production Sigstore (tests/fixtures/sigstore/README.md),
verified offline with the trust root the sigstore package ships."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from imagevet.errors import SignatureError
from imagevet.signature.keyless import IdentityRule, verify_bundle, verify_keyless
from imagevet.signature.trustroot import TrustRoot
from tests.unit.signature.test_keyless_world import World

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sigstore"
EMPTY_IMAGE = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
WHEEL = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
SECUREBUILD = "sha256:5ce2d8cd8e366d76ce012edc346daeb15a5643c26b9b24a2b731e97a99c6de52"
WORKFLOW = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
GITHUB_ACTIONS = "https://token.actions.githubusercontent.com"
GSA = "cosign@cosign-test-384419.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def public_good() -> TrustRoot:
    return TrustRoot.public_good()


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def legacy_args() -> dict[str, Any]:
    annotations = json.loads(read("cosign-legacy-keyless-layer.json"))["annotations"]
    return {
        "payload": read("cosign-legacy-keyless-payload.json"),
        "signature": base64.b64decode(annotations["dev.cosignproject.cosign/signature"]),
        "certificate_pem": annotations["dev.sigstore.cosign/certificate"].encode(),
        "chain_pem": annotations["dev.sigstore.cosign/chain"].encode(),
        "rekor": annotations["dev.sigstore.cosign/bundle"].encode(),
    }


def test_public_good_trust_root_is_read_offline_from_the_sigstore_package(public_good: TrustRoot) -> None:
    assert "sigstore 4." in public_good.source
    rekor = public_good.rekor_log(bytes.fromhex("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"))
    assert rekor is not None and rekor.base_url == "https://rekor.sigstore.dev"
    assert {ca.uri for ca in public_good.fulcio} == {"https://fulcio.sigstore.dev"}
    names = {c.subject.rfc4514_string() for ca in public_good.fulcio for c in ca.certificates}
    assert "CN=sigstore,O=sigstore.dev" in names
    # the first Fulcio CA was retired at the end of 2022; the trust root says so
    ends = sorted((ca.valid.end for ca in public_good.fulcio), key=lambda e: e or datetime.max.replace(tzinfo=UTC))
    assert ends[0] == datetime(2022, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) and ends[-1] is None
    assert len(public_good.ctlogs) >= 2 and len(public_good.tsas) >= 1


def test_real_cosign_bundle_dsse(public_good: TrustRoot) -> None:
    got = verify_bundle(read("cosign-oci-attestation.sigstore.json"), artifact_digest=EMPTY_IMAGE, trust=public_good,
                        identity=IdentityRule(subject="cody@soyland.com", issuer="https://github.com/login/oauth"),
                        predicate_type="https://cosign.sigstore.dev/attestation/v1")
    assert (got.subject, got.issuer, got.log_index) == ("cody@soyland.com", "https://github.com/login/oauth", 175508996)
    assert got.integrated_time == datetime(2025, 2, 28, 19, 18, 11, tzinfo=UTC)
    assert got.certificate_sha256 == "dec0b1e2104dc7cbdcf47f1e05ee98850bec08dea46a4c5d5c18976e6c735dce"


def test_real_cosign_attestation_is_not_an_image_signature(public_good: TrustRoot) -> None:
    with pytest.raises(SignatureError, match="'https://cosign.sigstore.dev/attestation/v1' attestation, not a signature"):
        verify_bundle(read("cosign-oci-attestation.sigstore.json"), artifact_digest=EMPTY_IMAGE, trust=public_good,
                      identity=IdentityRule(subject="cody@soyland.com", issuer="https://github.com/login/oauth"))


def test_real_bundle_for_another_image(public_good: TrustRoot) -> None:
    with pytest.raises(SignatureError, match=f"signature is for {EMPTY_IMAGE}, not for {SECUREBUILD}"):
        verify_bundle(read("cosign-oci-attestation.sigstore.json"), artifact_digest=SECUREBUILD, trust=public_good,
                      identity=IdentityRule(subject="cody@soyland.com", issuer="https://github.com/login/oauth"),
                      predicate_type=None)


def test_real_message_signature_bundle_from_github_actions(public_good: TrustRoot) -> None:
    rule = IdentityRule(subject_pattern=re.compile(r"https://github\.com/trailofbits/rfc8785\.py/\.github/workflows/"
                                                   r"release\.yml@refs/tags/v.*"), issuer=GITHUB_ACTIONS)
    got = verify_bundle(read("sigstore-python-bundle_v3_github.whl.sigstore"), artifact_digest=WHEEL,
                        trust=public_good, identity=rule)
    assert (got.subject, got.issuer, got.log_index) == (WORKFLOW, GITHUB_ACTIONS, 79605083)
    assert got.integrated_time == datetime(2024, 3, 19, 22, 41, 16, tzinfo=UTC)


def test_real_bundle_wrong_identity_names_the_real_one(public_good: TrustRoot) -> None:
    rule = IdentityRule(subject_pattern=re.compile(r"https://github\.com/trailofbits/.*"),
                        issuer="https://accounts.google.com")
    with pytest.raises(SignatureError) as e:
        verify_bundle(read("sigstore-python-bundle_v3_github.whl.sigstore"), artifact_digest=WHEEL,
                      trust=public_good, identity=rule)
    assert e.value.reason == (f"the certificate identity is '{WORKFLOW}' from issuer '{GITHUB_ACTIONS}', the policy "
                              "wants subject matching 'https://github\\\\.com/trailofbits/.*' from issuer "
                              "'https://accounts.google.com'")


def test_real_bundle_with_a_tampered_inclusion_proof(public_good: TrustRoot) -> None:
    doc = json.loads(read("cosign-oci-attestation.sigstore.json"))
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    first = bytearray(base64.b64decode(proof["hashes"][0]))
    first[0] ^= 0x80
    proof["hashes"][0] = base64.b64encode(bytes(first)).decode()
    with pytest.raises(SignatureError, match="inclusion proof does not lead from the entry to the root hash"):
        verify_bundle(json.dumps(doc).encode(), artifact_digest=EMPTY_IMAGE, trust=public_good, predicate_type=None,
                      identity=IdentityRule(subject="cody@soyland.com", issuer="https://github.com/login/oauth"))


def test_real_bundle_with_a_forged_checkpoint_signature(public_good: TrustRoot) -> None:
    doc = json.loads(read("cosign-oci-attestation.sigstore.json"))
    checkpoint = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
    checkpoint["envelope"] = checkpoint["envelope"].replace("\n53604735\n", "\n53604736\n")
    with pytest.raises(SignatureError, match="does not lead to the checkpoint"):
        verify_bundle(json.dumps(doc).encode(), artifact_digest=EMPTY_IMAGE, trust=public_good, predicate_type=None,
                      identity=IdentityRule(subject="cody@soyland.com", issuer="https://github.com/login/oauth"))


def test_real_bundle_against_a_private_trust_root() -> None:
    private = TrustRoot.load(World().trusted_root(), what="private root")
    with pytest.raises(SignatureError, match=r"in log c0d23d6ad406973f\.\.\., which the trust root \(private root\)"):
        verify_bundle(read("cosign-oci-attestation.sigstore.json"), artifact_digest=EMPTY_IMAGE, trust=private,
                      predicate_type=None,
                      identity=IdentityRule(subject="cody@soyland.com", issuer="https://github.com/login/oauth"))


def test_real_legacy_keyless_sig_layer(public_good: TrustRoot) -> None:
    got = verify_keyless(**legacy_args(), trust=public_good, image_digest=SECUREBUILD,
                         identity=IdentityRule(subject=GSA, issuer="https://accounts.google.com"))
    assert (got.subject, got.issuer, got.log_index) == (GSA, "https://accounts.google.com", 18589865)
    assert got.integrated_time == datetime(2023, 4, 21, 19, 13, 55, tzinfo=UTC)


def test_real_legacy_signature_for_another_image(public_good: TrustRoot) -> None:
    with pytest.raises(SignatureError, match=f"signed for {SECUREBUILD}, not for {EMPTY_IMAGE}"):
        verify_keyless(**legacy_args(), trust=public_good, image_digest=EMPTY_IMAGE,
                       identity=IdentityRule(subject=GSA, issuer="https://accounts.google.com"))


def test_real_legacy_signature_tampered(public_good: TrustRoot) -> None:
    args = legacy_args()
    args["payload"] = args["payload"].replace(b"value1", b"value2")
    with pytest.raises(SignatureError, match="signature does not verify"):
        verify_keyless(**args, trust=public_good, identity=IdentityRule(subject=GSA, issuer="https://accounts.google.com"))


def test_real_legacy_set_with_another_integrated_time(public_good: TrustRoot) -> None:
    args = legacy_args()
    rekor = json.loads(args["rekor"])
    rekor["Payload"]["integratedTime"] -= 1
    args["rekor"] = json.dumps(rekor).encode()
    with pytest.raises(SignatureError, match="SignedEntryTimestamp does not verify"):
        verify_keyless(**args, trust=public_good, identity=IdentityRule(subject=GSA, issuer="https://accounts.google.com"))
