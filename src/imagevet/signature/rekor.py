"""Rekor transparency log entries, verified offline: the SignedEntryTimestamp (inclusion promise),
the Merkle inclusion proof with its signed checkpoint, and the entry body against what was signed.

Two carriers of an entry:

* cosign's ``dev.sigstore.cosign/bundle`` annotation (legacy ``.sig`` images, cosign
  ``pkg/cosign/bundle/rekor.go`` ``RekorBundle``):
  ``{"SignedEntryTimestamp": b64, "Payload": {"body": b64, "integratedTime": n, "logIndex": n,
  "logID": hex}}`` -- a promise only, no inclusion proof;
* a Sigstore bundle's ``verificationMaterial.tlogEntries[]`` (protobuf-specs
  ``dev.sigstore.rekor.v1.TransparencyLogEntry``): ``logIndex``, ``logId.keyId``,
  ``kindVersion``, ``integratedTime``, ``inclusionPromise.signedEntryTimestamp``,
  ``inclusionProof`` (``logIndex``, ``rootHash``, ``treeSize``, ``hashes``,
  ``checkpoint.envelope``), ``canonicalizedBody``.

The SET is the log's signature over the RFC 8785 canonical JSON of
``{"body", "integratedTime", "logID", "logIndex"}`` (rekor ``pkg/api/entries.go``); with only
ASCII strings and integers in it, sorted keys and no spaces are that canonical form.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imagevet.errors import SignatureError
from imagevet.signature.keyless_parse import b64, integer, items, load_json, obj, text
from imagevet.signature.merkle import (
    leaf_hash,
    parse_checkpoint,
    root_from_inclusion_proof,
    verify_checkpoint_signature,
)
from imagevet.signature.trustroot import TransparencyLog, TrustRoot

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_REKOR_BUNDLE_BYTES",
    "DsseBody",
    "HashedRekordBody",
    "InclusionProof",
    "LogEntry",
    "parse_cosign_rekor_bundle",
    "parse_tlog_entry",
    "verify_inclusion_proof",
    "verify_promise",
]

MAX_REKOR_BUNDLE_BYTES = 256 * 1024
MAX_BODY_BYTES = 128 * 1024
_MAX_PROOF_HASHES = 64
_MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z: later times do not fit a datetime


@dataclass(frozen=True, slots=True)
class InclusionProof:
    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True, slots=True)
class LogEntry:
    body: bytes
    body_b64: str
    integrated_time: int | None
    log_index: int
    log_id: bytes
    promise: bytes | None
    proof: InclusionProof | None
    kind: str | None = None
    version: str | None = None

    @property
    def integrated_at(self) -> datetime:
        return datetime.fromtimestamp(self.integrated_time or 0, tz=UTC)


def _time(value: Any, *, what: str, path: str) -> int:
    seconds = integer(value, what=what, path=path)
    if seconds > _MAX_TIME:
        raise SignatureError(what, f"{path}: {seconds} is not a time")
    return seconds


def parse_cosign_rekor_bundle(data: bytes, *, what: str) -> LogEntry:
    """The entry in cosign's ``dev.sigstore.cosign/bundle`` annotation."""
    doc = load_json(data, what=what, limit=MAX_REKOR_BUNDLE_BYTES)
    payload = obj(doc.get("Payload"), what=what, path="Payload")
    body_b64 = text(payload.get("body"), what=what, path="Payload.body", limit=2 * MAX_BODY_BYTES)
    body = b64(body_b64, what=what, path="Payload.body")
    log_id_hex = text(payload.get("logID"), what=what, path="Payload.logID", limit=128)
    try:
        log_id = bytes.fromhex(log_id_hex)
    except ValueError as e:
        raise SignatureError(what, "Payload.logID: not hex") from e
    return LogEntry(
        body=body,
        body_b64=body_b64,
        integrated_time=_time(payload.get("integratedTime"), what=what, path="Payload.integratedTime"),
        log_index=integer(payload.get("logIndex"), what=what, path="Payload.logIndex"),
        log_id=log_id,
        promise=b64(doc.get("SignedEntryTimestamp"), what=what, path="SignedEntryTimestamp", limit=4096),
        proof=None,
    )


def parse_tlog_entry(value: Any, *, what: str, path: str) -> LogEntry:
    """A ``TransparencyLogEntry`` of a Sigstore bundle."""
    e = obj(value, what=what, path=path)
    body = b64(e.get("canonicalizedBody"), what=what, path=f"{path}.canonicalizedBody", limit=2 * MAX_BODY_BYTES)
    kv = obj(e.get("kindVersion"), what=what, path=f"{path}.kindVersion")
    promise = e.get("inclusionPromise")
    proof_value = e.get("inclusionProof")
    proof = None
    if proof_value is not None:
        p = obj(proof_value, what=what, path=f"{path}.inclusionProof")
        checkpoint = obj(p.get("checkpoint"), what=what, path=f"{path}.inclusionProof.checkpoint")
        proof = InclusionProof(
            log_index=integer(p.get("logIndex"), what=what, path=f"{path}.inclusionProof.logIndex"),
            tree_size=integer(p.get("treeSize"), what=what, path=f"{path}.inclusionProof.treeSize"),
            root_hash=b64(p.get("rootHash"), what=what, path=f"{path}.inclusionProof.rootHash", limit=128),
            hashes=tuple(b64(h, what=what, path=f"{path}.inclusionProof.hashes[{i}]", limit=128)
                         for i, h in enumerate(items(p.get("hashes", []), what=what,
                                                     path=f"{path}.inclusionProof.hashes", limit=_MAX_PROOF_HASHES))),
            checkpoint=text(checkpoint.get("envelope"), what=what, path=f"{path}.inclusionProof.checkpoint.envelope",
                            limit=16 * 1024),
        )
    time_value = e.get("integratedTime")
    return LogEntry(
        body=body,
        body_b64=base64.b64encode(body).decode("ascii"),
        integrated_time=(_time(time_value, what=what, path=f"{path}.integratedTime")
                         if time_value not in (None, "0", 0) else None),
        log_index=integer(e.get("logIndex"), what=what, path=f"{path}.logIndex"),
        log_id=b64(obj(e.get("logId"), what=what, path=f"{path}.logId").get("keyId"), what=what,
                   path=f"{path}.logId.keyId", limit=128),
        promise=(b64(obj(promise, what=what, path=f"{path}.inclusionPromise").get("signedEntryTimestamp"),
                     what=what, path=f"{path}.inclusionPromise.signedEntryTimestamp", limit=4096)
                 if promise is not None else None),
        proof=proof,
        kind=text(kv.get("kind"), what=what, path=f"{path}.kindVersion.kind", limit=64),
        version=text(kv.get("version"), what=what, path=f"{path}.kindVersion.version", limit=64),
    )


def _log_of(entry: LogEntry, trust: TrustRoot, what: str) -> TransparencyLog:
    log = trust.rekor_log(entry.log_id)
    if log is None:
        raise SignatureError(what, f"the Rekor entry is in log {entry.log_id.hex()[:16]}..., which the trust root "
                             f"({trust.source}) does not name")
    return log


def verify_promise(entry: LogEntry, trust: TrustRoot, *, what: str) -> TransparencyLog:
    """Check the SignedEntryTimestamp and that the log's key was valid at the integrated time."""
    if entry.integrated_time is None or entry.promise is None:
        raise SignatureError(what, "the Rekor entry has no integrated time with a SignedEntryTimestamp, so "
                             "the signing time cannot be verified offline (Rekor v2 entries timestamped by "
                             "a TSA are not supported yet)")
    log = _log_of(entry, trust, what)
    canonical = json.dumps({"body": entry.body_b64, "integratedTime": entry.integrated_time,
                            "logID": entry.log_id.hex(), "logIndex": entry.log_index},
                           sort_keys=True, separators=(",", ":")).encode("ascii")
    if not log.key.verify(entry.promise, canonical):
        raise SignatureError(what, "the Rekor SignedEntryTimestamp does not verify with the key of the log it "
                             "names (signed by another key, or the entry was altered)")
    if not log.valid.contains(entry.integrated_at):
        raise SignatureError(what, f"the Rekor entry was integrated at {entry.integrated_at.isoformat()}, outside "
                             f"the period the trust root gives the log's key ({log.valid})")
    return log


def verify_inclusion_proof(entry: LogEntry, log: TransparencyLog, *, what: str) -> None:
    """Check the audit path from the entry to the root hash and the checkpoint signed by ``log``."""
    proof = entry.proof
    if proof is None:
        raise SignatureError(what, "the Rekor entry has no inclusion proof")
    root = root_from_inclusion_proof(proof.log_index, proof.tree_size, leaf_hash(entry.body), list(proof.hashes))
    if root is None or root != proof.root_hash:
        raise SignatureError(what, "the inclusion proof does not lead from the entry to the root hash it states")
    checkpoint = parse_checkpoint(proof.checkpoint)
    if checkpoint is None:
        raise SignatureError(what, "the inclusion proof's checkpoint is not a signed note")
    if checkpoint.size != proof.tree_size or checkpoint.root_hash != proof.root_hash:
        raise SignatureError(what, "the inclusion proof does not lead to the checkpoint (other tree size or root hash)")
    if not verify_checkpoint_signature(checkpoint, log.key, log.log_id[:4]):
        raise SignatureError(what, "the checkpoint is not signed by the Rekor log's key")


@dataclass(frozen=True, slots=True)
class HashedRekordBody:
    """``hashedrekord`` 0.0.1: the digest signed, the signature and the signer's certificate."""

    algorithm: str
    digest: bytes
    signature: bytes
    certificate_der: bytes


@dataclass(frozen=True, slots=True)
class DsseBody:
    """``dsse`` 0.0.1: the payload's hash and each signature with its verifier's certificate."""

    payload_sha256: bytes
    signatures: tuple[tuple[bytes, bytes], ...]


def _pem_certificate_der(value: Any, *, what: str, path: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = b64(value, what=what, path=path, limit=64 * 1024)
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise SignatureError(what, f"{path}: not a PEM certificate (a key-signed entry is not keyless)") from e
    return cert.public_bytes(Encoding.DER)


def _hex(value: Any, *, what: str, path: str) -> bytes:
    try:
        return bytes.fromhex(text(value, what=what, path=path, limit=256))
    except ValueError as e:
        raise SignatureError(what, f"{path}: not hex") from e


def parse_body(entry: LogEntry, *, what: str) -> HashedRekordBody | DsseBody:
    """The entry's body (``hashedrekord`` or ``dsse`` 0.0.1; other kinds are refused)."""
    if len(entry.body) > MAX_BODY_BYTES:
        raise SignatureError(what, "the Rekor entry body is too long")
    doc = load_json(entry.body, what=f"{what}: Rekor entry body", limit=MAX_BODY_BYTES)
    kind, version = doc.get("kind"), doc.get("apiVersion")
    if (entry.kind, entry.version) not in ((None, None), (kind, version)):
        raise SignatureError(what, f"the bundle says the entry is {entry.kind} {entry.version}, its body says "
                             f"{str(kind)[:40]} {str(version)[:40]}")
    w = f"{what}: Rekor entry body"
    spec = obj(doc.get("spec"), what=w, path="spec")
    if (kind, version) == ("hashedrekord", "0.0.1"):
        data = obj(obj(spec.get("data"), what=w, path="spec.data").get("hash"), what=w, path="spec.data.hash")
        sig = obj(spec.get("signature"), what=w, path="spec.signature")
        return HashedRekordBody(
            algorithm=text(data.get("algorithm"), what=w, path="spec.data.hash.algorithm", limit=16),
            digest=_hex(data.get("value"), what=w, path="spec.data.hash.value"),
            signature=b64(sig.get("content"), what=w, path="spec.signature.content", limit=8192),
            certificate_der=_pem_certificate_der(obj(sig.get("publicKey"), what=w, path="spec.signature.publicKey")
                                                 .get("content"), what=w, path="spec.signature.publicKey.content"),
        )
    if (kind, version) == ("dsse", "0.0.1"):
        payload_hash = obj(spec.get("payloadHash"), what=w, path="spec.payloadHash")
        if payload_hash.get("algorithm") != "sha256":
            raise SignatureError(w, "spec.payloadHash.algorithm: expected sha256")
        sigs = items(spec.get("signatures"), what=w, path="spec.signatures", limit=16)
        return DsseBody(
            payload_sha256=_hex(payload_hash.get("value"), what=w, path="spec.payloadHash.value"),
            signatures=tuple(
                (b64(obj(s, what=w, path=f"spec.signatures[{i}]").get("signature"), what=w,
                     path=f"spec.signatures[{i}].signature", limit=8192),
                 _pem_certificate_der(s.get("verifier"), what=w, path=f"spec.signatures[{i}].verifier"))
                for i, s in enumerate(sigs)),
        )
    raise SignatureError(what, f"the Rekor entry is a {str(kind)[:40]} {str(version)[:40]} entry; imagevet verifies "
                         "hashedrekord and dsse 0.0.1 entries")


def certificate_der(cert: Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
