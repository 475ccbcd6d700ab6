"""The Sigstore trust root: which Fulcio CAs, Rekor logs, CT logs and timestamp authorities to trust,
each for a period of time.

A trust root is the ``trusted_root.json`` of the Sigstore protobuf-specs
(``application/vnd.dev.sigstore.trustedroot+json;version=0.1``, message
``dev.sigstore.trustroot.v1.TrustedRoot``): ``tlogs`` and ``ctlogs`` carry a public key
(``rawBytes``: DER SubjectPublicKeyInfo, ``keyDetails``, ``validFor``) and a ``logId``;
``certificateAuthorities`` and ``timestampAuthorities`` carry a ``certChain`` (DER certificates,
leaf-most first) and ``validFor``.

:meth:`TrustRoot.public_good` reads the production root that the ``sigstore`` package ships in
its wheel (the copy its TUF client starts from), offline: no TUF update is made, so the root is as
fresh as the installed ``sigstore`` release.  A private Sigstore instance gives its own file to
:meth:`TrustRoot.load`.

A key of a type imagevet does not verify with (see :mod:`imagevet.signature.keys`) is skipped, as
sigstore-python does: a root that adds a new kind of log must not stop the others from working.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from imagevet.errors import SignatureError
from imagevet.signature.keyless_parse import b64, items, load_json, obj, rfc3339, text
from imagevet.signature.keys import PublicKey, load_public_key

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = [
    "MAX_CERTIFICATE_BYTES",
    "MAX_TRUST_ROOT_BYTES",
    "CertificateAuthority",
    "TransparencyLog",
    "TrustRoot",
    "Validity",
    "load_der_certificate",
    "public_key_of_der",
]

MAX_TRUST_ROOT_BYTES = 1 << 20
"""The production trust root is about 8 KiB."""
MAX_CERTIFICATE_BYTES = 16 * 1024
MAX_CHAIN = 16

_PUBLIC_GOOD = ("_store", "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev", "trusted_root.json")
_MEDIA_TYPES = ("application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "application/vnd.dev.sigstore.trustedroot.v0.2+json")


@dataclass(frozen=True, slots=True)
class Validity:
    """``start`` inclusive to ``end`` exclusive; no ``end``: still valid."""

    start: datetime
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        return self.start <= when and (self.end is None or when < self.end)

    def __str__(self) -> str:
        end = self.end.isoformat() if self.end else "now"
        return f"{self.start.isoformat()} to {end}"


@dataclass(frozen=True, slots=True)
class TransparencyLog:
    """A Rekor log or a certificate transparency log: ``log_id`` (what entries and SCTs name it
    by: the SHA-256 of its DER key for RFC 6962 logs) and the key its signatures verify with."""

    base_url: str
    log_id: bytes
    key: PublicKey
    valid: Validity


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A Fulcio CA or a timestamp authority: its certificates, leaf-most first, root last."""

    uri: str
    certificates: tuple[Certificate, ...]
    valid: Validity


@dataclass(frozen=True, slots=True)
class TrustRoot:
    """What a keyless signature is verified against (see the module docstring)."""

    fulcio: tuple[CertificateAuthority, ...]
    rekor: tuple[TransparencyLog, ...]
    ctlogs: tuple[TransparencyLog, ...]
    tsas: tuple[CertificateAuthority, ...]
    source: str

    @classmethod
    def load(cls, data: bytes, *, what: str) -> TrustRoot:
        """The trust root of ``trusted_root.json`` bytes (``what`` names the file in errors)."""
        doc = load_json(data, what=what, limit=MAX_TRUST_ROOT_BYTES)
        media = doc.get("mediaType")
        if media not in _MEDIA_TYPES:
            raise SignatureError(what, f"mediaType {str(media)[:80]!r} is not a Sigstore trusted root")
        root = cls(
            fulcio=tuple(_authority(v, what, f"certificateAuthorities[{i}]") for i, v in
                         enumerate(items(doc.get("certificateAuthorities", []), what=what, path="certificateAuthorities"))),
            rekor=_logs(doc, "tlogs", what),
            ctlogs=_logs(doc, "ctlogs", what),
            tsas=tuple(_authority(v, what, f"timestampAuthorities[{i}]") for i, v in
                       enumerate(items(doc.get("timestampAuthorities", []), what=what, path="timestampAuthorities"))),
            source=what,
        )
        if not root.fulcio:
            raise SignatureError(what, "the trust root names no Fulcio certificate authority")
        if not root.rekor:
            raise SignatureError(what, "the trust root names no Rekor transparency log")
        return root

    @staticmethod
    def public_good() -> TrustRoot:
        """Sigstore's production trust root as the installed ``sigstore`` package ships it."""
        return _public_good()

    def rekor_log(self, log_id: bytes) -> TransparencyLog | None:
        return next((log for log in self.rekor if log.log_id == log_id), None)

    def ct_log(self, log_id: bytes) -> TransparencyLog | None:
        return next((log for log in self.ctlogs if log.log_id == log_id), None)


@functools.lru_cache(maxsize=1)
def _public_good() -> TrustRoot:
    from importlib import metadata, resources

    what = "the Sigstore public-good trust root"
    try:
        version = metadata.version("sigstore")
        path = resources.files("sigstore").joinpath(*_PUBLIC_GOOD)
        data = path.read_bytes()
    except (ImportError, metadata.PackageNotFoundError, OSError) as e:
        raise SignatureError(what, "the sigstore package is not installed where imagevet runs, or ships no "
                             "trusted_root.json: install sigstore, or give a trust root file") from e
    return TrustRoot.load(data, what=f"{what} (sigstore {version})")


def load_der_certificate(der: bytes, *, what: str, path: str) -> Certificate:
    from cryptography import x509

    if len(der) > MAX_CERTIFICATE_BYTES:
        raise SignatureError(what, f"{path}: {len(der)} bytes is too long for a certificate")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise SignatureError(what, f"{path}: not a DER X.509 certificate") from e


def public_key_of_der(der: bytes, *, what: str) -> PublicKey:
    """A :class:`PublicKey` from DER SubjectPublicKeyInfo (through PEM: keys.py reads PEM)."""
    lines = base64.encodebytes(der).decode("ascii")
    pem = f"-----BEGIN PUBLIC KEY-----\n{lines}-----END PUBLIC KEY-----\n".encode("ascii")
    return load_public_key(pem, what=what)


def _validity(value: Any, what: str, path: str) -> Validity:
    v = obj(value, what=what, path=path)
    start = rfc3339(v.get("start"), what=what, path=f"{path}.start")
    end = rfc3339(v["end"], what=what, path=f"{path}.end") if v.get("end") is not None else None
    return Validity(start, end)


def _authority(value: Any, what: str, path: str) -> CertificateAuthority:
    ca = obj(value, what=what, path=path)
    chain = obj(ca.get("certChain"), what=what, path=f"{path}.certChain")
    certs = items(chain.get("certificates"), what=what, path=f"{path}.certChain.certificates", limit=MAX_CHAIN)
    if not certs:
        raise SignatureError(what, f"{path}.certChain.certificates: empty")
    parsed = tuple(
        load_der_certificate(
            b64(obj(c, what=what, path=f"{path}.certChain.certificates[{i}]").get("rawBytes"),
                what=what, path=f"{path}.certChain.certificates[{i}].rawBytes", limit=4 * MAX_CERTIFICATE_BYTES),
            what=what, path=f"{path}.certChain.certificates[{i}]")
        for i, c in enumerate(certs)
    )
    uri = ca.get("uri")
    return CertificateAuthority(uri if isinstance(uri, str) else "", parsed,
                                _validity(ca.get("validFor"), what, f"{path}.validFor"))


def _logs(doc: dict[str, Any], key: str, what: str) -> tuple[TransparencyLog, ...]:
    logs: list[TransparencyLog] = []
    for i, value in enumerate(items(doc.get(key, []), what=what, path=key)):
        path = f"{key}[{i}]"
        log = obj(value, what=what, path=path)
        pk = obj(log.get("publicKey"), what=what, path=f"{path}.publicKey")
        der = b64(pk.get("rawBytes"), what=what, path=f"{path}.publicKey.rawBytes", limit=4 * MAX_CERTIFICATE_BYTES)
        log_id = b64(obj(log.get("logId"), what=what, path=f"{path}.logId").get("keyId"),
                     what=what, path=f"{path}.logId.keyId", limit=256)
        try:
            public = public_key_of_der(der, what=f"{what}: {path}.publicKey")
        except SignatureError:
            continue  # a key type imagevet does not verify with (see the module docstring)
        url = log.get("baseUrl")
        logs.append(TransparencyLog(text(url, what=what, path=f"{path}.baseUrl") if url is not None else "",
                                    log_id, public, _validity(pk.get("validFor"), what, f"{path}.publicKey.validFor")))
    return tuple(logs)
