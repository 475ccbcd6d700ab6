"""Hostile and malformed inputs: bounded, refused with a SignatureError that says what is wrong,
never an exception of another type.  Also the RFC 6962 audit path against a reference tree, and
trust root files."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from imagevet.errors import SignatureError
from imagevet.signature.keyless import IdentityRule, verify_bundle, verify_keyless
from imagevet.signature.merkle import leaf_hash, parse_checkpoint, root_from_inclusion_proof
from imagevet.signature.trustroot import TrustRoot
from tests.unit.signature.test_keyless import legacy, make_bundle
from tests.unit.signature.test_keyless_world import (
    DIGEST,
    ISSUER,
    SUBJECT,
    World,
    audit_path,
    tree_hash,
)

RULE = IdentityRule(subject=SUBJECT, issuer=ISSUER)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trust(world: World) -> TrustRoot:
    return TrustRoot.load(world.trusted_root(), what="test trust root")


def refused(reason: str, fn: Callable[[], Any]) -> str:
    start = time.monotonic()
    with pytest.raises(SignatureError) as e:
        fn()
    assert time.monotonic() - start < 2, "a hostile input must be refused quickly"
    assert re.search(reason, e.value.reason), e.value.reason
    return e.value.reason


# --- legacy annotations -------------------------------------------------------------------


@pytest.mark.parametrize(("change", "reason"), [
    ({"certificate_pem": b"-----BEGIN CERTIFICATE-----\n" + b"A" * (5 << 20)}, "too long"),
    ({"certificate_pem": b"not a certificate"}, "not a PEM certificate"),
    ({"certificate_pem": b"-----BEGIN CERTIFICATE-----\nZm9v\n-----END CERTIFICATE-----\n"}, "not a PEM certificate"),
    ({"chain_pem": b"-----BEGIN CERTIFICATE-----\nZm9v\n-----END CERTIFICATE-----\n" * 9}, "more than 8 certificates"),
    ({"chain_pem": b"x" * (1 << 20)}, "too long"),
    ({"chain_pem": b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"}, "not PEM certificates"),
    ({"signature": b""}, "empty or too long"),
    ({"signature": b"\x30" * 100_000}, "empty or too long"),
    ({"payload": b"{" * (2 << 20)}, "too long"),
    ({"rekor": b"\xff\xfe garbage"}, "not JSON"),
    ({"rekor": b"[" * 100_000 + b"]" * 100_000}, "nested too deeply|too long"),
    ({"rekor": b"[" * 50_000}, "nested too deeply|not JSON"),
    ({"rekor": b" " * (300 * 1024)}, "too long"),
    ({"rekor": b"[]"}, "expected a JSON object"),
    ({"rekor": json.dumps({"SignedEntryTimestamp": "%%%", "Payload": {}}).encode()}, "Payload.body"),
])
def test_hostile_legacy_annotations(world: World, trust: TrustRoot, change: dict[str, bytes], reason: str) -> None:
    args = {**legacy(world, world.leaf()), **change}
    refused(reason, lambda: verify_keyless(**args, trust=trust, identity=RULE))


def test_legacy_rekor_bundle_fields(world: World, trust: TrustRoot) -> None:
    args = legacy(world, world.leaf())
    good = json.loads(args["rekor"])
    for path, value, reason in [
        (("SignedEntryTimestamp",), "not*base64", "SignedEntryTimestamp: not base64"),
        (("Payload", "body"), "@@@", "Payload.body: not base64"),
        (("Payload", "logID"), "zz", "Payload.logID: not hex"),
        (("Payload", "logIndex"), -1, "Payload.logIndex: expected a non-negative integer"),
        (("Payload", "logIndex"), "9" * 5000, "Payload.logIndex: expected a non-negative integer"),
        (("Payload", "integratedTime"), True, "Payload.integratedTime: expected"),
        (("Payload", "integratedTime"), 2**62, f"Payload.integratedTime: {2**62} is not a time"),
        (("Payload", "body"), base64.b64encode(b'{"kind":"rekord","apiVersion":"0.0.1","spec":{}}').decode(),
         "SignedEntryTimestamp does not verify"),
    ]:
        doc = json.loads(json.dumps(good))
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        refused(re.escape(reason), lambda d=doc: verify_keyless(**{**args, "rekor": json.dumps(d).encode()},
                                                                trust=trust, identity=RULE))


def test_huge_number_in_json_is_refused(world: World, trust: TrustRoot) -> None:
    args = legacy(world, world.leaf())
    text = args["rekor"].decode().replace('"logIndex": 4711', '"logIndex": ' + "9" * 100_000)
    refused("not JSON|logIndex", lambda: verify_keyless(**{**args, "rekor": text.encode()}, trust=trust, identity=RULE))


# --- bundles ------------------------------------------------------------------------------


def mutate(bundle: bytes, fn: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(bundle)
    fn(doc)
    return json.dumps(doc).encode()


def entry(doc: dict[str, Any]) -> dict[str, Any]:
    e: dict[str, Any] = doc["verificationMaterial"]["tlogEntries"][0]
    return e


@pytest.mark.parametrize(("fn", "reason"), [
    (lambda d: d.update(mediaType="application/json"), "is not a Sigstore bundle"),
    (lambda d: d.pop("dsseEnvelope"), "neither a messageSignature nor a dsseEnvelope"),
    (lambda d: d["verificationMaterial"].pop("certificate"), "no certificate"),
    (lambda d: d["verificationMaterial"]["certificate"].update(rawBytes="!!!!"), "certificate.rawBytes: not base64"),
    (lambda d: d["verificationMaterial"]["certificate"].update(rawBytes="Zm9vYmFy"), "not a DER X.509 certificate"),
    (lambda d: d["verificationMaterial"]["certificate"].update(rawBytes="A" * 100_000), "too long"),
    (lambda d: d["verificationMaterial"].update(tlogEntries=[]), "expected one Rekor entry, the bundle has 0"),
    (lambda d: d["verificationMaterial"].update(tlogEntries=[{}] * 100), "too many"),
    (lambda d: entry(d)["inclusionProof"].update(hashes=["AAAA"] * 5000), "too many"),
    (lambda d: entry(d)["inclusionProof"].update(treeSize="0"), "inclusion proof does not lead"),
    (lambda d: entry(d).update(integratedTime=str(2**63 - 1)), "integratedTime: 9223372036854775807 is not a time"),
    (lambda d: entry(d)["inclusionProof"].update(logIndex="99"), "inclusion proof does not lead"),
    (lambda d: entry(d)["inclusionProof"]["checkpoint"].update(envelope="garbage"), "checkpoint is not a signed note"),
    (lambda d: entry(d)["inclusionProof"]["checkpoint"].update(envelope="x\n" * 20_000), "too long"),
    (lambda d: entry(d).update(kindVersion={"kind": "intoto", "version": "0.0.2"}), "says the entry is intoto"),
    (lambda d: entry(d).update(canonicalizedBody=base64.b64encode(b"[" * 60_000).decode()),
     "SignedEntryTimestamp does not verify"),
    (lambda d: d["dsseEnvelope"].update(payloadType="text/plain"), "DSSE payload type is 'text/plain'"),
    (lambda d: d["dsseEnvelope"].update(signatures=[]), "expected one DSSE signature, the envelope has 0"),
    (lambda d: d["dsseEnvelope"].update(payload=base64.b64encode(b"[" * 200_000).decode()), "DSSE signature does not"),
])
def test_hostile_bundles(world: World, trust: TrustRoot, fn: Callable[[dict[str, Any]], None], reason: str) -> None:
    bundle = mutate(make_bundle(world, world.leaf()), fn)
    refused(reason, lambda: verify_bundle(bundle, artifact_digest=DIGEST, trust=trust, identity=RULE))


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x00" * (5 << 20), "too long"),
    (b"[" * 200_000, "nested too deeply|not JSON"),
    (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    (b"not json", "not JSON"),
    (b'"a string"', "expected a JSON object"),
])
def test_bundle_that_is_not_one(trust: TrustRoot, data: bytes, reason: str) -> None:
    refused(reason, lambda: verify_bundle(data, artifact_digest=DIGEST, trust=trust, identity=RULE))


def test_artifact_digest_must_be_a_digest(world: World, trust: TrustRoot) -> None:
    refused("artifact digest 'latest' is not a digest",
            lambda: verify_bundle(make_bundle(world, world.leaf()), artifact_digest="latest", trust=trust,
                                  identity=RULE))


def test_statement_with_a_hostile_subject_list(world: World, trust: TrustRoot) -> None:
    payload = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {}}] * 5000,
                          "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}).encode()
    bundle = make_bundle(world, world.leaf(), signed_payload=payload)
    refused("subject: 5000 entries is too many",
            lambda: verify_bundle(bundle, artifact_digest=DIGEST, trust=trust, identity=RULE))


# --- RFC 6962 audit paths -----------------------------------------------------------------


def test_inclusion_proofs_against_a_reference_tree() -> None:
    for size in range(1, 34):
        leaves = [b"leaf %d" % i for i in range(size)]
        root = tree_hash(leaves)
        for index in range(size):
            path = audit_path(index, leaves)
            assert root_from_inclusion_proof(index, size, leaf_hash(leaves[index]), path) == root
            assert root_from_inclusion_proof(index, size, leaf_hash(b"other"), path) != root
            if size > 1:
                assert root_from_inclusion_proof((index + 1) % size, size, leaf_hash(leaves[index]), path) != root
                assert root_from_inclusion_proof(index, size, leaf_hash(leaves[index]), path[:-1]) != root
            assert root_from_inclusion_proof(index, size, leaf_hash(leaves[index]), [*path, root]) is None
    # (another tree size can give the same root for a left-edge leaf: the checkpoint binds the size)
    assert root_from_inclusion_proof(5, 5, leaf_hash(b"x"), []) is None
    assert root_from_inclusion_proof(0, 2, leaf_hash(b"x"), [b"short"]) is None


def test_checkpoint_notes() -> None:
    root = base64.b64encode(b"\x01" * 32).decode()
    sig = base64.b64encode(b"\xaa\xbb\xcc\xdd" + b"s" * 70).decode()
    note = parse_checkpoint(f"log - 1\n10\n{root}\n\n\u2014 log {sig}\n")
    assert note is not None and (note.origin, note.size, note.root_hash) == ("log - 1", 10, b"\x01" * 32)
    assert note.text == f"log - 1\n10\n{root}\n".encode()
    assert note.signatures == (("log", b"\xaa\xbb\xcc\xdd", b"s" * 70),)
    for bad in (f"log\n10\n{root}\n\u2014 log {sig}\n", f"log\nten\n{root}\n\n\u2014 log {sig}\n",
                f"log\n10\nnot-base64\n\n\u2014 log {sig}\n", f"log\n10\n{root}\n\n- log {sig}\n",
                f"log\n10\n{root}\n\n", f"log\n10\n{root}\n\n\u2014 log AAAA\n", f"log\n10\n{root}\n\n\u2014 log {sig}"):
        assert parse_checkpoint(bad) is None, bad


# --- trust roots --------------------------------------------------------------------------


def root_doc(world: World) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(world.trusted_root())
    return doc


@pytest.mark.parametrize(("fn", "reason"), [
    (lambda d: d.update(mediaType="application/json"), "is not a Sigstore trusted root"),
    (lambda d: d.update(certificateAuthorities=[]), "names no Fulcio certificate authority"),
    (lambda d: d.update(tlogs=[]), "names no Rekor transparency log"),
    (lambda d: d["certificateAuthorities"][0]["certChain"].update(certificates=[]), "certChain.certificates: empty"),
    (lambda d: d["certificateAuthorities"][0]["certChain"]["certificates"][0].update(rawBytes="Zm9v"),
     r"certificateAuthorities\[0\].certChain.certificates\[0\]: not a DER X.509 certificate"),
    (lambda d: d["certificateAuthorities"][0].update(validFor={"start": "yesterday"}),
     r"certificateAuthorities\[0\].validFor.start: not an RFC 3339 time"),
    (lambda d: d["tlogs"][0].update(logId={"keyId": "%%"}), r"tlogs\[0\].logId.keyId: not base64"),
    (lambda d: d.update(ctlogs={"a": 1}), "ctlogs: expected a list"),
])
def test_bad_trust_roots(world: World, fn: Callable[[dict[str, Any]], None], reason: str) -> None:
    doc = root_doc(world)
    fn(doc)
    refused(reason, lambda: TrustRoot.load(json.dumps(doc).encode(), what="my-root.json"))


def test_trust_root_errors_name_the_file() -> None:
    with pytest.raises(SignatureError) as e:
        TrustRoot.load(b"{", what="/etc/imagevet/root.json")
    assert e.value.what == "/etc/imagevet/root.json"
    refused("too long", lambda: TrustRoot.load(b" " * (2 << 20), what="r"))


def test_trust_root_skips_a_key_type_it_does_not_know(world: World) -> None:
    doc = root_doc(world)
    unknown = json.loads(json.dumps(doc["tlogs"][0]))
    unknown["publicKey"]["rawBytes"] = base64.b64encode(b"\x30\x03\x02\x01\x00").decode()
    doc["tlogs"].append(unknown)
    root = TrustRoot.load(json.dumps(doc).encode(), what="r")
    assert len(root.rekor) == 1
