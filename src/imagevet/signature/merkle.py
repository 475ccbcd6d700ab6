"""RFC 6962 Merkle inclusion proofs and the signed checkpoints (signed notes) of transparency logs.

* Leaf hash ``SHA-256(0x00 || entry)``, node hash ``SHA-256(0x01 || left || right)``
  (RFC 6962 section 2.1); an audit path is checked by the algorithm of RFC 9162 section 2.1.3.2,
  the one Rekor, Trillian and sigstore-python use.
* A checkpoint is a signed note (golang.org/x/mod/sumdb/note, format of
  transparency-dev/formats ``log/README.md``): the text ``<origin>\\n<size>\\n<base64 root>\\n``
  (then optional extension lines), a blank line, then signature lines
  ``\\u2014 <name> <base64(4-byte key hint || signature)>\\n``.  The signature is over the text,
  up to and including its last newline.  Rekor v1 logs' key hint is the first 4 bytes of the
  log ID (SHA-256 of the log's DER public key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from imagevet.signature.keys import PublicKey

__all__ = ["Checkpoint", "MAX_NOTE_BYTES", "leaf_hash", "parse_checkpoint", "root_from_inclusion_proof",
           "verify_checkpoint_signature"]

MAX_NOTE_BYTES = 16 * 1024
_MAX_SIGNATURES = 16


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes | None:
    """The root hash the audit path ``proof`` leads to from leaf hash ``leaf`` at ``index`` of a
    tree of ``size`` leaves; ``None`` when the path has the wrong shape for that position."""
    if not 0 <= index < size or any(len(h) != 32 for h in proof):
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return None  # more hashes than the path has levels
        if fn % 2 == 1 or fn == sn:
            r = _node(p, r)
            if fn % 2 == 0:  # right border: climb until fn is a right child or reaches the root
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    text: bytes
    """The signed part of the note: every line up to and including the blank line's predecessor."""
    signatures: tuple[tuple[str, bytes, bytes], ...]
    """``(name, key hint, signature)`` per signature line."""


def parse_checkpoint(note: str) -> Checkpoint | None:
    """The checkpoint of a signed note; ``None`` when ``note`` is not one."""
    raw = note.encode("utf-8")
    if len(raw) > MAX_NOTE_BYTES or "\n\n" not in note or not note.endswith("\n"):
        return None
    body, _, sigs = note.partition("\n\n")
    lines = body.split("\n")
    if len(lines) < 3 or not lines[1].isascii() or not lines[1].isdigit() or len(lines[1]) > 20:
        return None
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(root) != 32:
        return None
    signatures: list[tuple[str, bytes, bytes]] = []
    for line in sigs.split("\n")[:-1][:_MAX_SIGNATURES]:
        if not line.startswith("\u2014 "):
            return None
        parts = line[2:].split(" ")
        if len(parts) != 2:
            return None
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(blob) < 5:
            return None
        signatures.append((parts[0], blob[:4], blob[4:]))
    if not signatures:
        return None
    return Checkpoint(lines[0], int(lines[1]), root, (body + "\n").encode("utf-8"), tuple(signatures))


def verify_checkpoint_signature(checkpoint: Checkpoint, key: PublicKey, key_hint: bytes) -> bool:
    """Whether one signature line with ``key_hint`` is ``key``'s signature of the note text."""
    return any(hint == key_hint and key.verify(sig, checkpoint.text)
               for _name, hint, sig in checkpoint.signatures)
