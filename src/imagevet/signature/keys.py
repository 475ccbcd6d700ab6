"""Public and private keys in PEM, and the signature schemes cosign uses with them.

The key types cosign signs with, each with its one scheme:

* ECDSA on P-256 (cosign's default), P-384 or P-521: ASN.1 DER signatures over SHA-256,
  SHA-384 or SHA-512 of the data;
* Ed25519: the raw 64-byte signature over the data itself;
* RSA (2048 to 8192 bits): PKCS #1 v1.5 over SHA-256 (what sigstore's ``LoadVerifier`` uses).

Keys come from PEM text: ``PUBLIC KEY`` (SubjectPublicKeyInfo) for verifying, ``PRIVATE KEY``
or ``ENCRYPTED PRIVATE KEY`` (PKCS #8), ``EC PRIVATE KEY`` or ``RSA PRIVATE KEY`` for signing.
Any other type or size is refused with a :class:`~imagevet.errors.SignatureError` naming the
file, never quoting the key.  ``cryptography`` is imported when a key is loaded, so commands
that never see a key do not pay for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagevet.errors import SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

    RawPublicKey = EllipticCurvePublicKey | Ed25519PublicKey | RSAPublicKey
    RawPrivateKey = EllipticCurvePrivateKey | Ed25519PrivateKey | RSAPrivateKey

__all__ = [
    "MAX_PEM_BYTES",
    "PrivateKey",
    "PublicKey",
    "load_private_key",
    "load_public_key",
]

MAX_PEM_BYTES = 64 * 1024
"""A PEM file longer than this is not a key (an 8192-bit RSA private key is under 7 KiB)."""

_CURVE_HASHES = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
_RSA_BITS = (2048, 8192)


def _hash(name: str) -> Any:
    from cryptography.hazmat.primitives import hashes

    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[name]


def _algorithm(key: Any, what: str) -> str:
    """``ecdsa-p256-sha256``, ``ed25519`` or ``rsa-pkcs1v15-sha256``; SignatureError otherwise."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        digest = _CURVE_HASHES.get(key.curve.name)
        if digest is None:
            raise SignatureError(what, f"ECDSA curve {key.curve.name} is not supported (P-256, P-384, P-521 are)")
        return f"ecdsa-{key.curve.name}-{digest}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        low, high = _RSA_BITS
        if not low <= key.key_size <= high:
            raise SignatureError(what, f"an RSA key of {key.key_size} bits is not supported ({low} to {high} are)")
        return "rsa-pkcs1v15-sha256"
    raise SignatureError(what, f"a {type(key).__name__} key is not supported (ECDSA, Ed25519 and RSA are)")


def _pem(data: bytes, what: str) -> bytes:
    if len(data) > MAX_PEM_BYTES:
        raise SignatureError(what, f"{len(data)} bytes is too long for a PEM key (at most {MAX_PEM_BYTES})")
    if b"-----BEGIN " not in data:
        raise SignatureError(what, "not a PEM key (no -----BEGIN line)")
    return data


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key that verifies signatures; ``key_id`` is the SHA-256 of its DER
    SubjectPublicKeyInfo, what records name it by."""

    raw: RawPublicKey
    algorithm: str
    key_id: str

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``data`` (under its one scheme)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

        key = self.raw
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, data, ec.ECDSA(_hash(self.algorithm.rsplit("-", 1)[1])))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, data, padding.PKCS1v15(), _hash("sha256"))
            else:  # pragma: no cover - load_public_key admits nothing else
                return False
        except (InvalidSignature, ValueError):
            return False
        return True

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.raw.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _public(raw: Any, what: str) -> PublicKey:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    algorithm = _algorithm(raw, what)
    der = raw.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return PublicKey(raw, algorithm, "sha256:" + hashlib.sha256(der).hexdigest())


def load_public_key(data: bytes, *, what: str) -> PublicKey:
    """The public key of PEM ``data`` (``what`` names its file or variable in errors)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        raw = load_pem_public_key(_pem(data, what))
    except (ValueError, TypeError) as e:  # cryptography says what it could not parse, not the key
        raise SignatureError(what, "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)") from e
    return _public(raw, what)


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A private key that signs; ``public`` verifies what it signs."""

    raw: RawPrivateKey
    public: PublicKey

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

        key = self.raw
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(_hash(self.public.algorithm.rsplit("-", 1)[1])))
        return key.sign(data, padding.PKCS1v15(), _hash("sha256"))

    def __repr__(self) -> str:  # never the key material, whoever prints it
        return f"PrivateKey({self.public.algorithm}, {self.public.key_id})"


def load_private_key(data: bytes, *, what: str, password: bytes | None = None) -> PrivateKey:
    """The private key of PEM ``data`` (PKCS #8, SEC 1 or PKCS #1; ``password`` if encrypted)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        raw = load_pem_private_key(_pem(data, what), password=password)
    except TypeError as e:  # a password was needed and not given, or given and not needed
        raise SignatureError(what, "the key is encrypted: give its password" if password is None
                             else "the key is not encrypted: give no password") from e
    except ValueError as e:
        raise SignatureError(what, "not a PEM private key, or the password is wrong") from e
    public = _public(raw.public_key(), what)
    return PrivateKey(raw, public)  # type: ignore[arg-type]  # _public admitted only our three types
