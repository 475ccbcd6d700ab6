"""Keys in PEM and the one signature scheme of each key type cosign signs with."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa

from imagevet.errors import SignatureError
from imagevet.signature.keys import MAX_PEM_BYTES, load_private_key, load_public_key


def _pems(raw: object, password: bytes | None = None) -> tuple[bytes, bytes]:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    private = raw.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
    )
    public = raw.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


KEYS = {
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "rsa-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_what_a_private_key_signs_its_public_key_verifies_and_nothing_else(kind: str) -> None:
    private_pem, public_pem = _pems(KEYS[kind]())
    signer = load_private_key(private_pem, what="org.key")
    verifier = load_public_key(public_pem, what="org.pub")
    assert signer.public.key_id == verifier.key_id and verifier.key_id.startswith("sha256:")
    signature = signer.sign(b"payload")
    assert verifier.verify(signature, b"payload")
    assert not verifier.verify(signature, b"payload!")
    assert not verifier.verify(signature[:-1] + bytes([signature[-1] ^ 1]), b"payload")
    other = load_public_key(_pems(KEYS[kind]())[1], what="other.pub")
    assert not other.verify(signature, b"payload")
    assert "PRIVATE" not in repr(signer) and kind.split("-")[0] in repr(signer)


def test_signatures_follow_cosigns_schemes_so_cosign_made_signatures_verify() -> None:
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    assert load_public_key(_pems(ecdsa)[1], what="k").verify(
        ecdsa.sign(b"x", ec.ECDSA(hashes.SHA256())), b"x"
    )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert load_public_key(_pems(rsa_key)[1], what="k").verify(
        rsa_key.sign(b"x", padding.PKCS1v15(), hashes.SHA256()), b"x"
    )


def test_an_encrypted_key_needs_its_password_and_errors_never_quote_the_key() -> None:
    private_pem, _ = _pems(ec.generate_private_key(ec.SECP256R1()), password=b"s3cret-pass")
    assert load_private_key(private_pem, what="org.key", password=b"s3cret-pass").sign(b"x")
    with pytest.raises(SignatureError, match="encrypted: give its password") as e:
        load_private_key(private_pem, what="org.key")
    assert "BEGIN" not in str(e.value)
    with pytest.raises(SignatureError, match="password is wrong"):
        load_private_key(private_pem, what="org.key", password=b"nope")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello", "no -----BEGIN line"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
        (b"-----BEGIN " + b"A" * MAX_PEM_BYTES, "too long"),
    ],
)
def test_what_is_not_a_key_is_refused_by_name(data: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message) as e:
        load_public_key(data, what="keys/org.pub")
    assert str(e.value).startswith("keys/org.pub: ")


def test_weak_or_unknown_key_types_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(SignatureError, match="1024 bits is not supported"):
        load_public_key(_pems(small)[1], what="k")
    with pytest.raises(SignatureError, match="DSAPublicKey key is not supported"):
        load_public_key(_pems(dsa.generate_private_key(key_size=2048))[1], what="k")
    with pytest.raises(SignatureError, match="curve secp256k1 is not supported"):
        load_public_key(_pems(ec.generate_private_key(ec.SECP256K1()))[1], what="k")
