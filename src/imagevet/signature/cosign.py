"""Cosign's signature formats, read strictly: the simple-signing payload, the signature
manifest, and the OCI 1.1 referrer forms (the signature artifact and the Sigstore bundle).

Pure: bytes in, values or :class:`~imagevet.errors.SignatureError` out.  Finding these objects in
a store and deciding whether one verifies is :mod:`imagevet.engine.verify`'s work.

The formats, as sigstore/cosign writes them (commit d6d86c224e5899b54f56cbb063b79dc43abc11c2):

* the **simple-signing payload** (``specs/SIGNATURE_SPEC.md`` "Simple Signing";
  sigstore/sigstore ``pkg/signature/payload`` ``SimpleContainerImage``, marshalled by Go's
  ``encoding/json``; the exact bytes are pinned by ``pkg/cosign/obsolete_test.go``)::

    {"critical":{"identity":{"docker-reference":"index.docker.io/namespace/image"},
     "image":{"docker-manifest-digest":"sha256:…"},"type":"cosign container image signature"},
     "optional":null}

  ``critical.type`` must be ``cosign container image signature`` and
  ``critical.image.docker-manifest-digest`` must be the digest being verified;
  ``critical.identity.docker-reference`` is ignored, as the spec says (images are copied between
  repositories; the digest is what is signed).  Read strictly: duplicate keys, unknown keys in
  ``critical``, a non-string reference and a malformed digest are refused (Go's decoder would
  match keys case-insensitively; cosign never writes them so);
* the **signature manifest** at the tag ``sha256-<hex>.sig`` (``specs/SIGNATURE_SPEC.md``
  "Tag-based Discovery", "OCI Image Manifest V1"; ``pkg/oci/static/signature.go``,
  ``pkg/types/media.go``): an image manifest whose layers of media type
  ``application/vnd.dev.cosign.simplesigning.v1+json`` are payloads, each with the annotation
  ``dev.cosignproject.cosign/signature`` (the base64 signature of the payload bytes) and,
  keyless, ``dev.sigstore.cosign/certificate``, ``dev.sigstore.cosign/chain`` and
  ``dev.sigstore.cosign/bundle`` (the Rekor bundle).  cosign refuses more than 1000 layers
  (``pkg/oci/mutate/signatures.go`` ``maxLayers``); so does this reader;
* the **OCI 1.1 signature referrer** (``cosign sign --registry-referrers-mode=oci-1-1``,
  ``pkg/oci/remote/write.go`` ``WriteSignaturesExperimentalOCI``): the same manifest with
  ``artifactType`` and ``config.mediaType`` ``application/vnd.dev.cosign.artifact.sig.v1+json``
  (``internal/pkg/oci/remote/remote.go`` ``ArtifactType("sig")``) and a ``subject``;
* the **Sigstore bundle referrer** (cosign 3's new bundle format, ``cmd/cosign/cli/sign/sign.go``
  ``signDigestBundle``, ``pkg/oci/remote/write.go`` ``WriteAttestationNewBundleFormat``,
  ``specs/BUNDLE_SPEC.md``): artifactType ``application/vnd.dev.sigstore.bundle.v0.3+json``, one
  layer holding the bundle JSON, whose ``dsseEnvelope`` carries an in-toto Statement (v1) with
  ``predicateType`` ``https://sigstore.dev/cosign/sign/v1`` and the image digest as its
  subject; the signature is over DSSE's PAE of the payload type and payload.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import InvalidDigestError, SignatureError
from imagevet.manifest import Descriptor, ManifestFormatError, RawManifest

__all__ = [
    "BUNDLE_ANNOTATION",
    "BUNDLE_MEDIA_TYPES",
    "CERTIFICATE_ANNOTATION",
    "CHAIN_ANNOTATION",
    "COSIGN_SIGN_PREDICATE",
    "DSSE_INTOTO",
    "MAX_ANNOTATION_CHARS",
    "MAX_BUNDLE_BYTES",
    "MAX_LAYERS",
    "MAX_PAYLOAD_BYTES",
    "SIGNATURE_ANNOTATION",
    "SIGNATURE_ARTIFACT_TYPE",
    "SIGNATURE_TYPE",
    "SIMPLESIGNING_MEDIA_TYPE",
    "BundleContent",
    "SignatureLayer",
    "SimpleSigning",
    "check_statement",
    "dsse_pae",
    "is_signature_referrer",
    "make_payload",
    "make_signature_manifest",
    "parse_bundle",
    "parse_payload",
    "signature_layers",
]

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
)
SIGNATURE_TYPE = "cosign container image signature"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
DSSE_INTOTO = "application/vnd.in-toto+json"
_STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")

MAX_PAYLOAD_BYTES = 64 * 1024
"""A simple-signing payload is about 250 bytes; one over this is not read."""
MAX_BUNDLE_BYTES = 1 << 20
"""A Sigstore bundle (certificate chain, transparency log entry with its proof) is a few KiB."""
MAX_LAYERS = 1000
"""Layers of one signature manifest (cosign's own bound)."""
MAX_ANNOTATION_CHARS = 64 * 1024
"""One signature, certificate, chain or bundle annotation (an 8192-bit RSA signature is 1.4 KiB
in base64, a certificate chain a few KiB)."""


def _what(what: str, reason: str) -> SignatureError:
    return SignatureError(what, reason)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key[:60]!r} is given twice")
        out[key] = value
    return out


def _strict_json(data: bytes, what: str, kind: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _what(what, f"the {kind} is not UTF-8 text") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as e:  # JSONDecodeError is a ValueError, and so is a duplicate key
        raise _what(what, f"the {kind} is not valid JSON: {str(e)[:120]}") from None
    except RecursionError:
        raise _what(what, f"the {kind} nests too deep") from None


def _b64(text: object, what: str, name: str) -> bytes:
    if not isinstance(text, str):
        raise _what(what, f"{name} is not a string")
    if len(text) > MAX_ANNOTATION_CHARS:
        raise _what(what, f"{name} is {len(text)} characters (at most {MAX_ANNOTATION_CHARS})")
    try:
        out = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _what(what, f"{name} is not valid base64") from None
    if not out:
        raise _what(what, f"{name} is empty")
    return out


# ---- the simple-signing payload ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimpleSigning:
    """A parsed simple-signing payload: what a cosign signature says it signs."""

    manifest_digest: Digest
    docker_reference: str
    optional: Mapping[str, Any] | None = field(default=None, compare=False)


def _go_json(value: Any) -> str:
    """JSON as Go's ``encoding/json`` writes it: compact, map keys sorted, ``<``, ``>``, ``&``,
    U+2028 and U+2029 escaped, other text as UTF-8."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def make_payload(docker_reference: str, digest: Digest, optional: Mapping[str, Any] | None = None) -> bytes:
    """The simple-signing payload cosign signs for ``digest``, byte for byte as cosign writes it
    (struct field order; ``optional`` is a Go map: its keys sorted, ``null`` when absent)."""
    critical = (
        '{"identity":{"docker-reference":' + _go_json(docker_reference) + '},'
        '"image":{"docker-manifest-digest":' + _go_json(str(digest)) + '},'
        '"type":' + _go_json(SIGNATURE_TYPE) + '}'
    )
    opt = "null" if optional is None else _go_json(dict(sorted(optional.items())))
    return ('{"critical":' + critical + ',"optional":' + opt + "}").encode("utf-8")


def _object(value: Any, what: str, name: str, keys: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _what(what, f"payload: {name} is not an object")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise _what(what, f"payload: unknown key {unknown[0][:60]!r} in {name}")
    missing = sorted(keys - set(value))
    if missing:
        raise _what(what, f"payload: {name} has no {missing[0]!r}")
    return value


def parse_payload(data: bytes, *, what: str) -> SimpleSigning:
    """The simple-signing payload ``data``, read strictly (see the module docstring)."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise _what(what, f"the payload is {len(data)} bytes (at most {MAX_PAYLOAD_BYTES})")
    obj = _strict_json(data, what, "payload")
    if not isinstance(obj, dict):
        raise _what(what, "payload: not a JSON object")
    unknown = sorted(set(obj) - {"critical", "optional"})
    if unknown:
        raise _what(what, f"payload: unknown key {unknown[0][:60]!r}")
    if "critical" not in obj:
        raise _what(what, "payload: no 'critical' section")
    critical = _object(obj["critical"], what, "critical", frozenset({"identity", "image", "type"}))
    if critical["type"] != SIGNATURE_TYPE:
        raise _what(what, f"payload: critical.type is {str(critical['type'])[:80]!r}, not {SIGNATURE_TYPE!r}")
    identity = _object(critical["identity"], what, "critical.identity", frozenset({"docker-reference"}))
    image = _object(critical["image"], what, "critical.image", frozenset({"docker-manifest-digest"}))
    reference = identity["docker-reference"]
    if not isinstance(reference, str):
        raise _what(what, "payload: critical.identity.docker-reference is not a string")
    digest_text = image["docker-manifest-digest"]
    if not isinstance(digest_text, str):
        raise _what(what, "payload: critical.image.docker-manifest-digest is not a string")
    try:
        digest = Digest.parse(digest_text)
    except InvalidDigestError as e:
        raise _what(what, f"payload: critical.image.docker-manifest-digest: {e}") from None
    optional = obj.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise _what(what, "payload: optional is neither an object nor null")
    return SimpleSigning(digest, reference, optional)


# ---- the signature manifest (the .sig tag, and the OCI 1.1 signature artifact) ----------------


@dataclass(frozen=True, slots=True)
class SignatureLayer:
    """One simple-signing layer of a signature manifest: its payload's descriptor and what its
    annotations carry (``problem`` says why it cannot be a signature, e.g. bad base64)."""

    index: int
    payload: Descriptor
    signature: bytes = b""
    certificate_pem: str | None = None
    chain_pem: str | None = None
    rekor_bundle: str | None = None
    problem: str | None = None


def _annotation(annotations: Mapping[str, Any], key: str) -> str | None:
    value = annotations.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_ANNOTATION_CHARS:
        raise ValueError(f"the annotation {key} is not a string of at most {MAX_ANNOTATION_CHARS} characters")
    return value


def signature_layers(manifest: RawManifest, *, what: str) -> list[SignatureLayer]:
    """The simple-signing layers of a cosign signature manifest, in order (other layers are
    skipped); SignatureError when it is not an image manifest or has more than MAX_LAYERS."""
    try:
        obj = manifest.json
    except (ManifestFormatError, ValueError, RecursionError):
        raise _what(what, "the signature manifest is not a JSON object") from None
    if not isinstance(obj, Mapping) or not mediatype.is_manifest(manifest.media_type):
        raise _what(what, f"not an image manifest ({manifest.media_type[:80]})")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise _what(what, "the signature manifest has no layers")
    if len(layers) > MAX_LAYERS:
        raise _what(what, f"the signature manifest has {len(layers)} layers (at most {MAX_LAYERS})")
    out: list[SignatureLayer] = []
    for i, item in enumerate(layers):
        if not isinstance(item, dict) or item.get("mediaType") != SIMPLESIGNING_MEDIA_TYPE:
            continue
        try:
            desc = Descriptor.from_json(item)
        except ManifestFormatError as e:
            out.append(SignatureLayer(i, Descriptor(SIMPLESIGNING_MEDIA_TYPE, manifest.digest, 0),
                                      problem=f"layer {i}: {str(e)[:200]}"))
            continue
        annotations = item.get("annotations") or {}
        try:
            if not isinstance(annotations, dict):
                raise ValueError("its annotations are not an object")
            text = _annotation(annotations, SIGNATURE_ANNOTATION)
            if text is None:
                raise ValueError(f"no {SIGNATURE_ANNOTATION} annotation")
            signature = _b64(text, what, "the signature annotation")
            out.append(SignatureLayer(
                i, desc, signature,
                certificate_pem=_annotation(annotations, CERTIFICATE_ANNOTATION),
                chain_pem=_annotation(annotations, CHAIN_ANNOTATION),
                rekor_bundle=_annotation(annotations, BUNDLE_ANNOTATION),
            ))
        except (ValueError, SignatureError) as e:
            reason = e.reason if isinstance(e, SignatureError) else str(e)
            out.append(SignatureLayer(i, desc, problem=f"layer {i}: {reason}"))
    return out


def is_signature_referrer(desc: Descriptor) -> bool:
    """Whether a referrer is a cosign signature: the OCI 1.1 signature artifact or a Sigstore
    bundle (cosign 3)."""
    return desc.artifact_type == SIGNATURE_ARTIFACT_TYPE or desc.artifact_type in BUNDLE_MEDIA_TYPES


def make_signature_manifest(
    layers: list[tuple[bytes, Mapping[str, str]]],
    *,
    config: bytes,
    subject: Descriptor | None = None,
) -> RawManifest:
    """A signature manifest as cosign writes it: ``layers`` are (payload, annotations); with a
    ``subject`` the OCI 1.1 signature artifact (artifactType and config media type
    SIGNATURE_ARTIFACT_TYPE), else the ``.sig`` tag's manifest (config media type
    ``application/vnd.oci.image.config.v1+json``).  Key order as go-containerregistry's
    ``v1.Manifest`` marshals it."""
    def desc(media_type: str, data: bytes, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": media_type, "size": len(data), "digest": str(Digest.of(data))}
        if annotations:
            out["annotations"] = dict(sorted(annotations.items()))
        return out

    config_type = SIGNATURE_ARTIFACT_TYPE if subject is not None else mediatype.OCI_CONFIG
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": desc(config_type, config),
        "layers": [desc(SIMPLESIGNING_MEDIA_TYPE, p, a) for p, a in layers],
    }
    if subject is not None:
        body["subject"] = {"mediaType": subject.media_type, "size": subject.size, "digest": str(subject.digest)}
        body["artifactType"] = SIGNATURE_ARTIFACT_TYPE
    return RawManifest.from_bytes(_go_json(body).encode(), mediatype.OCI_MANIFEST)


# ---- the Sigstore bundle ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleContent:
    """What a Sigstore bundle (v0.3) signs and with what: for an image signature, a DSSE envelope.

    ``signed`` is the bytes the signature is over (DSSE's PAE of payload type and payload),
    ``payload`` the in-toto statement; the verification material is kept as read for the
    keyless verifier (``certificate`` DER, ``chain`` DERs, ``tlog_entries`` as JSON)."""

    media_type: str
    payload_type: str
    payload: bytes
    signature: bytes
    signed: bytes
    public_key_hint: str | None = None
    certificate_der: bytes | None = None
    chain_der: tuple[bytes, ...] = ()
    tlog_entries: tuple[Any, ...] = field(default=(), compare=False)
    raw: bytes = field(default=b"", compare=False, repr=False)


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a DSSE signature is over."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def parse_bundle(data: bytes, *, what: str) -> BundleContent:
    """A Sigstore bundle holding a DSSE envelope with one signature (what ``cosign sign`` writes
    in the new bundle format); SignatureError for anything else."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise _what(what, f"the bundle is {len(data)} bytes (at most {MAX_BUNDLE_BYTES})")
    obj = _strict_json(data, what, "bundle")
    if not isinstance(obj, dict):
        raise _what(what, "bundle: not a JSON object")
    media_type = obj.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise _what(what, f"bundle: media type {str(media_type)[:80]!r} is not a Sigstore bundle v0.3")
    if "messageSignature" in obj:
        raise _what(what, "bundle: a message signature (a blob's), not an image signature (a DSSE envelope)")
    envelope = obj.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise _what(what, "bundle: no dsseEnvelope")
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str):
        raise _what(what, "bundle: dsseEnvelope.payloadType is not a string")
    payload = _b64(envelope.get("payload"), what, "dsseEnvelope.payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise _what(what, "bundle: dsseEnvelope must hold exactly one signature")
    signature = _b64(signatures[0].get("sig"), what, "the DSSE signature")
    material = obj.get("verificationMaterial")
    if not isinstance(material, dict):
        raise _what(what, "bundle: no verificationMaterial")
    hint = None
    public_key = material.get("publicKey")
    if isinstance(public_key, dict) and isinstance(public_key.get("hint"), str):
        hint = public_key["hint"][:200]
    certificate = None
    cert = material.get("certificate")
    if isinstance(cert, dict):
        certificate = _b64(cert.get("rawBytes"), what, "verificationMaterial.certificate.rawBytes")
    chain: list[bytes] = []
    x509 = material.get("x509CertificateChain")
    if isinstance(x509, dict) and isinstance(x509.get("certificates"), list):
        for c in x509["certificates"][:16]:
            chain.append(_b64(c.get("rawBytes") if isinstance(c, dict) else None, what, "a chain certificate"))
    entries = material.get("tlogEntries")
    tlog = tuple(entries[:16]) if isinstance(entries, list) else ()
    return BundleContent(
        str(media_type), payload_type, payload, signature, dsse_pae(payload_type, payload),
        hint, certificate, tuple(chain), tlog, data,
    )


def check_statement(content: BundleContent, digest: Digest, *, what: str) -> None:
    """SignatureError unless the bundle's payload is an in-toto statement of cosign's image
    signature (predicate ``https://sigstore.dev/cosign/sign/v1``) whose subject is ``digest``."""
    if content.payload_type != DSSE_INTOTO:
        raise _what(what, f"bundle: payload type {content.payload_type[:80]!r} is not {DSSE_INTOTO}")
    statement = _strict_json(content.payload, what, "statement")
    if not isinstance(statement, dict) or statement.get("_type") not in _STATEMENT_TYPES:
        raise _what(what, "bundle: the payload is not an in-toto statement")
    predicate = statement.get("predicateType")
    if predicate != COSIGN_SIGN_PREDICATE:
        raise _what(what, f"bundle: predicate {str(predicate)[:100]!r} is not a cosign image signature ({COSIGN_SIGN_PREDICATE})")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise _what(what, "bundle: the statement has no subject")
    named: list[str] = []
    for s in subjects[:64]:
        digests = s.get("digest") if isinstance(s, dict) else None
        if isinstance(digests, dict):
            value = digests.get(digest.algorithm)
            if value == digest.hex:
                return
            if isinstance(value, str):
                named.append(f"{digest.algorithm}:{value[:64]}")
    others = ", ".join(named[:3]) or "no digest of that algorithm"
    raise _what(what, f"bundle: the statement is for {others}, not {digest}")
