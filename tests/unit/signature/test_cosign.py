"""cosign's formats, read strictly and written byte for byte as cosign writes them, checked
against what sigstore/cosign publishes (tests/fixtures/cosign/README.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import SignatureError
from imagevet.manifest import Descriptor, RawManifest
from imagevet.signature.cosign import (
    BUNDLE_MEDIA_TYPES,
    MAX_LAYERS,
    MAX_PAYLOAD_BYTES,
    SIGNATURE_ANNOTATION,
    SIGNATURE_ARTIFACT_TYPE,
    SIMPLESIGNING_MEDIA_TYPE,
    check_statement,
    dsse_pae,
    is_signature_referrer,
    make_payload,
    make_signature_manifest,
    parse_bundle,
    parse_payload,
    signature_layers,
)
from tests.fixtures.cosign.signing import bundle, generate, statement

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cosign"
DIGEST = Digest.parse("sha256:4aa3054270f7a70b4528f2064ee90961788e1e1518703592ae4463de3b889dec")


def test_the_payload_is_byte_for_byte_what_cosign_writes() -> None:
    published = (FIXTURES / "obsolete_test.payload.json").read_bytes()
    assert make_payload("index.docker.io/namespace/image", DIGEST) == published


def test_optional_claims_are_a_go_map_sorted_and_html_escaped() -> None:
    data = make_payload("r/app", DIGEST, {"z": 1, "a": "<&>"})
    assert data.endswith(b',"optional":{"a":"\\u003c\\u0026\\u003e","z":1}}')
    assert parse_payload(data, what="x").optional == {"a": "<&>", "z": 1}


def test_payloads_cosign_published_are_read() -> None:
    one = parse_payload((FIXTURES / "obsolete_test.payload.json").read_bytes(), what="x")
    assert one.manifest_digest == DIGEST and one.docker_reference == "index.docker.io/namespace/image"
    verified = json.loads((FIXTURES / "readme-verify-output.json").read_bytes())
    two = parse_payload(json.dumps(verified[0]).encode(), what="x")
    assert str(two.manifest_digest) == "sha256:7a91c50d922925f152fec96ed1d84b7bc6b2079c169d68826f6cf307f22d40e6"


@pytest.mark.parametrize(("data", "reason"), [
    (b"not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[]", "not a JSON object"),
    (b'{"optional":null}', "no 'critical'"),
    (make_payload("r", DIGEST).replace(b'"type"', b'"type":"x","type"'), "given twice"),
    (make_payload("r", DIGEST).replace(b"cosign container image signature", b"atomic container signature"),
     "critical.type"),
    (make_payload("r", DIGEST).replace(b'"docker-manifest-digest"', b'"Docker-manifest-digest"'), "unknown key"),
    (make_payload("r", DIGEST).replace(b"sha256:4aa3", b"sha256:XXXX"), "docker-manifest-digest"),
    (make_payload("r", DIGEST).replace(b'"r"', b"7"), "not a string"),
    (make_payload("r", DIGEST).replace(b'"optional":null', b'"optional":[1]'), "optional"),
    (make_payload("r", DIGEST).replace(b'{"critical"', b'{"extra":1,"critical"'), "unknown key 'extra'"),
    (b"[" * 60_000, "nests too deep"),
    (b" " * (MAX_PAYLOAD_BYTES + 1), f"at most {MAX_PAYLOAD_BYTES}"),
])
def test_payloads_are_read_strictly(data: bytes, reason: str) -> None:
    with pytest.raises(SignatureError) as e:
        parse_payload(data, what="sig")
    assert reason in e.value.reason and e.value.what == "sig"


def test_the_sig_tag_manifest_has_cosign_layout() -> None:
    key = generate()
    payload = make_payload("r/app", DIGEST)
    sig = base64.b64encode(key.sign(payload)).decode()
    m = make_signature_manifest([(payload, {SIGNATURE_ANNOTATION: sig})], config=b"{}")
    body = json.loads(m.data)
    # specs/SIGNATURE_SPEC.md "OCI Image Manifest V1": payload as a layer, signature annotation on it
    assert body["mediaType"] == mediatype.OCI_MANIFEST and body["config"]["mediaType"] == mediatype.OCI_CONFIG
    assert body["layers"] == [{"mediaType": SIMPLESIGNING_MEDIA_TYPE, "size": len(payload),
                               "digest": str(Digest.of(payload)), "annotations": {SIGNATURE_ANNOTATION: sig}}]
    assert "subject" not in body and "artifactType" not in body
    (layer,) = signature_layers(m, what="x")
    assert layer.signature == key.sign(payload) or key.public.verify(layer.signature, payload)
    assert layer.payload.digest == Digest.of(payload) and layer.problem is None


def test_the_referrer_form_names_cosign_artifact_type_and_its_subject() -> None:
    subject = Descriptor(mediatype.OCI_INDEX, DIGEST, 123)
    m = make_signature_manifest([(b"p", {SIGNATURE_ANNOTATION: "AA=="})], config=b"{}", subject=subject)
    body = json.loads(m.data)
    assert body["artifactType"] == SIGNATURE_ARTIFACT_TYPE == "application/vnd.dev.cosign.artifact.sig.v1+json"
    assert body["config"]["mediaType"] == SIGNATURE_ARTIFACT_TYPE
    assert body["subject"] == {"mediaType": mediatype.OCI_INDEX, "size": 123, "digest": str(DIGEST)}
    assert list(body) == ["schemaVersion", "mediaType", "config", "layers", "subject", "artifactType"]
    assert is_signature_referrer(Descriptor(mediatype.OCI_MANIFEST, m.digest, m.size, artifact_type=SIGNATURE_ARTIFACT_TYPE))
    assert is_signature_referrer(Descriptor(mediatype.OCI_MANIFEST, m.digest, 1, artifact_type=BUNDLE_MEDIA_TYPES[0]))
    assert not is_signature_referrer(Descriptor(mediatype.OCI_MANIFEST, m.digest, 1, artifact_type="application/spdx+json"))


def _manifest(layers: list[dict[str, object]], media_type: str = mediatype.OCI_MANIFEST) -> RawManifest:
    body = {"schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": mediatype.OCI_CONFIG, "size": 2, "digest": str(Digest.of(b"{}"))},
            "layers": layers}
    return RawManifest.from_bytes(json.dumps(body).encode(), media_type)


def _layer(annotations: object, media_type: str = SIMPLESIGNING_MEDIA_TYPE) -> dict[str, object]:
    return {"mediaType": media_type, "size": 3, "digest": str(Digest.of(b"abc")), "annotations": annotations}


def test_bad_layers_are_problems_of_their_own_and_others_are_skipped() -> None:
    m = _manifest([
        _layer({SIGNATURE_ANNOTATION: "not base64!"}),
        _layer({}),
        _layer({SIGNATURE_ANNOTATION: "AAAA"}, media_type="application/vnd.example"),
        _layer({SIGNATURE_ANNOTATION: "x" * 70_000}),
        _layer("not a mapping"),
        _layer({SIGNATURE_ANNOTATION: "AAAA"}),
    ])
    layers = signature_layers(m, what="x")
    assert [x.index for x in layers] == [0, 1, 3, 4, 5]
    assert "not valid base64" in (layers[0].problem or "")
    assert "no dev.cosignproject.cosign/signature annotation" in (layers[1].problem or "")
    assert "at most 65536" in (layers[2].problem or "")
    assert "not an object" in (layers[3].problem or "")
    assert layers[4].problem is None and layers[4].signature == b"\0\0\0"


def test_thousands_of_layers_are_refused_whole() -> None:
    m = _manifest([_layer({SIGNATURE_ANNOTATION: "AAAA"})] * (MAX_LAYERS + 1))
    with pytest.raises(SignatureError, match="1001 layers"):
        signature_layers(m, what="x")


def test_an_index_is_not_a_signature_manifest() -> None:
    m = RawManifest.from_bytes(b'{"schemaVersion":2,"manifests":[]}', mediatype.OCI_INDEX)
    with pytest.raises(SignatureError, match="not an image manifest"):
        signature_layers(m, what="x")


def test_dsse_pae_is_the_spec_vector() -> None:
    # secure-systems-lab/dsse protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    assert dsse_pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_a_real_sigstore_bundle_reads_and_is_not_an_image_signature() -> None:
    content = parse_bundle((FIXTURES / "oci-attestation.sigstore.json").read_bytes(), what="b")
    assert content.payload_type == "application/vnd.in-toto+json"
    assert content.certificate_der is not None and content.certificate_der[:1] == b"\x30"
    assert len(content.tlog_entries) == 1 and content.signed.startswith(b"DSSEv1 28 application/vnd.in-toto+json ")
    subject = Digest.parse("sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4")
    with pytest.raises(SignatureError, match="not a cosign image signature"):
        check_statement(content, subject, what="b")


def test_a_bundle_statement_must_name_the_digest() -> None:
    key = generate()
    content = parse_bundle(bundle(key, statement(DIGEST)), what="b")
    check_statement(content, DIGEST, what="b")
    other = Digest.of(b"other")
    with pytest.raises(SignatureError, match=f"is for {DIGEST}, not {other}"):
        check_statement(content, other, what="b")
    assert key.public.verify(content.signature, content.signed)


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda b: {**b, "mediaType": "application/json"}, "not a Sigstore bundle"),
    (lambda b: {**b, "messageSignature": {}}, "message signature"),
    (lambda b: {k: v for k, v in b.items() if k != "dsseEnvelope"}, "no dsseEnvelope"),
    (lambda b: {**b, "dsseEnvelope": {**b["dsseEnvelope"], "signatures": []}}, "exactly one signature"),
    (lambda b: {**b, "dsseEnvelope": {**b["dsseEnvelope"], "payload": "%%%"}}, "not valid base64"),
])
def test_bundles_are_read_strictly(mutate: object, reason: str) -> None:
    good = json.loads(bundle(generate("ed25519"), statement(DIGEST)))
    data = json.dumps(mutate(good)).encode()  # type: ignore[operator]
    with pytest.raises(SignatureError, match=reason):
        parse_bundle(data, what="b")
