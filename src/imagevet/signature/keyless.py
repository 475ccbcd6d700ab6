"""Keyless (Sigstore) signatures verified offline: a Fulcio certificate's identity, its embedded
SCT, and the Rekor entry that proves when it was used, against a :class:`TrustRoot`.

Two forms of an image signature:

* :func:`verify_keyless` -- cosign's legacy ``sha256-<hex>.sig`` layer (cosign
  ``specs/SIGNATURE_SPEC.md``): the layer blob is the simple-signing payload, its annotations
  carry the signature (``dev.cosignproject.cosign/signature``), the certificate and chain
  (``dev.sigstore.cosign/certificate``, ``dev.sigstore.cosign/chain``) and the Rekor entry
  (``dev.sigstore.cosign/bundle``: a SignedEntryTimestamp, no inclusion proof).
* :func:`verify_bundle` -- a Sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``;
  0.1 and 0.2 too), what cosign v3 attaches to an image as an OCI referrer by default.
  **What it signs** (read in sigstore/cosign at d6d86c22, ``cmd/cosign/cli/sign/sign.go``
  ``signDigestBundle`` and ``cmd/cosign/cli/signcommon/common.go`` ``NewAttestationBundle``): a
  DSSE envelope of payload type ``application/vnd.in-toto+json`` whose payload is an in-toto
  Statement v1 with one subject ``{"digest": {"sha256": "<image digest hex>"}}`` (no name),
  predicate type ``https://sigstore.dev/cosign/sign/v1`` and an empty predicate; ``cosign
  verify`` checks it with sigstore-go's ``WithArtifactDigest(image digest)``
  (``pkg/cosign/verify.go`` ``verifyImageAttestationsSigstoreBundle``), i.e. the image digest
  must be a subject digest of the statement.  So :func:`verify_bundle` verifies the DSSE
  signature over PAE(type, payload) and requires ``artifact_digest`` among the subject
  digests and, unless the caller passes ``predicate_type=None``, that predicate type (cosign
  itself accepts any predicate type there, so an SBOM attestation would pass as a signature; we
  do not).  A bundle with a message signature instead (``cosign sign-blob``) is verified as
  the signature over ``artifact_digest`` itself (its ``messageDigest`` must be that digest).

Checks, in this order, each failing with a :class:`~imagevet.errors.SignatureError` saying which:
the signature over the payload with the certificate's key; the Rekor entry (SET by the trust
root's log key, for the bundle also the RFC 6962 inclusion proof up to the checkpoint the log
signed) and that its body records this signature, certificate and payload; the certificate chain
to a Fulcio CA of the trust root valid at the entry's integrated time (the certificate itself valid
then: Fulcio certificates live ten minutes); an embedded SCT signed by a CT log of the trust root;
key usage (digital signature) and extended key usage (code signing); last the identity: SAN
(email or URI) and OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8, else the deprecated
1.3.6.1.4.1.57264.1.1) against the :class:`IdentityRule`.

RFC 3161 timestamps (what Rekor v2 entries rely on for time) are not verified: an entry without
an integrated time and SET is refused.  ``cryptography`` is imported when a signature is checked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from imagevet.digest import Digest
from imagevet.errors import InvalidDigestError, SignatureError
from imagevet.signature.keyless_parse import b64, items, load_json, obj, text
from imagevet.signature.keys import PublicKey, load_public_key
from imagevet.signature.rekor import (
    DsseBody,
    HashedRekordBody,
    LogEntry,
    parse_body,
    parse_cosign_rekor_bundle,
    parse_tlog_entry,
    verify_inclusion_proof,
    verify_promise,
)
from imagevet.signature.trustroot import MAX_CERTIFICATE_BYTES, TrustRoot, load_der_certificate

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = [
    "BUNDLE_MEDIA_TYPES",
    "COSIGN_SIGN_PREDICATE",
    "MAX_BUNDLE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "IdentityRule",
    "KeylessVerified",
    "TrustRoot",
    "certificate_identity",
    "verify_bundle",
    "verify_keyless",
]

COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
MAX_BUNDLE_BYTES = 4 << 20
"""A bundle carrying a large provenance statement is some hundred KiB."""
MAX_PAYLOAD_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 8192
MAX_CHAIN_PEM_BYTES = 256 * 1024
_MAX_CHAIN = 8

_OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_OID_OTHERNAME_SAN = "1.3.6.1.4.1.57264.1.7"
_INTOTO = "application/vnd.in-toto+json"
_STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")


@dataclass(frozen=True, slots=True)
class IdentityRule:
    """Whose signature is wanted: the certificate's subject (SAN: email or URI) and OIDC issuer,
    each exactly or as a pattern matched against the whole value (``re.fullmatch``)."""

    subject: str | None = None
    subject_pattern: re.Pattern[str] | None = None
    issuer: str | None = None
    issuer_pattern: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        if (self.subject is None) == (self.subject_pattern is None):
            raise ValueError("an identity rule needs exactly one of subject and subject_pattern")
        if (self.issuer is None) == (self.issuer_pattern is None):
            raise ValueError("an identity rule needs exactly one of issuer and issuer_pattern")

    def matches(self, subject: str, issuer: str) -> bool:
        return _match(subject, self.subject, self.subject_pattern) and _match(issuer, self.issuer, self.issuer_pattern)

    def __str__(self) -> str:
        s = repr(self.subject) if self.subject is not None else f"matching {self.subject_pattern.pattern!r}"  # type: ignore[union-attr]
        i = repr(self.issuer) if self.issuer is not None else f"matching {self.issuer_pattern.pattern!r}"  # type: ignore[union-attr]
        return f"subject {s} from issuer {i}"


def _match(value: str, exact: str | None, pattern: re.Pattern[str] | None) -> bool:
    if exact is not None:
        return value == exact
    return pattern is not None and pattern.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class KeylessVerified:
    """What a verified keyless signature proves: who signed (``subject``, ``issuer``), and the
    Rekor entry (``log_index``, ``integrated_time``) that proves when."""

    subject: str
    issuer: str
    log_index: int
    integrated_time: datetime
    certificate_sha256: str


# --- the legacy .sig layer ----------------------------------------------------------------


def verify_keyless(
    *,
    payload: bytes,
    signature: bytes,
    certificate_pem: bytes,
    chain_pem: bytes | None,
    rekor: bytes | None,
    trust: TrustRoot,
    identity: IdentityRule,
    image_digest: str | None = None,
    what: str = "keyless signature",
) -> KeylessVerified:
    """Verify a cosign legacy ``.sig`` layer signed keyless (see the module docstring).

    ``image_digest`` (``sha256:<hex>``), when given, must be the payload's
    ``critical.image.docker-manifest-digest``; without it the caller checks the payload.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise SignatureError(what, f"the payload of {len(payload)} bytes is too long (at most {MAX_PAYLOAD_BYTES})")
    if not signature or len(signature) > MAX_SIGNATURE_BYTES:
        raise SignatureError(what, "the signature annotation is empty or too long")
    cert = _load_pem_certificate(certificate_pem, what)
    chain = _load_pem_chain(chain_pem, what) if chain_pem else []
    if rekor is None:
        raise SignatureError(what, "no Rekor bundle (dev.sigstore.cosign/bundle annotation): a keyless signature "
                             "cannot be verified offline without the transparency log's promise of when it was made")

    key = _certificate_key(cert, what)
    if not key.verify(signature, payload):
        raise SignatureError(what, "the signature does not verify with the certificate's key over this payload")
    entry = parse_cosign_rekor_bundle(rekor, what=f"{what}: Rekor bundle")
    verify_promise(entry, trust, what=what)
    body = parse_body(entry, what=what)
    if not isinstance(body, HashedRekordBody):
        raise SignatureError(what, "the Rekor entry is not a hashedrekord entry of this signature")
    _check_hashedrekord(body, hashlib.sha256(payload).digest(), signature, cert, what)
    result = _check_certificate(cert, chain, entry, trust, identity, what)
    if image_digest is not None:
        _check_simple_signing(payload, image_digest, what)
    return result


def _check_simple_signing(payload: bytes, image_digest: str, what: str) -> None:
    doc = load_json(payload, what=f"{what}: payload", limit=MAX_PAYLOAD_BYTES)
    critical = obj(doc.get("critical"), what=f"{what}: payload", path="critical")
    image = obj(critical.get("image"), what=f"{what}: payload", path="critical.image")
    signed = image.get("docker-manifest-digest")
    if signed != image_digest:
        raise SignatureError(what, f"the payload is signed for {str(signed)[:80]}, not for {image_digest}")


# --- the Sigstore bundle ------------------------------------------------------------------


def verify_bundle(
    bundle: bytes,
    *,
    artifact_digest: str,
    trust: TrustRoot,
    identity: IdentityRule,
    predicate_type: str | None = COSIGN_SIGN_PREDICATE,
    what: str = "Sigstore bundle",
) -> KeylessVerified:
    """Verify a Sigstore bundle signed keyless for ``artifact_digest`` (``sha256:<hex>``: the image
    digest); see the module docstring for what a cosign v3 image bundle signs."""
    try:
        digest = Digest.parse(artifact_digest)
    except InvalidDigestError as e:
        raise SignatureError(what, f"artifact digest {artifact_digest[:80]!r} is not a digest") from e
    doc = load_json(bundle, what=what, limit=MAX_BUNDLE_BYTES)
    media = doc.get("mediaType")
    if media not in BUNDLE_MEDIA_TYPES:
        raise SignatureError(what, f"mediaType {str(media)[:80]!r} is not a Sigstore bundle")
    material = obj(doc.get("verificationMaterial"), what=what, path="verificationMaterial")
    cert, chain = _bundle_certificates(material, what)
    entries = items(material.get("tlogEntries", []), what=what, path="verificationMaterial.tlogEntries", limit=8)
    if len(entries) != 1:
        raise SignatureError(what, f"expected one Rekor entry, the bundle has {len(entries)}")
    entry = parse_tlog_entry(entries[0], what=what, path="verificationMaterial.tlogEntries[0]")
    key = _certificate_key(cert, what)

    dsse: tuple[bytes, bytes] | None = None
    message: bytes | None = None
    if "dsseEnvelope" in doc:
        envelope = obj(doc["dsseEnvelope"], what=what, path="dsseEnvelope")
        dsse = _verify_dsse(envelope, key, what)
        _check_statement(dsse[0], digest, predicate_type, what)
    elif "messageSignature" in doc:
        message = _verify_message(obj(doc["messageSignature"], what=what, path="messageSignature"), digest, cert, what)
    else:
        raise SignatureError(what, "the bundle has neither a messageSignature nor a dsseEnvelope")

    log = verify_promise(entry, trust, what=what)
    verify_inclusion_proof(entry, log, what=what)
    body = parse_body(entry, what=what)
    if dsse is not None:
        if not isinstance(body, DsseBody):
            raise SignatureError(what, "the Rekor entry is not a dsse entry, but the bundle holds a DSSE envelope")
        _check_dsse_body(body, dsse[0], dsse[1], cert, what)
    elif message is not None:
        if not isinstance(body, HashedRekordBody):
            raise SignatureError(what, "the Rekor entry is not a hashedrekord entry, but the bundle holds a message signature")
        _check_hashedrekord(body, bytes.fromhex(digest.hex), message, cert, what)
    return _check_certificate(cert, chain, entry, trust, identity, what)


def _bundle_certificates(material: dict[str, Any], what: str) -> tuple[Certificate, list[Certificate]]:
    if "publicKey" in material:
        raise SignatureError(what, "the bundle is signed with a key, not keyless (no certificate)")
    if "certificate" in material:
        c = obj(material["certificate"], what=what, path="verificationMaterial.certificate")
        raw = b64(c.get("rawBytes"), what=what, path="verificationMaterial.certificate.rawBytes",
                  limit=2 * MAX_CERTIFICATE_BYTES)
        return load_der_certificate(raw, what=what, path="verificationMaterial.certificate"), []
    if "x509CertificateChain" in material:
        chain = obj(material["x509CertificateChain"], what=what, path="verificationMaterial.x509CertificateChain")
        certs = items(chain.get("certificates"), what=what, path="verificationMaterial.x509CertificateChain.certificates",
                      limit=_MAX_CHAIN)
        if not certs:
            raise SignatureError(what, "verificationMaterial.x509CertificateChain: no certificate")
        parsed = [load_der_certificate(
            b64(obj(c, what=what, path=f"x509CertificateChain.certificates[{i}]").get("rawBytes"), what=what,
                path=f"x509CertificateChain.certificates[{i}].rawBytes", limit=2 * MAX_CERTIFICATE_BYTES),
            what=what, path=f"x509CertificateChain.certificates[{i}]") for i, c in enumerate(certs)]
        return parsed[0], parsed[1:]
    raise SignatureError(what, "the bundle has no certificate")


def _pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _verify_dsse(envelope: dict[str, Any], key: PublicKey, what: str) -> tuple[bytes, bytes]:
    payload_type = text(envelope.get("payloadType"), what=what, path="dsseEnvelope.payloadType", limit=256)
    if payload_type != _INTOTO:
        raise SignatureError(what, f"the DSSE payload type is {payload_type!r}, not {_INTOTO}")
    payload = b64(envelope.get("payload"), what=what, path="dsseEnvelope.payload", limit=2 * MAX_PAYLOAD_BYTES)
    sigs = items(envelope.get("signatures"), what=what, path="dsseEnvelope.signatures", limit=8)
    if len(sigs) != 1:
        raise SignatureError(what, f"expected one DSSE signature, the envelope has {len(sigs)}")
    signature = b64(obj(sigs[0], what=what, path="dsseEnvelope.signatures[0]").get("sig"), what=what,
                    path="dsseEnvelope.signatures[0].sig", limit=2 * MAX_SIGNATURE_BYTES)
    if not key.verify(signature, _pae(payload_type, payload)):
        raise SignatureError(what, "the DSSE signature does not verify with the certificate's key")
    return payload, signature


def _check_statement(payload: bytes, digest: Digest, predicate_type: str | None, what: str) -> None:
    w = f"{what}: in-toto statement"
    statement = load_json(payload, what=w, limit=MAX_PAYLOAD_BYTES)
    kind = statement.get("_type")
    if kind not in _STATEMENT_TYPES:
        raise SignatureError(w, f"_type {str(kind)[:80]!r} is not an in-toto statement")
    found = []
    for i, subject in enumerate(items(statement.get("subject"), what=w, path="subject")):
        digests = obj(obj(subject, what=w, path=f"subject[{i}]").get("digest"), what=w, path=f"subject[{i}].digest")
        value = digests.get(digest.algorithm)
        if value == digest.hex:
            break
        if isinstance(value, str):
            found.append(f"{digest.algorithm}:{value[:80]}")
    else:
        raise SignatureError(what, f"the signature is for {', '.join(found[:3]) or 'another artifact'}, "
                             f"not for {digest}")
    signed_type = statement.get("predicateType")
    if predicate_type is not None and signed_type != predicate_type:
        raise SignatureError(what, f"the bundle is a {str(signed_type)[:120]!r} attestation, not a signature "
                             f"({predicate_type})")


def _verify_message(message: dict[str, Any], digest: Digest, cert: Certificate, what: str) -> bytes:
    signature = b64(message.get("signature"), what=what, path="messageSignature.signature", limit=2 * MAX_SIGNATURE_BYTES)
    expected = bytes.fromhex(digest.hex)
    md = message.get("messageDigest")
    if md is not None:
        m = obj(md, what=what, path="messageSignature.messageDigest")
        signed = b64(m.get("digest"), what=what, path="messageSignature.messageDigest.digest", limit=256)
        if m.get("algorithm") != "SHA2_256" or signed != expected:
            raise SignatureError(what, f"the signature is for sha256:{signed.hex()}, not for {digest}")
    if digest.algorithm != "sha256" or not _verify_prehashed(cert, signature, expected):
        raise SignatureError(what, f"the message signature does not verify with the certificate's key for {digest}")
    return signature


def _verify_prehashed(cert: Certificate, signature: bytes, digest: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


# --- checks shared by both forms ----------------------------------------------------------


def _check_hashedrekord(body: HashedRekordBody, digest: bytes, signature: bytes, cert: Certificate, what: str) -> None:
    from imagevet.signature.rekor import certificate_der

    if body.algorithm != "sha256" or body.digest != digest:
        raise SignatureError(what, "the Rekor entry records another payload digest than the one signed")
    if body.signature != signature:
        raise SignatureError(what, "the Rekor entry records another signature")
    if body.certificate_der != certificate_der(cert):
        raise SignatureError(what, "the Rekor entry records another certificate")


def _check_dsse_body(body: DsseBody, payload: bytes, signature: bytes, cert: Certificate, what: str) -> None:
    from imagevet.signature.rekor import certificate_der

    if body.payload_sha256 != hashlib.sha256(payload).digest():
        raise SignatureError(what, "the Rekor entry records another DSSE payload")
    if body.signatures != ((signature, certificate_der(cert)),):
        raise SignatureError(what, "the Rekor entry records another signature or certificate")


def _check_certificate(cert: Certificate, intermediates: list[Certificate], entry: LogEntry, trust: TrustRoot,
                       identity: IdentityRule, what: str) -> KeylessVerified:
    from imagevet.signature.rekor import certificate_der

    when = entry.integrated_at
    chain = _verify_chain(cert, intermediates, trust, when, what)
    _verify_sct(cert, chain[1] if len(chain) > 1 else chain[0], trust, what)
    _check_usage(cert, what)
    subject, issuer = certificate_identity(cert, what=what)
    if not identity.matches(subject, issuer):
        raise SignatureError(what, f"the certificate identity is {_show(subject)} from issuer {_show(issuer)}, "
                             f"the policy wants {identity}")
    return KeylessVerified(subject, issuer, entry.log_index, when,
                           hashlib.sha256(certificate_der(cert)).hexdigest())


def _show(value: str) -> str:
    return repr(value[:200])


def _verify_chain(cert: Certificate, intermediates: list[Certificate], trust: TrustRoot, when: datetime,
                  what: str) -> list[Certificate]:
    from cryptography.x509 import ExtendedKeyUsage, UnsupportedGeneralNameType
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    if when > cert.not_valid_after_utc:
        raise SignatureError(what, f"signed after the certificate expired: it was valid until "
                             f"{cert.not_valid_after_utc.isoformat()}, the log integrated the entry at {when.isoformat()}")
    if when < cert.not_valid_before_utc:
        raise SignatureError(what, f"the log integrated the entry at {when.isoformat()}, before the certificate was "
                             f"valid ({cert.not_valid_before_utc.isoformat()})")
    anchors = [c for ca in trust.fulcio if ca.valid.contains(when) for c in ca.certificates]
    if not anchors:
        raise SignatureError(what, f"no Fulcio CA of the trust root ({trust.source}) was valid at {when.isoformat()}")
    # Fulcio leaves carry code signing, not client auth: relax only the EKU rule (as sigstore does).
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    verifier = (PolicyBuilder().store(Store(anchors)).time(when)
                .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy).build_client_verifier())
    try:
        return list(verifier.verify(cert, intermediates).chain)
    except (VerificationError, UnsupportedGeneralNameType) as e:
        raise SignatureError(what, f"the certificate does not chain to a Fulcio CA of the trust root ({trust.source}) "
                             f"valid at {when.isoformat()}: {str(e)[:200]}") from e


def _verify_sct(cert: Certificate, issuer: Certificate, trust: TrustRoot, what: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        scts = cert.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        raise SignatureError(what, "no SCT: the certificate carries no embedded signed certificate timestamp, so "
                             "nothing shows it was logged for certificate transparency") from None
    issuer_key_hash = hashlib.sha256(issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()
    tbs = cert.tbs_precertificate_bytes
    reasons = []
    for sct in list(scts)[:8]:
        log = trust.ct_log(sct.log_id)
        if log is None:
            reasons.append(f"SCT from CT log {sct.log_id.hex()[:16]}..., which the trust root does not name")
            continue
        when = sct.timestamp.replace(tzinfo=UTC)
        millis = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
        signed = (b"\x00\x00" + millis.to_bytes(8, "big") + b"\x00\x01" + issuer_key_hash
                  + len(tbs).to_bytes(3, "big") + tbs
                  + len(sct.extension_bytes).to_bytes(2, "big") + sct.extension_bytes)
        if not log.key.verify(sct.signature, signed):
            reasons.append("an SCT does not verify with its CT log's key")
        elif not log.valid.contains(when):
            reasons.append(f"an SCT is dated {when.isoformat()}, outside its CT log key's period ({log.valid})")
        else:
            return
    raise SignatureError(what, "no valid SCT: " + ("; ".join(reasons) or "the SCT list is empty"))


def _check_usage(cert: Certificate, what: str) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as e:
        raise SignatureError(what, "the certificate has no key usage or extended key usage") from e
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise SignatureError(what, "the certificate is not for code signing (key usage digital signature, "
                             "extended key usage code signing)")


def certificate_identity(cert: Certificate, *, what: str) -> tuple[str, str]:
    """``(subject, issuer)`` of a Fulcio certificate: the SAN (email, URI, or Fulcio's username
    other-name) and the OIDC issuer of its Fulcio extension."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise SignatureError(what, "the certificate has no subject alternative name (no identity)") from None
    names: list[str] = [*san.get_values_for_type(x509.RFC822Name),
                        *san.get_values_for_type(x509.UniformResourceIdentifier)]
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id.dotted_string == _OID_OTHERNAME_SAN:
            value = _der_utf8(other.value)
            if value is not None:
                names.append(value)
    if len(names) != 1:
        raise SignatureError(what, f"the certificate has {len(names)} identities in its subject alternative name, "
                             "expected one")
    issuer = None
    for oid, der in ((_OID_ISSUER_V2, True), (_OID_ISSUER_V1, False)):
        try:
            ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
        except x509.ExtensionNotFound:
            continue
        raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
        issuer = _der_utf8(raw) if der else _utf8(raw)
        if issuer:
            break
    if not issuer:
        raise SignatureError(what, "the certificate names no OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8)")
    return names[0], issuer


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8") if raw else None
    except UnicodeDecodeError:
        return None


def _der_utf8(raw: bytes) -> str | None:
    """The value of a DER UTF8String (tag 12); ``None`` when ``raw`` is not one."""
    if len(raw) < 2 or raw[0] != 0x0C:
        return None
    length, offset = raw[1], 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 3 or len(raw) < 2 + n:
            return None
        length, offset = int.from_bytes(raw[2:2 + n], "big"), 2 + n
    if len(raw) != offset + length:
        return None
    return _utf8(raw[offset:])


def _certificate_key(cert: Certificate, what: str) -> PublicKey:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pem = cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return load_public_key(pem, what=f"{what}: certificate key")


def _load_pem_certificate(data: bytes, what: str) -> Certificate:
    from cryptography import x509

    if len(data) > 4 * MAX_CERTIFICATE_BYTES:
        raise SignatureError(what, f"the certificate annotation of {len(data)} bytes is too long")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise SignatureError(what, "the certificate annotation is not a PEM certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise SignatureError(what, "the certificate annotation is not a PEM certificate") from e


def _load_pem_chain(data: bytes, what: str) -> list[Certificate]:
    from cryptography import x509

    if len(data) > MAX_CHAIN_PEM_BYTES:
        raise SignatureError(what, f"the chain annotation of {len(data)} bytes is too long")
    if data.count(b"-----BEGIN CERTIFICATE-----") > _MAX_CHAIN:
        raise SignatureError(what, f"the chain annotation has more than {_MAX_CHAIN} certificates")
    try:
        return list(x509.load_pem_x509_certificates(data))
    except ValueError as e:
        raise SignatureError(what, "the chain annotation is not PEM certificates") from e

