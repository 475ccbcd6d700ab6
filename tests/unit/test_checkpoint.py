"""Checkpoints are C2SP signed notes: interoperable keys and signatures, and every forgery refused."""

from __future__ import annotations

import base64

import pytest

from imagevet.checkpoint import (
    GENESIS,
    Checkpoint,
    CheckpointError,
    Signer,
    SigningKeyError,
    Verifier,
    generate_key,
    open_checkpoint,
    sign_checkpoint,
)

HEAD = "sha256:" + "ab" * 32
ORIGIN = "registry.example.com/acme/imagevet-audit"


def test_a_note_signed_by_go_sumdb_note_verifies() -> None:
    """The example of the C2SP signed-note spec (made with Go's golang.org/x/mod/sumdb/note)."""
    verifier = Verifier.parse("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    signature = base64.b64decode(
        "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM="
    )
    assert signature[:4] == verifier.key_id
    assert verifier.verify(b"This is an example message.\n", signature[4:])
    assert not verifier.verify(b"This is an example message!\n", signature[4:])
    assert str(verifier) == "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


def test_sign_and_open_a_checkpoint() -> None:
    signer = generate_key("acme-ledger")
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, HEAD), signer)
    text = note.decode()
    assert text.startswith(f"{ORIGIN}\n42\n{base64.b64encode(bytes.fromhex('ab' * 32)).decode()}\n\n\u2014 acme-ledger ")
    assert open_checkpoint(note, signer.verifier, origin=ORIGIN) == Checkpoint(ORIGIN, 42, HEAD)
    assert Signer.parse(signer.text()).verifier == signer.verifier
    assert Verifier.parse(str(signer.verifier)) == signer.verifier
    assert signer.text() not in repr(signer)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("\n42\n", "\n43\n"), "altered or forged"),
        (lambda t: t.replace(ORIGIN, ORIGIN + "x"), "altered or forged"),
        (lambda t: t.split("\n\n")[0] + "\n", "no signature block"),
        (lambda t: t.replace("\u2014 ", "-- "), "malformed signature line"),
    ],
    ids=["size", "origin", "unsigned", "bad-signature-line"],
)
def test_an_altered_checkpoint_is_refused(change, message: str) -> None:  # type: ignore[no-untyped-def]
    signer = generate_key("acme-ledger")
    note = change(sign_checkpoint(Checkpoint(ORIGIN, 42, HEAD), signer).decode()).encode()
    with pytest.raises(CheckpointError, match=message):
        open_checkpoint(note, signer.verifier)


def test_another_key_or_another_ledger_is_refused() -> None:
    signer, other = generate_key("acme-ledger"), generate_key("acme-ledger")
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, HEAD), signer)
    with pytest.raises(CheckpointError, match=r"not signed by the configured key acme-ledger\+.*wrong public key"):
        open_checkpoint(note, other.verifier)
    with pytest.raises(CheckpointError, match="checkpoint of another ledger"):
        open_checkpoint(note, signer.verifier, origin="other.example/acme/imagevet-audit")


def test_an_empty_ledger_checkpoint() -> None:
    signer = generate_key("k")
    note = sign_checkpoint(Checkpoint(ORIGIN, 0, GENESIS), signer)
    assert open_checkpoint(note, signer.verifier) == Checkpoint(ORIGIN, 0, GENESIS)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PRIVATE+KEY+name",
        "PRIVATE+KEY+na me+00000000+AQ==",
        "PRIVATE+KEY+name+zz+AQ==",
        "PRIVATE+KEY+name+00000000+c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==",
    ],
)
def test_a_malformed_signing_key_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(SigningKeyError) as caught:
        Signer.parse(text)
    assert "c2VjcmV0" not in str(caught.value)


def test_a_key_id_that_does_not_match_is_refused() -> None:
    signer = generate_key("acme")
    good = str(signer.verifier)
    name, key_id, key = good.split("+", 2)
    with pytest.raises(SigningKeyError, match="key id does not match"):
        Verifier.parse(f"{name}+{'0' * 8 if key_id != '0' * 8 else '1' * 8}+{key}")
    with pytest.raises(SigningKeyError, match="key id does not match"):
        Verifier.parse(f"other+{key_id}+{key}")
