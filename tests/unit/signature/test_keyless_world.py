"""A private Sigstore made in the tests: Fulcio CAs, a CT log, a Rekor log, and signers that
produce cosign's legacy ``.sig`` annotations and Sigstore bundles in the published formats, with
knobs to break each piece.

Formats as published: RFC 6962 (SCT list extension, ``digitally-signed`` struct, Merkle tree),
the signed-note checkpoint (transparency-dev/formats ``log/README.md``), Rekor's
``hashedrekord``/``dsse`` 0.0.1 bodies and SET, cosign ``specs/SIGNATURE_SPEC.md`` and
``cmd/cosign/cli/sign/sign.go`` (the in-toto statement a v3 image bundle signs), protobuf-specs
``trusted_root.json`` and bundle JSON.  ``test_keyless.py`` checks that sigstore-python accepts
what this world makes, so a wrong format here cannot pass unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
SUBJECT = "release@example.org"
ISSUER = "https://accounts.example.org"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def spki(key: Any) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def der_utf8(value: str) -> bytes:
    raw = value.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def der_octets(raw: bytes) -> bytes:
    n = len(raw)
    if n < 128:
        return bytes([0x04, n]) + raw
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x04, 0x80 | len(length)]) + length + raw


# --- RFC 6962 Merkle tree -----------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_hash(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _split(len(leaves))
    return hashlib.sha256(b"\x01" + tree_hash(leaves[:k]) + tree_hash(leaves[k:])).digest()


def audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return audit_path(m, leaves[:k]) + [tree_hash(leaves[k:])]
    return audit_path(m - k, leaves[k:]) + [tree_hash(leaves[:k])]


# --- the world ----------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imagevet-test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class CA:
    root_key: Any
    root: x509.Certificate
    key: Any
    intermediate: x509.Certificate

    @classmethod
    def make(cls, label: str) -> CA:
        root_key = ec.generate_private_key(ec.SECP384R1())
        start, end = T0 - timedelta(days=365), T0 + timedelta(days=3650)
        root = (x509.CertificateBuilder().subject_name(_name(f"{label}-root")).issuer_name(_name(f"{label}-root"))
                .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
                .sign(root_key, hashes.SHA384()))
        key = ec.generate_private_key(ec.SECP384R1())
        intermediate = (x509.CertificateBuilder().subject_name(_name(f"{label}-intermediate")).issuer_name(root.subject)
                        .public_key(key.public_key()).serial_number(x509.random_serial_number())
                        .not_valid_before(start).not_valid_after(end)
                        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                       critical=True)
                        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                                       critical=False)
                        .sign(root_key, hashes.SHA384()))
        return cls(root_key, root, key, intermediate)


@dataclass
class Log:
    key: Any

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(spki(self.key.public_key())).digest()

    def sign(self, data: bytes) -> bytes:
        return bytes(self.key.sign(data, ec.ECDSA(hashes.SHA256())))

    @classmethod
    def make(cls) -> Log:
        return cls(ec.generate_private_key(ec.SECP256R1()))


@dataclass
class Leaf:
    key: Any
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)


@dataclass
class World:
    ca: CA = field(default_factory=lambda: CA.make("fulcio"))
    ct: Log = field(default_factory=Log.make)
    rekor: Log = field(default_factory=Log.make)

    # -- trust root --

    def trusted_root(self, *, ca_valid: tuple[datetime, datetime | None] | None = None,
                     rekor_valid: tuple[datetime, datetime | None] | None = None) -> bytes:
        def period(v: tuple[datetime, datetime | None] | None) -> dict[str, str]:
            start, end = v or (T0 - timedelta(days=30), None)
            out = {"start": start.isoformat().replace("+00:00", "Z")}
            if end is not None:
                out["end"] = end.isoformat().replace("+00:00", "Z")
            return out

        def log(entry: Log, url: str, valid: tuple[datetime, datetime | None] | None) -> dict[str, Any]:
            return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": b64(spki(entry.key.public_key())),
                                  "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": period(valid)},
                    "logId": {"keyId": b64(entry.log_id)}}

        doc = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor, "https://rekor.example.org", rekor_valid)],
            "certificateAuthorities": [{
                "subject": {"organization": "imagevet-test", "commonName": "fulcio"},
                "uri": "https://fulcio.example.org",
                "certChain": {"certificates": [{"rawBytes": b64(self.ca.intermediate.public_bytes(Encoding.DER))},
                                               {"rawBytes": b64(self.ca.root.public_bytes(Encoding.DER))}]},
                "validFor": period(ca_valid),
            }],
            "ctlogs": [log(self.ct, "https://ctfe.example.org", None)],
            "timestampAuthorities": [],
        }
        return json.dumps(doc).encode()

    # -- Fulcio --

    def leaf(self, *, subject: str = SUBJECT, issuer: str = ISSUER, ca: CA | None = None, sct: str = "valid",
             uri: bool = False, start: datetime = T0, issuer_v1_only: bool = False) -> Leaf:
        """A Fulcio-style leaf valid ten minutes from ``start``; ``sct``: valid, none, forged
        (signed by another key), unknown-log."""
        ca = ca or self.ca
        key = ec.generate_private_key(ec.SECP256R1())
        san: x509.GeneralName = x509.UniformResourceIdentifier(subject) if uri else x509.RFC822Name(subject)
        builder = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.intermediate.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + timedelta(minutes=10))
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
                   .add_extension(x509.SubjectAlternativeName([san]), critical=True)
                   .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V1, issuer.encode()), critical=False))
        if not issuer_v1_only:
            builder = builder.add_extension(x509.UnrecognizedExtension(OID_ISSUER_V2, der_utf8(issuer)), critical=False)
        if sct == "none":
            return Leaf(key, builder.sign(ca.key, hashes.SHA384()))
        sct_oid = ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS
        placeholder = builder.add_extension(x509.UnrecognizedExtension(sct_oid, der_octets(b"\x00\x00")), critical=False)
        tbs = placeholder.sign(ca.key, hashes.SHA384()).tbs_precertificate_bytes
        log = self.ct if sct != "forged" else Log.make()
        log_id = self.ct.log_id if sct != "unknown-log" else Log.make().log_id
        millis = int((start + timedelta(seconds=1)).timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(spki(ca.key.public_key())).digest()
        signed = (b"\x00\x00" + millis.to_bytes(8, "big") + b"\x00\x01" + issuer_key_hash
                  + len(tbs).to_bytes(3, "big") + tbs + b"\x00\x00")
        signature = log.sign(signed)
        one = (b"\x00" + log_id + millis.to_bytes(8, "big") + b"\x00\x00" + b"\x04\x03"
               + len(signature).to_bytes(2, "big") + signature)
        sct_list = len(one).to_bytes(2, "big") + one
        sct_list = len(sct_list).to_bytes(2, "big") + sct_list
        cert = builder.add_extension(x509.UnrecognizedExtension(sct_oid, der_octets(sct_list)), critical=False) \
            .sign(ca.key, hashes.SHA384())
        assert cert.tbs_precertificate_bytes == tbs
        return Leaf(key, cert)

    @property
    def chain_pem(self) -> bytes:
        return self.ca.intermediate.public_bytes(Encoding.PEM) + self.ca.root.public_bytes(Encoding.PEM)

    # -- Rekor --

    def promise(self, body: bytes, *, integrated: datetime, log_index: int, signer: Log | None = None) -> bytes:
        canonical = json.dumps({"body": b64(body), "integratedTime": int(integrated.timestamp()),
                                "logID": self.rekor.log_id.hex(), "logIndex": log_index},
                               sort_keys=True, separators=(",", ":")).encode()
        return (signer or self.rekor).sign(canonical)

    def checkpoint(self, size: int, root: bytes, *, signer: Log | None = None) -> str:
        text = f"rekor.example.org - 42\n{size}\n{b64(root)}\n"
        hint = self.rekor.log_id[:4]
        sig = (signer or self.rekor).sign(text.encode())
        return f"{text}\n\u2014 rekor.example.org {b64(hint + sig)}\n"


def simple_signing(digest: str = DIGEST) -> bytes:
    return json.dumps({"critical": {"identity": {"docker-reference": "registry.example.org/app"},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"}, "optional": None},
                      separators=(",", ":")).encode()


def hashedrekord(digest: bytes, signature: bytes, cert_pem: bytes) -> bytes:
    return json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        "signature": {"content": b64(signature), "publicKey": {"content": b64(cert_pem)}}}},
        separators=(",", ":")).encode()


def dsse_body(payload: bytes, signature: bytes, cert_pem: bytes) -> bytes:
    return json.dumps({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "envelopeHash": {"algorithm": "sha256", "value": "00" * 32},
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
        "signatures": [{"signature": b64(signature), "verifier": b64(cert_pem)}]}},
        separators=(",", ":")).encode()


def statement(digest: str = DIGEST, predicate_type: str = "https://sigstore.dev/cosign/sign/v1") -> bytes:
    alg, hexd = digest.split(":")
    return json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {alg: hexd}}],
                       "predicateType": predicate_type, "predicate": {}}, separators=(",", ":")).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)


def sign(leaf: Leaf, data: bytes) -> bytes:
    return bytes(leaf.key.sign(data, ec.ECDSA(hashes.SHA256())))
