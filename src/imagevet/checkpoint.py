"""Signed checkpoints of the audit ledger, kept locally and as an OCI artifact in the target registry.

A checkpoint commits to the ledger's size (its record count) and to the hash of its last record
(the chain head, which commits to every earlier record through the hash chain).  It is a
`C2SP signed note <https://c2sp.org/signed-note>`_ in the `tlog-checkpoint
<https://c2sp.org/tlog-checkpoint>`_ layout, signed with the organization's Ed25519 key::

    registry.example.com/acme/imagevet-audit      <- origin: the checkpoint repository
    42                                            <- size: records in the ledger
    q0zBkxm+3E4i0jf2e2rT4y2qJ8oZp9Hj9Zb0w1cV3mA=  <- the hash of record 42 (base64)

    — acme-ledger Az3b8V...                       <- key name, base64(key id || signature)

The third line is the chain head, not a Merkle root: a verifier holds the whole ledger and walks
the chain.  Keys use the same text encodings as Go's ``golang.org/x/mod/sumdb/note``: the private
key ``PRIVATE+KEY+<name>+<key id>+<base64>`` and the verifier key ``<name>+<key id>+<base64>``.

The latest checkpoint is written to ``.imagevet/checkpoint`` and pushed to the checkpoint
repository (``<target registry>/<namespace>/imagevet-audit:checkpoint`` by default) as an OCI
1.1 artifact: an image manifest with ``artifactType`` :data:`ARTIFACT_TYPE`, the empty config
and the note as its one layer.  Whoever can rewrite the ledger file but holds neither the key
nor push rights to that repository cannot make a truncated or rewritten ledger verify.

``cryptography`` is imported where a key is used, so an unsigned sync never loads it (about
12 MiB of memory and 20 ms of start-up).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imagevet.digest import Digest
from imagevet.errors import ImagevetError, NotFoundError
from imagevet.manifest import Descriptor, RawManifest
from imagevet.reference import Reference

if TYPE_CHECKING:  # the registry stack (aiohttp) loads only when a checkpoint is pushed or fetched
    from imagevet.store import ImageStore

__all__ = [
    "ARTIFACT_TYPE",
    "CHECKPOINT_REPOSITORY",
    "CHECKPOINT_TAG",
    "NOTE_MEDIA_TYPE",
    "Checkpoint",
    "CheckpointError",
    "Signer",
    "SigningKeyError",
    "Verifier",
    "fetch_checkpoint",
    "generate_key",
    "open_checkpoint",
    "push_checkpoint",
    "sign_checkpoint",
]

ARTIFACT_TYPE = "application/vnd.imagevet.ledger.checkpoint.v1"
NOTE_MEDIA_TYPE = "text/plain; charset=utf-8"
CHECKPOINT_REPOSITORY = "imagevet-audit"
CHECKPOINT_TAG = "checkpoint"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
MAX_NOTE = 64 * 1024
_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "
_EMPTY_HEAD = "sha256:" + hashlib.sha256(b"").hexdigest()
GENESIS = "genesis"  # the ledger's "prev" of record 1, and the head of an empty ledger


class SigningKeyError(ImagevetError):
    """A signing or verifier key is malformed (bad input: fix the key)."""


class CheckpointError(ImagevetError):
    """A checkpoint is malformed, not signed by the expected key, or its signature does not verify."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise SigningKeyError(f"invalid key name {name!r}: no spaces and no '+'")
    return name


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


@dataclass(frozen=True, slots=True)
class Verifier:
    """A public key that checks checkpoint signatures (text: ``<name>+<key id>+<base64>``)."""

    name: str
    key_id: bytes
    public: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)  # base64 may hold '+' too
        if len(parts) != 3:
            raise SigningKeyError("a public key looks like <name>+<8 hex>+<base64> (from imagevet audit keygen)")
        name, hex_id, encoded = parts
        _check_name(name)
        try:
            key_id = bytes.fromhex(hex_id)
            raw = _unb64(encoded)
        except (ValueError, binascii.Error):
            raise SigningKeyError(f"public key {name}: bad key id or base64") from None
        if len(key_id) != 4 or len(raw) != 33 or raw[:1] != _ED25519:
            raise SigningKeyError(f"public key {name}: not an Ed25519 verifier key")
        if _key_id(name, raw[1:]) != key_id:
            raise SigningKeyError(f"public key {name}: the key id does not match the key")
        return cls(name, key_id, raw[1:])

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(_ED25519 + self.public)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Signer:
    """The organization's private signing key (text: ``PRIVATE+KEY+<name>+<key id>+<base64>``)."""

    name: str
    seed: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Parse a private key; the message of an error never contains the key."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise SigningKeyError(
                "a signing key looks like PRIVATE+KEY+<name>+<8 hex>+<base64> (from imagevet audit keygen)"
            )
        name = _check_name(parts[2])
        try:
            key_id = bytes.fromhex(parts[3])
            raw = _unb64(parts[4])
        except (ValueError, binascii.Error):
            raise SigningKeyError(f"signing key {name}: bad key id or base64") from None
        if len(raw) != 33 or raw[:1] != _ED25519:
            raise SigningKeyError(f"signing key {name}: not an Ed25519 key")
        signer = cls(name, raw[1:])
        if signer.verifier.key_id != key_id:
            raise SigningKeyError(f"signing key {name}: the key id does not match the key")
        return signer

    def text(self) -> str:
        """The private key as text (a secret: write it only to a private file)."""
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{_b64(_ED25519 + self.seed)}"

    @property
    def verifier(self) -> Verifier:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        public = (
            Ed25519PrivateKey.from_private_bytes(self.seed)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        return Verifier(self.name, _key_id(self.name, public), public)

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def generate_key(name: str) -> Signer:
    """A new random Ed25519 signing key called ``name``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return Signer(_check_name(name), seed)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a signed checkpoint says: the ledger of ``origin`` had ``size`` records, the last ``head``."""

    origin: str
    size: int
    head: str
    """``sha256:<hex>`` of record ``size`` (:data:`GENESIS` when ``size`` is 0)."""

    def body(self) -> bytes:
        if self.size == 0:
            raw = hashlib.sha256(b"").digest()
        else:
            raw = bytes.fromhex(Digest.parse(self.head).hex)
        return f"{self.origin}\n{self.size}\n{_b64(raw)}\n".encode()

    def describe(self) -> str:
        return f"size {self.size}, head {self.head}"


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> bytes:
    """The signed note of ``checkpoint``."""
    body = checkpoint.body()
    verifier = signer.verifier
    signature = _b64(verifier.key_id + signer.sign(body))
    return body + f"\n{_SIG_PREFIX}{signer.name} {signature}\n".encode()


def open_checkpoint(note: bytes, verifier: Verifier, *, origin: str | None = None) -> Checkpoint:
    """The checkpoint in ``note`` once its signature by ``verifier`` checks; CheckpointError if not."""
    if len(note) > MAX_NOTE:
        raise CheckpointError(f"larger than {MAX_NOTE} bytes")
    try:
        text = note.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError("not UTF-8 text") from None
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise CheckpointError("not a signed note (no signature block)")
    body, sig_block = text[: split + 1], text[split + 2 :]
    signers: list[str] = []
    matched = False
    for line in sig_block.splitlines():
        if not line.startswith(_SIG_PREFIX) or line.count(" ") != 2:
            raise CheckpointError(f"malformed signature line {line[:80]!r}")
        name, encoded = line[len(_SIG_PREFIX):].split(" ")
        try:
            raw = _unb64(encoded)
        except (ValueError, binascii.Error):
            raise CheckpointError(f"malformed signature of {name!r}") from None
        if len(raw) < 5:
            raise CheckpointError(f"malformed signature of {name!r}")
        signers.append(f"{name}+{raw[:4].hex()}")
        if name == verifier.name and raw[:4] == verifier.key_id:
            if not verifier.verify(body.encode(), raw[4:]):
                raise CheckpointError(
                    f"the signature of {verifier.name} does not verify: the checkpoint was altered or forged"
                )
            matched = True
            break
    if not matched:
        by = ", ".join(signers) or "nobody"
        raise CheckpointError(
            f"not signed by the configured key {verifier.name}+{verifier.key_id.hex()} (signed by {by}): "
            "wrong public key, or a checkpoint from another key"
        )
    return _parse_body(body, origin)


def _parse_body(body: str, origin: str | None) -> Checkpoint:
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointError("a checkpoint has an origin, a size and a head line")
    found, size_text, head_text = lines[:3]
    if origin is not None and found != origin:
        raise CheckpointError(f"checkpoint of another ledger (origin {found!r}, expected {origin!r})")
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")) or len(size_text) > 19:
        raise CheckpointError(f"invalid size {size_text[:30]!r}")
    try:
        raw = _unb64(head_text)
    except (ValueError, binascii.Error):
        raise CheckpointError("invalid head hash") from None
    if len(raw) != 32:
        raise CheckpointError("invalid head hash")
    size = int(size_text)
    head = "sha256:" + raw.hex()
    if size == 0:
        if head != _EMPTY_HEAD:
            raise CheckpointError("an empty ledger's checkpoint has the empty hash")
        head = GENESIS
    return Checkpoint(found, size, head)


# -- the checkpoint artifact in the registry -------------------------------------------------------


def _manifest(note: bytes, now: datetime) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": str(Digest.of(EMPTY_BLOB)),
            "size": len(EMPTY_BLOB),
            "data": _b64(EMPTY_BLOB),
        },
        "layers": [
            {
                "mediaType": NOTE_MEDIA_TYPE,
                "digest": str(Digest.of(note)),
                "size": len(note),
                "annotations": {"org.opencontainers.image.title": "checkpoint"},
            }
        ],
        "annotations": {"org.opencontainers.image.created": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    return json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()


async def push_checkpoint(
    client: ImageStore, ref: Reference, note: bytes, *, now: datetime | None = None
) -> Digest:
    """Push ``note`` as the checkpoint artifact at ``ref`` (a tag); return the manifest digest."""
    for blob, media_type in ((EMPTY_BLOB, EMPTY_MEDIA_TYPE), (note, NOTE_MEDIA_TYPE)):
        desc = Descriptor(media_type, Digest.of(blob), len(blob))
        if await client.head_blob(ref, desc.digest) is None:
            await client.push_blob(ref, desc, _chunks(blob))
    raw = RawManifest.from_bytes(_manifest(note, now or datetime.now(UTC)))
    return await client.put_manifest(ref, raw)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def fetch_checkpoint(client: ImageStore, ref: Reference) -> bytes | None:
    """The note of the checkpoint artifact at ``ref``; None when there is none (404)."""
    try:
        raw = await client.get_manifest(ref)
    except NotFoundError:
        return None
    obj = raw.json
    if obj.get("artifactType") != ARTIFACT_TYPE:
        raise CheckpointError(f"{ref} is not an imagevet checkpoint (artifactType {obj.get('artifactType')!r})")
    layers = obj.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        raise CheckpointError(f"{ref}: a checkpoint artifact has exactly one layer")
    desc = Descriptor.from_json(layers[0])
    if desc.size > MAX_NOTE:
        raise CheckpointError(f"{ref}: the checkpoint layer is larger than {MAX_NOTE} bytes")
    parts: list[bytes] = []
    async with client.open_blob(ref, desc) as stream:
        async for chunk in stream:
            parts.append(chunk)
    return b"".join(parts)
