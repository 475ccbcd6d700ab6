"""Keyless verification against a private Sigstore made in the tests (see test_keyless_world):
every check passes on the genuine article and fails, with its own reason, when one piece is
broken."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from imagevet.errors import SignatureError
from imagevet.signature.keyless import IdentityRule, KeylessVerified, verify_bundle, verify_keyless
from imagevet.signature.trustroot import TrustRoot
from tests.unit.signature.test_keyless_world import (
    CA,
    DIGEST,
    ISSUER,
    OTHER_DIGEST,
    SUBJECT,
    T0,
    Leaf,
    Log,
    World,
    audit_path,
    b64,
    dsse_body,
    hashedrekord,
    pae,
    sign,
    simple_signing,
    statement,
    tree_hash,
)

RULE = IdentityRule(subject=SUBJECT, issuer=ISSUER)
SIGNED_AT = T0 + timedelta(minutes=2)
LOG_INDEX = 4711
TREE_INDEX = 6


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trust(world: World) -> TrustRoot:
    return TrustRoot.load(world.trusted_root(), what="test trust root")


@pytest.fixture(scope="module")
def leaf(world: World) -> Leaf:
    return world.leaf()


# --- the legacy .sig layer ----------------------------------------------------------------


def legacy(world: World, leaf: Leaf, *, payload: bytes | None = None, signed_payload: bytes | None = None,
           integrated: datetime = SIGNED_AT, set_signer: Log | None = None, body: bytes | None = None,
           log_id: bytes | None = None, chain: bool = True) -> dict[str, Any]:
    """The arguments of verify_keyless for a .sig layer: annotations as cosign writes them."""
    signed_payload = signed_payload if signed_payload is not None else simple_signing()
    signature = sign(leaf, signed_payload)
    body = body if body is not None else hashedrekord(hashlib.sha256(signed_payload).digest(), signature, leaf.pem)
    promise = world.promise(body, integrated=integrated, log_index=LOG_INDEX, signer=set_signer)
    rekor = {"SignedEntryTimestamp": b64(promise),
             "Payload": {"body": b64(body), "integratedTime": int(integrated.timestamp()), "logIndex": LOG_INDEX,
                         "logID": (log_id or world.rekor.log_id).hex()}}
    return {"payload": payload if payload is not None else signed_payload, "signature": signature,
            "certificate_pem": leaf.pem, "chain_pem": world.chain_pem if chain else None,
            "rekor": json.dumps(rekor).encode()}


def fails(reason: str, fn: Any, *args: Any, **kwargs: Any) -> SignatureError:
    with pytest.raises(SignatureError) as e:
        fn(*args, **kwargs)
    assert re.search(reason, e.value.reason), e.value.reason
    return e.value


def test_legacy_signature_verifies_and_says_who_and_when(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    got = verify_keyless(**legacy(world, leaf), trust=trust, identity=RULE, image_digest=DIGEST)
    assert got == KeylessVerified(subject=SUBJECT, issuer=ISSUER, log_index=LOG_INDEX, integrated_time=SIGNED_AT,
                                  certificate_sha256=hashlib.sha256(leaf.der).hexdigest())


def test_legacy_without_the_chain_annotation_uses_the_trust_roots_intermediate(world: World, trust: TrustRoot,
                                                                               leaf: Leaf) -> None:
    assert verify_keyless(**legacy(world, leaf, chain=False), trust=trust, identity=RULE).subject == SUBJECT


def test_legacy_payload_for_another_digest(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    args = legacy(world, leaf, signed_payload=simple_signing(OTHER_DIGEST))
    fails(f"signed for {OTHER_DIGEST}, not for {DIGEST}", verify_keyless, **args, trust=trust, identity=RULE,
          image_digest=DIGEST)


def test_legacy_payload_changed_after_signing(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    args = legacy(world, leaf, payload=simple_signing(OTHER_DIGEST))
    fails("signature does not verify with the certificate's key", verify_keyless, **args, trust=trust, identity=RULE)


def test_legacy_tampered_signature(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    args = legacy(world, leaf)
    sig = bytearray(args["signature"])
    sig[-3] ^= 0x01
    fails("signature does not verify", verify_keyless, **{**args, "signature": bytes(sig)}, trust=trust, identity=RULE)


@pytest.mark.parametrize(("rule", "wants"), [
    (IdentityRule(subject="someone@example.org", issuer=ISSUER), "subject 'someone@example.org'"),
    (IdentityRule(subject=SUBJECT, issuer="https://token.actions.githubusercontent.com"),
     "issuer 'https://token.actions.githubusercontent.com'"),
    # patterns are anchored at both ends: a prefix or a suffix match is not enough
    (IdentityRule(subject_pattern=re.compile(r"release@example\.or"), issuer=ISSUER), "matching"),
    (IdentityRule(subject_pattern=re.compile(r"elease@example\.org"), issuer=ISSUER), "matching"),
    (IdentityRule(subject=SUBJECT, issuer_pattern=re.compile(r"https://accounts\.example\.com")), "matching"),
])
def test_legacy_wrong_identity(world: World, trust: TrustRoot, leaf: Leaf, rule: IdentityRule, wants: str) -> None:
    err = fails(f"certificate identity is '{re.escape(SUBJECT)}' from issuer '{re.escape(ISSUER)}', the policy wants",
                verify_keyless, **legacy(world, leaf), trust=trust, identity=rule)
    assert wants in err.reason


def test_identity_patterns_match_the_whole_value(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    rule = IdentityRule(subject_pattern=re.compile(r"[a-z]+@example\.org"),
                        issuer_pattern=re.compile(r"https://accounts\.example\.(org|com)"))
    assert verify_keyless(**legacy(world, leaf), trust=trust, identity=rule).issuer == ISSUER


def test_identity_rule_needs_one_of_each() -> None:
    with pytest.raises(ValueError, match="subject"):
        IdentityRule(issuer=ISSUER)
    with pytest.raises(ValueError, match="subject"):
        IdentityRule(subject=SUBJECT, subject_pattern=re.compile("x"), issuer=ISSUER)
    with pytest.raises(ValueError, match="issuer"):
        IdentityRule(subject=SUBJECT)


def test_uri_identity_and_the_deprecated_issuer_extension(world: World, trust: TrustRoot) -> None:
    workflow = "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.0.0"
    leaf = world.leaf(subject=workflow, uri=True, issuer_v1_only=True)
    got = verify_keyless(**legacy(world, leaf), trust=trust, identity=IdentityRule(subject=workflow, issuer=ISSUER))
    assert (got.subject, got.issuer) == (workflow, ISSUER)


def test_certificate_from_another_ca(world: World, trust: TrustRoot) -> None:
    other = CA.make("other")
    leaf = world.leaf(ca=other)
    args = legacy(world, leaf)
    args["chain_pem"] = None
    fails("does not chain to a Fulcio CA of the trust root", verify_keyless, **args, trust=trust, identity=RULE)


def test_another_ca_chain_in_the_annotation_is_not_trusted(world: World, trust: TrustRoot) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    other = CA.make("other")
    args = legacy(world, world.leaf(ca=other))
    args["chain_pem"] = other.intermediate.public_bytes(Encoding.PEM) + other.root.public_bytes(Encoding.PEM)
    fails("does not chain to a Fulcio CA", verify_keyless, **args, trust=trust, identity=RULE)


def test_signed_after_the_certificate_expired(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    args = legacy(world, leaf, integrated=T0 + timedelta(minutes=11))
    fails("signed after the certificate expired: it was valid until 2026-03-01T12:10:00",
          verify_keyless, **args, trust=trust, identity=RULE)


def test_logged_before_the_certificate_was_valid(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    args = legacy(world, leaf, integrated=T0 - timedelta(minutes=1))
    fails("before the certificate was valid", verify_keyless, **args, trust=trust, identity=RULE)


def test_ca_outside_its_validity_period_in_the_trust_root(world: World, leaf: Leaf) -> None:
    root = TrustRoot.load(world.trusted_root(ca_valid=(T0 - timedelta(days=9), T0 - timedelta(days=1))), what="r")
    fails("no Fulcio CA of the trust root .* was valid at 2026-03-01T12:02:00",
          verify_keyless, **legacy(world, leaf), trust=root, identity=RULE)


def test_rekor_key_outside_its_validity_period(world: World, leaf: Leaf) -> None:
    root = TrustRoot.load(world.trusted_root(rekor_valid=(T0 + timedelta(days=1), None)), what="r")
    fails("outside the period the trust root gives the log's key", verify_keyless, **legacy(world, leaf), trust=root,
          identity=RULE)


def test_no_sct(world: World, trust: TrustRoot) -> None:
    fails("^no SCT", verify_keyless, **legacy(world, world.leaf(sct="none")), trust=trust, identity=RULE)


def test_sct_signed_by_another_key(world: World, trust: TrustRoot) -> None:
    fails("no valid SCT: an SCT does not verify with its CT log's key",
          verify_keyless, **legacy(world, world.leaf(sct="forged")), trust=trust, identity=RULE)


def test_sct_from_a_ct_log_the_trust_root_does_not_name(world: World, trust: TrustRoot) -> None:
    fails("no valid SCT: SCT from CT log [0-9a-f]{16}\\.\\.\\., which the trust root does not name",
          verify_keyless, **legacy(world, world.leaf(sct="unknown-log")), trust=trust, identity=RULE)


def test_set_signed_by_another_key(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    fails("SignedEntryTimestamp does not verify", verify_keyless, **legacy(world, leaf, set_signer=Log.make()),
          trust=trust, identity=RULE)


def test_set_does_not_cover_a_changed_integrated_time(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    args = legacy(world, leaf)
    rekor = json.loads(args["rekor"])
    rekor["Payload"]["integratedTime"] += 60
    fails("SignedEntryTimestamp does not verify", verify_keyless, **{**args, "rekor": json.dumps(rekor).encode()},
          trust=trust, identity=RULE)


def test_entry_in_a_log_the_trust_root_does_not_name(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    fails("in log [0-9a-f]{16}\\.\\.\\., which the trust root .* does not name",
          verify_keyless, **legacy(world, leaf, log_id=b"\x01" * 32), trust=trust, identity=RULE)


def test_no_rekor_bundle(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    fails("no Rekor bundle", verify_keyless, **{**legacy(world, leaf), "rekor": None}, trust=trust, identity=RULE)


@pytest.mark.parametrize("what", ["digest", "signature", "certificate"])
def test_rekor_entry_for_something_else(world: World, trust: TrustRoot, leaf: Leaf, what: str) -> None:
    payload = simple_signing()
    signature = sign(leaf, payload)
    digest = hashlib.sha256(payload).digest()
    if what == "digest":
        body = hashedrekord(hashlib.sha256(b"other").digest(), signature, leaf.pem)
    elif what == "signature":
        body = hashedrekord(digest, sign(leaf, payload), leaf.pem)  # ECDSA: another valid signature
    else:
        body = hashedrekord(digest, signature, world.leaf().pem)
    args = legacy(world, leaf, body=body)
    args["signature"] = signature
    fails(f"Rekor entry records another {'payload digest' if what == 'digest' else what}",
          verify_keyless, **args, trust=trust, identity=RULE)


# --- the Sigstore bundle ------------------------------------------------------------------


def make_bundle(world: World, leaf: Leaf, *, payload: bytes | None = None, signed_payload: bytes | None = None,
                message: bool = False, integrated: datetime = SIGNED_AT, promise: bool = True, proof: bool = True,
                hashes: Any = None, checkpoint_signer: Log | None = None, checkpoint_root: bytes | None = None,
                media: str = "application/vnd.dev.sigstore.bundle.v0.3+json", body: bytes | None = None) -> bytes:
    """A bundle as cosign v3 attaches it (DSSE), or as sign-blob writes it (``message``)."""
    if message:
        digest = bytes.fromhex(DIGEST.split(":")[1])
        from cryptography.hazmat.primitives import hashes as h
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        signature = leaf.key.sign(digest, ec.ECDSA(utils.Prehashed(h.SHA256())))
        body = body or hashedrekord(digest, signature, leaf.pem)
        content: dict[str, Any] = {"messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)}, "signature": b64(signature)}}
    else:
        signed_payload = signed_payload if signed_payload is not None else statement()
        signature = sign(leaf, pae("application/vnd.in-toto+json", signed_payload))
        body = body or dsse_body(signed_payload, signature, leaf.pem)
        content = {"dsseEnvelope": {"payload": b64(payload if payload is not None else signed_payload),
                                    "payloadType": "application/vnd.in-toto+json",
                                    "signatures": [{"sig": b64(signature), "keyid": ""}]}}
    leaves = [b"entry %d" % i for i in range(11)]
    leaves[TREE_INDEX] = body
    root = tree_hash(leaves)
    entry: dict[str, Any] = {
        "logIndex": str(LOG_INDEX), "logId": {"keyId": b64(world.rekor.log_id)},
        "kindVersion": {"kind": "hashedrekord" if message else "dsse", "version": "0.0.1"},
        "integratedTime": str(int(integrated.timestamp())), "canonicalizedBody": b64(body),
    }
    if promise:
        entry["inclusionPromise"] = {"signedEntryTimestamp": b64(world.promise(body, integrated=integrated,
                                                                                log_index=LOG_INDEX))}
    if proof:
        path = hashes if hashes is not None else audit_path(TREE_INDEX, leaves)
        entry["inclusionProof"] = {
            "logIndex": str(TREE_INDEX), "rootHash": b64(root), "treeSize": str(len(leaves)),
            "hashes": [b64(x) for x in path],
            "checkpoint": {"envelope": world.checkpoint(len(leaves), checkpoint_root or root, signer=checkpoint_signer)},
        }
    doc = {"mediaType": media,
           "verificationMaterial": {"certificate": {"rawBytes": b64(leaf.der)}, "tlogEntries": [entry]}, **content}
    return json.dumps(doc).encode()


def test_bundle_verifies_and_says_who_and_when(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    got = verify_bundle(make_bundle(world, leaf), artifact_digest=DIGEST, trust=trust, identity=RULE)
    assert got == KeylessVerified(SUBJECT, ISSUER, LOG_INDEX, SIGNED_AT, hashlib.sha256(leaf.der).hexdigest())


def test_message_signature_bundle_with_a_chain(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    doc = json.loads(make_bundle(world, leaf, message=True, media="application/vnd.dev.sigstore.bundle+json;version=0.2"))
    doc["verificationMaterial"]["x509CertificateChain"] = {"certificates": [
        {"rawBytes": b64(leaf.der)}, {"rawBytes": b64(world.ca.intermediate.public_bytes(Encoding.DER))}]}
    del doc["verificationMaterial"]["certificate"]
    got = verify_bundle(json.dumps(doc).encode(), artifact_digest=DIGEST, trust=trust, identity=RULE)
    assert (got.subject, got.log_index) == (SUBJECT, LOG_INDEX)
    fails(f"signature is for {DIGEST}, not for {OTHER_DIGEST}", verify_bundle, json.dumps(doc).encode(),
          artifact_digest=OTHER_DIGEST, trust=trust, identity=RULE)


def test_bundle_for_another_digest(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    fails(f"signature is for {DIGEST}, not for {OTHER_DIGEST}", verify_bundle, make_bundle(world, leaf),
          artifact_digest=OTHER_DIGEST, trust=trust, identity=RULE)


def test_bundle_payload_changed_after_signing(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    fails("DSSE signature does not verify", verify_bundle, make_bundle(world, leaf, payload=statement(OTHER_DIGEST)),
          artifact_digest=OTHER_DIGEST, trust=trust, identity=RULE)


def test_bundle_tampered_signature(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    doc = json.loads(make_bundle(world, leaf))
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-2] ^= 0x40
    doc["dsseEnvelope"]["signatures"][0]["sig"] = b64(bytes(sig))
    fails("DSSE signature does not verify", verify_bundle, json.dumps(doc).encode(), artifact_digest=DIGEST,
          trust=trust, identity=RULE)


def test_an_attestation_is_not_a_signature_unless_asked(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    bundle = make_bundle(world, leaf, signed_payload=statement(predicate_type="https://spdx.dev/Document"))
    fails("is a 'https://spdx.dev/Document' attestation, not a signature", verify_bundle, bundle,
          artifact_digest=DIGEST, trust=trust, identity=RULE)
    got = verify_bundle(bundle, artifact_digest=DIGEST, trust=trust, identity=RULE, predicate_type=None)
    assert got.subject == SUBJECT


def test_bundle_wrong_identity(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    rule = IdentityRule(subject=SUBJECT, issuer_pattern=re.compile(r"https://accounts\.example"))
    fails("from issuer 'https://accounts.example.org', the policy wants subject 'release@example.org' from issuer "
          "matching", verify_bundle, make_bundle(world, leaf), artifact_digest=DIGEST, trust=trust, identity=rule)


def test_inclusion_proof_that_does_not_verify(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    good = json.loads(make_bundle(world, leaf))["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"]
    path = [base64.b64decode(h) for h in good]
    flipped = [path[0][:-1] + bytes([path[0][-1] ^ 1]), *path[1:]]
    for hashes in (flipped, path[:-1], [*path, path[0]], list(reversed(path))):
        fails("inclusion proof does not lead from the entry to the root hash", verify_bundle,
              make_bundle(world, leaf, hashes=hashes), artifact_digest=DIGEST, trust=trust, identity=RULE)


def test_checkpoint_for_another_root(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    fails("inclusion proof does not lead to the checkpoint", verify_bundle,
          make_bundle(world, leaf, checkpoint_root=b"\x07" * 32), artifact_digest=DIGEST, trust=trust, identity=RULE)


def test_checkpoint_signed_by_another_key(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    fails("checkpoint is not signed by the Rekor log's key", verify_bundle,
          make_bundle(world, leaf, checkpoint_signer=Log.make()), artifact_digest=DIGEST, trust=trust, identity=RULE)


def test_no_inclusion_proof(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    fails("no inclusion proof", verify_bundle, make_bundle(world, leaf, proof=False), artifact_digest=DIGEST,
          trust=trust, identity=RULE)


def test_no_inclusion_promise_means_no_verified_time(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    fails("no integrated time with a SignedEntryTimestamp", verify_bundle, make_bundle(world, leaf, promise=False),
          artifact_digest=DIGEST, trust=trust, identity=RULE)


def test_bundle_expired_certificate_and_no_sct(world: World, trust: TrustRoot) -> None:
    fails("signed after the certificate expired", verify_bundle,
          make_bundle(world, world.leaf(), integrated=T0 + timedelta(hours=1)),
          artifact_digest=DIGEST, trust=trust, identity=RULE)
    fails("^no SCT", verify_bundle, make_bundle(world, world.leaf(sct="none")), artifact_digest=DIGEST, trust=trust,
          identity=RULE)


def test_bundle_entry_for_another_payload(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    other = statement(OTHER_DIGEST)
    body = dsse_body(other, sign(leaf, pae("application/vnd.in-toto+json", other)), leaf.pem)
    fails("Rekor entry records another DSSE payload", verify_bundle, make_bundle(world, leaf, body=body),
          artifact_digest=DIGEST, trust=trust, identity=RULE)


def test_bundle_signed_with_a_key_is_not_keyless(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    doc = json.loads(make_bundle(world, leaf))
    doc["verificationMaterial"] = {"publicKey": {"hint": "x"}, "tlogEntries": []}
    fails("signed with a key, not keyless", verify_bundle, json.dumps(doc).encode(), artifact_digest=DIGEST,
          trust=trust, identity=RULE)


def test_sigstore_python_accepts_what_the_world_makes(world: World, leaf: Leaf, tmp_path: Any) -> None:
    """The oracle: the reference client verifies our test bundles, so their format is the real one."""
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier, policy

    root_file = tmp_path / "trusted_root.json"
    root_file.write_bytes(world.trusted_root())
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(root_file)))
    bundle = Bundle.from_json(make_bundle(world, leaf))
    payload_type, payload = verifier.verify_dsse(bundle, policy.Identity(identity=SUBJECT, issuer=ISSUER))
    assert json.loads(payload)["subject"][0]["digest"] == {"sha256": DIGEST.split(":")[1]}
    message = Bundle.from_json(make_bundle(world, leaf, message=True))
    from sigstore.hashes import Hashed
    from sigstore_models.common.v1 import HashAlgorithm

    verifier.verify_artifact(Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(DIGEST.split(":")[1])),
                             message, policy.Identity(identity=SUBJECT, issuer=ISSUER))


def test_results_are_frozen(world: World, trust: TrustRoot, leaf: Leaf) -> None:
    got = verify_bundle(make_bundle(world, leaf), artifact_digest=DIGEST, trust=trust, identity=RULE)
    with pytest.raises(AttributeError):
        got.subject = "x"  # type: ignore[misc]
    assert replace(got, subject="x").subject == "x"
    assert got.integrated_time.tzinfo == UTC
