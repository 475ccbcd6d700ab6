"""DSSE, the Dead Simple Signing Envelope: PAE, the JSON envelope, signing and verifying.

As secure-systems-lab/dsse specifies it (``protocol.md`` and ``envelope.md``, v1.0.2)::

    SIGNATURE = Sign(PAE(UTF8(PAYLOAD_TYPE), SERIALIZED_BODY))
    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

and the JSON envelope ``{"payloadType", "payload": base64, "signatures": [{"keyid", "sig":
base64}]}``.  A verifier accepts standard and URL-safe base64, ignores fields it does not know,
and hands on exactly the bytes whose signature it checked (never a re-parse of the envelope).

The envelope imagevet writes is the one cosign puts in an attestation layer: cosign signs with
sigstore's ``dsse.WrapSigner``, whose ``SignerAdapter`` has an empty ``PubKeyID``
(sigstore/sigstore ``pkg/signature/dsse/adapters.go``), so go-securesystemslib writes
``"keyid": ""`` (its ``Signature`` struct has no ``omitempty``), fields in the order
payloadType, payload, signatures.  cosign verifies with a ``VerifierAdapter`` whose key id is
empty too (``pkg/cosign/verify.go``, ``verifyOCIAttestation``): the key id is a hint, never
a check, and imagevet treats it so.  The signature itself is the key's own scheme
(:mod:`imagevet.signature.keys`: DER ECDSA, Ed25519, RSA PKCS #1 v1.5).

Pure: bytes in, values out; every error is a :class:`~imagevet.errors.SignatureError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from imagevet.errors import SignatureError
from imagevet.signature.keys import PrivateKey, PublicKey

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "MAX_ENVELOPE_BYTES",
    "MAX_SIGNATURES",
    "Envelope",
    "EnvelopeSignature",
    "pae",
    "parse_envelope",
    "sign_envelope",
    "verify_envelope",
]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The payload type of an in-toto statement (cosign's ``types.IntotoPayloadType``)."""

MAX_ENVELOPE_BYTES = 4 << 20
"""An envelope longer than this is refused unread (an imagevet statement is a few KiB)."""

MAX_SIGNATURES = 16
"""Signatures of one envelope looked at; more is refused (each costs a verification)."""

_MAX_SIG_BYTES = 2048
"""The longest signature of a supported key (RSA 8192: 1024 bytes), with room."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding of ``payload_type`` and ``payload`` (what is signed)."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True, slots=True)
class EnvelopeSignature:
    """One signature of an envelope: its raw bytes and the (unauthenticated) key id hint."""

    sig: bytes
    keyid: str = ""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope: the payload's exact bytes, its type and the signatures over their PAE."""

    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    def to_json(self) -> bytes:
        """The JSON envelope as cosign writes it (compact; payloadType, payload, signatures)."""
        doc = {
            "payloadType": self.payload_type,
            "payload": base64.standard_b64encode(self.payload).decode("ascii"),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.standard_b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_envelope(payload_type: str, payload: bytes, key: PrivateKey, *, keyid: str = "") -> Envelope:
    """Sign ``payload`` as ``payload_type`` with ``key``: one signature over the PAE.

    ``keyid`` defaults to cosign's empty key id (see the module docstring).
    """
    return Envelope(payload_type, payload, (EnvelopeSignature(key.sign(pae(payload_type, payload)), keyid),))


def _b64(text: object, what: str, field: str) -> bytes:
    """Standard or URL-safe base64, as the envelope spec requires a verifier to accept."""
    if not isinstance(text, str):
        raise SignatureError(what, f"envelope {field} is not a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(text, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(what, f"envelope {field} is not base64") from None


def parse_envelope(data: bytes, *, what: str) -> Envelope:
    """The envelope in JSON ``data``; SignatureError naming ``what`` for anything malformed.

    Required (may be empty): ``payload``, ``payloadType``, ``signatures`` and each ``sig``;
    ``keyid`` optional; other fields ignored.  Bounded: :data:`MAX_ENVELOPE_BYTES`,
    :data:`MAX_SIGNATURES`.
    """
    if len(data) > MAX_ENVELOPE_BYTES:
        raise SignatureError(what, f"DSSE envelope of {len(data)} bytes is over {MAX_ENVELOPE_BYTES}")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError(what, "not a DSSE envelope (not JSON)") from None
    if not isinstance(doc, dict):
        raise SignatureError(what, "not a DSSE envelope (not a JSON object)")
    for field in ("payload", "payloadType", "signatures"):
        if field not in doc:
            raise SignatureError(what, f"not a DSSE envelope (no {field})")
    payload_type = doc["payloadType"]
    if not isinstance(payload_type, str):
        raise SignatureError(what, "envelope payloadType is not a string")
    payload = _b64(doc["payload"], what, "payload")
    raw = doc["signatures"]
    if not isinstance(raw, list):
        raise SignatureError(what, "envelope signatures is not a list")
    if len(raw) > MAX_SIGNATURES:
        raise SignatureError(what, f"envelope has {len(raw)} signatures (at most {MAX_SIGNATURES})")
    signatures: list[EnvelopeSignature] = []
    for item in raw:
        if not isinstance(item, dict) or "sig" not in item:
            raise SignatureError(what, "envelope signature has no sig")
        keyid = item.get("keyid") or ""
        if not isinstance(keyid, str):
            raise SignatureError(what, "envelope signature keyid is not a string")
        sig = _b64(item["sig"], what, "signature")
        if len(sig) > _MAX_SIG_BYTES:
            raise SignatureError(what, f"envelope signature of {len(sig)} bytes is too long")
        signatures.append(EnvelopeSignature(sig, keyid[:256]))
    return Envelope(payload_type, payload, tuple(signatures))


def verify_envelope(
    envelope: Envelope, keys: PublicKey | Sequence[PublicKey], *, payload_type: str, what: str
) -> tuple[bytes, PublicKey]:
    """The payload of ``envelope`` and the key that signed it, when one of ``keys`` verified
    one of its signatures over the PAE and its type is ``payload_type``; else SignatureError.

    The key id is not used to choose keys (a hint, never a check).  The bytes returned are the
    ones verified: callers parse those, never the envelope again.
    """
    candidates = [keys] if isinstance(keys, PublicKey) else list(keys)
    if not envelope.signatures:
        raise SignatureError(what, "the DSSE envelope has no signature")
    message = pae(envelope.payload_type, envelope.payload)
    for signature in envelope.signatures:
        for key in candidates:
            if key.verify(signature.sig, message):
                if envelope.payload_type != payload_type:
                    raise SignatureError(
                        what, f"payload type {envelope.payload_type[:100]!r} is not {payload_type!r}"
                    )
                return envelope.payload, key
    ids = ", ".join(k.key_id for k in candidates) or "none"
    raise SignatureError(what, f"no signature of the DSSE envelope verifies with the key ({ids})")
