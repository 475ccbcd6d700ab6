"""DSSE: PAE and the envelope against the spec's published test vector; sign/verify round trips."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from imagevet.errors import SignatureError
from imagevet.signature.dsse import (
    INTOTO_PAYLOAD_TYPE,
    MAX_ENVELOPE_BYTES,
    MAX_SIGNATURES,
    Envelope,
    EnvelopeSignature,
    pae,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from imagevet.signature.keys import PrivateKey, PublicKey, load_private_key, load_public_key

VECTOR = json.loads(
    (Path(__file__).resolve().parents[2] / "fixtures" / "dsse" / "protocol-test-vector.json").read_text()
)


def _vector_key() -> PublicKey:
    numbers = ec.EllipticCurvePublicNumbers(int(VECTOR["key"]["x"]), int(VECTOR["key"]["y"]), ec.SECP256R1())
    pem = numbers.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return load_public_key(pem, what="dsse-vector.pub")


def _der_vector_envelope() -> bytes:
    """The vector's envelope with its raw r||s signature in the DER form cosign's ECDSA uses."""
    raw = base64.b64decode(VECTOR["envelope"]["signatures"][0]["sig"])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    doc = dict(VECTOR["envelope"])
    doc["signatures"] = [{"keyid": "66301bbf", "sig": base64.b64encode(der).decode()}]
    return json.dumps(doc).encode()


def _key(kind: str = "ecdsa") -> PrivateKey:
    raw = {
        "ecdsa": lambda: ec.generate_private_key(ec.SECP256R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
        "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }[kind]()
    pem = raw.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return load_private_key(pem, what="org.key")


def test_pae_is_the_spec_test_vector_byte_for_byte() -> None:
    assert pae(VECTOR["payloadType"], VECTOR["serializedBody"].encode()) == VECTOR["pae"].encode()
    # lengths are byte lengths of UTF-8, decimal, no leading zeros; an empty body is "0 "
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    assert pae("\u00e9", b"\x00\xff") == b"DSSEv1 2 \xc3\xa9 2 \x00\xff"


def test_the_published_envelope_parses_and_verifies_with_the_published_key() -> None:
    envelope = parse_envelope(_der_vector_envelope(), what="vector")
    assert envelope.payload == b"hello world" and envelope.payload_type == "http://example.com/HelloWorld"
    assert envelope.signatures[0].keyid == "66301bbf"
    payload, key = verify_envelope(envelope, _vector_key(), payload_type=VECTOR["payloadType"], what="vector")
    assert payload == b"hello world" and key.key_id == _vector_key().key_id


def test_the_published_signature_does_not_verify_another_body_or_type() -> None:
    envelope = parse_envelope(_der_vector_envelope(), what="vector")
    body = Envelope(envelope.payload_type, b"hello world!", envelope.signatures)
    with pytest.raises(SignatureError, match="no signature of the DSSE envelope verifies"):
        verify_envelope(body, _vector_key(), payload_type=VECTOR["payloadType"], what="vector")
    kind = Envelope("http://example.com/HelloWorle", envelope.payload, envelope.signatures)
    with pytest.raises(SignatureError, match="no signature"):
        verify_envelope(kind, _vector_key(), payload_type=kind.payload_type, what="vector")


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_sign_then_verify_round_trips_through_json(kind: str) -> None:
    key = _key(kind)
    payload = b'{"_type":"https://in-toto.io/Statement/v1"}'
    data = sign_envelope(INTOTO_PAYLOAD_TYPE, payload, key).to_json()
    doc = json.loads(data)
    # cosign's layout: payloadType, payload, signatures [{keyid: "", sig}]
    assert list(doc) == ["payloadType", "payload", "signatures"]
    assert doc["payloadType"] == "application/vnd.in-toto+json"
    assert base64.standard_b64decode(doc["payload"]) == payload
    assert [list(s) for s in doc["signatures"]] == [["keyid", "sig"]] and doc["signatures"][0]["keyid"] == ""
    assert key.public.verify(base64.b64decode(doc["signatures"][0]["sig"]), pae(INTOTO_PAYLOAD_TYPE, payload))
    got, by = verify_envelope(parse_envelope(data, what="att"), key.public, payload_type=INTOTO_PAYLOAD_TYPE, what="att")
    assert got == payload and by == key.public


def test_a_tampered_payload_a_wrong_key_or_another_type_is_refused() -> None:
    key = _key()
    envelope = sign_envelope(INTOTO_PAYLOAD_TYPE, b'{"a":1}', key)
    tampered = Envelope(envelope.payload_type, b'{"a":2}', envelope.signatures)
    with pytest.raises(SignatureError, match="no signature"):
        verify_envelope(tampered, key.public, payload_type=INTOTO_PAYLOAD_TYPE, what="att")
    with pytest.raises(SignatureError, match="no signature") as info:
        verify_envelope(envelope, _key().public, payload_type=INTOTO_PAYLOAD_TYPE, what="att")
    assert "sha256:" in str(info.value)  # names the key it tried, by id
    with pytest.raises(SignatureError, match="payload type"):
        verify_envelope(envelope, key.public, payload_type="application/json", what="att")
    flipped = EnvelopeSignature(envelope.signatures[0].sig[:-1] + bytes([envelope.signatures[0].sig[-1] ^ 1]))
    with pytest.raises(SignatureError):
        verify_envelope(Envelope(envelope.payload_type, envelope.payload, (flipped,)), key.public,
                        payload_type=INTOTO_PAYLOAD_TYPE, what="att")
    with pytest.raises(SignatureError, match="no signature"):
        verify_envelope(Envelope(envelope.payload_type, envelope.payload, ()), key.public,
                        payload_type=INTOTO_PAYLOAD_TYPE, what="att")


def test_any_of_several_signatures_or_keys_may_verify_and_the_keyid_is_only_a_hint() -> None:
    key, other = _key(), _key("ed25519")
    good = sign_envelope(INTOTO_PAYLOAD_TYPE, b"x", key, keyid="not-this-key")
    junk = EnvelopeSignature(b"\x30\x00", "whatever")
    envelope = Envelope(INTOTO_PAYLOAD_TYPE, b"x", (junk, *good.signatures))
    assert verify_envelope(envelope, [other.public, key.public], payload_type=INTOTO_PAYLOAD_TYPE, what="a")[1] == key.public


def test_url_safe_base64_is_accepted_and_unknown_fields_ignored() -> None:
    key = _key()
    payload = bytes(range(250, 256)) * 3  # '+' and '/' in standard base64
    envelope = sign_envelope(INTOTO_PAYLOAD_TYPE, payload, key)
    doc = json.loads(envelope.to_json())
    doc["payload"] = base64.urlsafe_b64encode(payload).decode()
    doc["signatures"][0]["sig"] = base64.urlsafe_b64encode(envelope.signatures[0].sig).decode()
    doc["extra"] = {"ignored": True}
    del doc["signatures"][0]["keyid"]
    parsed = parse_envelope(json.dumps(doc).encode(), what="att")
    assert parsed.payload == payload and parsed.signatures[0].keyid == ""
    assert verify_envelope(parsed, key.public, payload_type=INTOTO_PAYLOAD_TYPE, what="att")[0] == payload


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"payloadType":"t","signatures":[]}', "no payload"),
        (b'{"payload":"","signatures":[]}', "no payloadType"),
        (b'{"payload":"","payloadType":"t"}', "no signatures"),
        (b'{"payload":"***","payloadType":"t","signatures":[]}', "not base64"),
        (b'{"payload":"","payloadType":7,"signatures":[]}', "payloadType is not a string"),
        (b'{"payload":"","payloadType":"t","signatures":{}}', "not a list"),
        (b'{"payload":"","payloadType":"t","signatures":[{"keyid":""}]}', "no sig"),
        (b'{"payload":"","payloadType":"t","signatures":[{"sig":"AA==","keyid":5}]}', "keyid"),
    ],
)
def test_malformed_envelopes_are_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason) as info:
        parse_envelope(data, what="registry.example/acme/redis@sha256:ab")
    assert str(info.value).startswith("registry.example/acme/redis@sha256:ab: ")


def test_envelopes_are_bounded() -> None:
    with pytest.raises(SignatureError, match="over"):
        parse_envelope(b" " * (MAX_ENVELOPE_BYTES + 1), what="att")
    many = {"payload": "", "payloadType": "t", "signatures": [{"sig": "AA=="}] * (MAX_SIGNATURES + 1)}
    with pytest.raises(SignatureError, match="signatures"):
        parse_envelope(json.dumps(many).encode(), what="att")
    long_sig = {"payload": "", "payloadType": "t", "signatures": [{"sig": base64.b64encode(b"x" * 4096).decode()}]}
    with pytest.raises(SignatureError, match="too long"):
        parse_envelope(json.dumps(long_sig).encode(), what="att")
