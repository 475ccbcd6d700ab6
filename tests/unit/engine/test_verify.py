"""Verifying a digest's cosign signatures: the one check (check_candidate) and the search in a
store (verify_digest), on a real OCI layout store with signatures made in cosign's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.engine.verify import (
    Candidate,
    Checker,
    Limits,
    Verifier,
    check_candidate,
    verify_digest,
    verify_lock_entry,
)
from imagevet.errors import SignatureError
from imagevet.lock import LockedImage, LockEntry, Verified
from imagevet.policy.model import Approval, Entry, KeySource, TagRules, VerifyRule
from imagevet.reference import Reference
from imagevet.signature.cosign import SIGNATURE_ANNOTATION, make_payload, parse_bundle
from imagevet.signature.keys import PrivateKey
from imagevet.store.layout import LayoutStore
from tests.fixtures.cosign.signing import (
    KeyKind,
    bundle,
    bundle_image,
    generate,
    layer,
    sig_image,
    statement,
)
from tests.support.images import Image, cosign_tag, make_image, make_multiarch
from tests.support.recording_store import Event, RecordingStore
from tests.support.stores import put_image

DIGEST = Digest.of(b"the image being mirrored")
RULE = VerifyRule((KeySource(path="cosign.pub"),))


def verifier(*keys: PrivateKey) -> Verifier:
    return Verifier(RULE, tuple(k.public for k in keys))


def candidate(payload: bytes, signature: bytes) -> Candidate:
    return Candidate(Digest.of(b"sig manifest"), "tag x.sig", 0, "simple-signing", payload, signature, payload)


@pytest.mark.parametrize("kind", ["p256", "p384", "ed25519", "rsa"])
def test_a_valid_key_signature_verifies_and_names_the_signature_and_key(kind: KeyKind) -> None:
    key = generate(kind)
    payload = make_payload("registry.example/app", DIGEST)
    got = check_candidate(candidate(payload, key.sign(payload)), verifier(key), DIGEST)
    assert got == Verified(Digest.of(b"sig manifest"), key.public.key_id)


def test_a_payload_for_another_digest_does_not_verify() -> None:
    key = generate()
    other = Digest.of(b"another image")
    payload = make_payload("registry.example/app", other)
    with pytest.raises(SignatureError, match=f"the payload is for {other}, not {DIGEST}"):
        check_candidate(candidate(payload, key.sign(payload)), verifier(key), DIGEST)


def test_a_tampered_signature_or_payload_does_not_verify() -> None:
    key = generate()
    payload = make_payload("registry.example/app", DIGEST)
    sig = bytearray(key.sign(payload))
    sig[10] ^= 1
    with pytest.raises(SignatureError, match="does not verify with the key sha256:"):
        check_candidate(candidate(payload, bytes(sig)), verifier(key), DIGEST)
    tampered = payload.replace(b"registry.example", b"registry.evil.ex")
    with pytest.raises(SignatureError, match="does not verify"):
        check_candidate(candidate(tampered, key.sign(payload)), verifier(key), DIGEST)


def test_a_signature_by_another_key_does_not_verify_and_any_rule_key_does() -> None:
    ours, theirs = generate(), generate("ed25519")
    payload = make_payload("registry.example/app", DIGEST)
    with pytest.raises(SignatureError, match=ours.public.key_id):
        check_candidate(candidate(payload, theirs.sign(payload)), verifier(ours), DIGEST)
    got = check_candidate(candidate(payload, theirs.sign(payload)), verifier(ours, theirs), DIGEST)
    assert got.key == theirs.public.key_id


def test_a_signed_payload_that_is_not_json_does_not_verify() -> None:
    key = generate()
    with pytest.raises(SignatureError, match="not valid JSON"):
        check_candidate(candidate(b"hello", key.sign(b"hello")), verifier(key), DIGEST)


def test_a_bundle_verifies_by_its_dsse_signature_and_statement() -> None:
    key = generate()
    content = parse_bundle(bundle(key, statement(DIGEST)), what="b")
    c = Candidate(Digest.of(b"b"), "referrer", 0, "bundle", content.payload, content.signature, content.signed,
                  bundle=content)
    assert check_candidate(c, verifier(key), DIGEST).key == key.public.key_id
    with pytest.raises(SignatureError, match="not sha256:"):
        check_candidate(c, verifier(key), Digest.of(b"other"))


# ---- the search, in a real OCI layout store ------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Reference:
    return Reference.parse(f"oci:{tmp_path / 'app'}")


async def put(store: LayoutStore, repo: Reference, image: Image, tag: str | None = None) -> None:
    await put_image(store, repo.with_tag(tag) if tag else repo, image)


async def test_a_signature_found_by_its_tag(repo: Reference) -> None:
    store, key = LayoutStore(), generate()
    image = make_multiarch(seed="tagged")
    await put(store, repo, image, "1")
    sig = sig_image([layer(key, image.digest)])
    await put(store, repo, sig, cosign_tag(image.digest))
    result = await verify_digest(store, repo, image.digest, verifier(key))
    assert result.verified == Verified(sig.digest, key.public.key_id)
    assert result.found_by == f"tag {cosign_tag(image.digest)}" and result.examined == 1


async def test_a_signature_found_by_referrers(repo: Reference) -> None:
    store, key = LayoutStore(), generate("rsa")
    image = make_image(seed="referred")
    await put(store, repo, image, "1")
    sig = sig_image([layer(key, image.digest)], subject=image.top)
    await put(store, repo, sig)
    result = await verify_digest(store, repo, image.digest, verifier(key))
    assert result.verified == Verified(sig.digest, key.public.key_id) and result.found_by == "referrer"


async def test_a_sigstore_bundle_referrer_verifies(repo: Reference) -> None:
    store, key = LayoutStore(), generate()
    image = make_image(seed="bundled")
    await put(store, repo, image, "1")
    ref = bundle_image(image.top, bundle(key, statement(image.digest)))
    await put(store, repo, ref)
    result = await verify_digest(store, repo, image.digest, verifier(key))
    assert result.verified == Verified(ref.digest, key.public.key_id) and result.found_by == "referrer"


async def test_no_signature_says_so(repo: Reference) -> None:
    store = LayoutStore()
    image = make_image(seed="unsigned")
    await put(store, repo, image, "1")
    result = await verify_digest(store, repo, image.digest, verifier(generate()))
    assert not result.ok and result.reason.startswith("no cosign signature")


async def test_every_failed_signature_gives_its_reason_and_a_later_one_still_verifies(repo: Reference) -> None:
    store, key, stranger = LayoutStore(), generate(), generate()
    image = make_image(seed="several")
    await put(store, repo, image, "1")
    other = Digest.of(b"elsewhere")
    bad_b64 = (make_payload("r/app", image.digest), {SIGNATURE_ANNOTATION: "%%%"})
    sig = sig_image([
        layer(stranger, image.digest), layer(key, other), bad_b64, layer(key, image.digest, payload=b"{not json"),
    ])
    await put(store, repo, sig, cosign_tag(image.digest))
    result = await verify_digest(store, repo, image.digest, verifier(key))
    assert not result.ok
    assert "layer 0: the signature does not verify" in result.reason
    assert f"layer 1: the payload is for {other}" in result.reason
    assert "layer 2: the signature annotation is not valid base64" in result.reason
    assert "(and 1 more)" in result.reason and "not valid JSON" in result.reasons[3]

    fixed = sig_image([layer(stranger, image.digest), layer(key, image.digest)])
    await put(store, repo, fixed, cosign_tag(image.digest))
    again = await verify_digest(store, repo, image.digest, verifier(key))
    assert again.verified == Verified(fixed.digest, key.public.key_id) and again.examined == 2


async def test_a_huge_payload_blob_is_not_read(repo: Reference) -> None:
    store, key = LayoutStore(), generate()
    image = make_image(seed="huge")
    await put(store, repo, image, "1")
    huge = make_payload("r/app", image.digest) + b" " * (1 << 20)
    await put(store, repo, sig_image([layer(key, image.digest, payload=huge)]), cosign_tag(image.digest))
    log: list[Event] = []
    recording = RecordingStore(store, "src", log)
    result = await verify_digest(recording, repo, image.digest, verifier(key))
    assert "at most 65536 are read" in result.reason
    assert ("src", "open_blob", "start") not in log


async def test_many_referrers_are_examined_within_bounds(repo: Reference) -> None:
    store, key, stranger = LayoutStore(), generate(), generate("ed25519")
    image = make_image(seed="crowded")
    await put(store, repo, image, "1")
    for i in range(60):
        await put(store, repo, sig_image([layer(stranger, image.digest, reference=f"r/{i}")], subject=image.top))
    log: list[Event] = []
    recording = RecordingStore(store, "src", log)
    limits = Limits(manifests=16, candidates=32)
    result = await verify_digest(recording, repo, image.digest, verifier(key), limits=limits)
    assert not result.ok and result.examined == 16
    assert "44 more signature referrers not examined" in result.reasons[-1]
    assert sum(1 for e in log if e == ("src", "get_manifest", "start")) <= 1 + 16
    assert sum(1 for e in log if e == ("src", "open_blob", "start")) == 16


async def test_a_run_checks_each_digest_once(repo: Reference) -> None:
    store, key = LayoutStore(), generate()
    image = make_image(seed="shared")
    await put(store, repo, image, "1")
    await put(store, repo, sig_image([layer(key, image.digest)]), cosign_tag(image.digest))
    log: list[Event] = []
    checker = Checker(RecordingStore(store, "src", log))
    import asyncio

    results = await asyncio.gather(*(checker.verify(repo, image.digest, verifier(key)) for _ in range(5)))
    assert all(r.ok for r in results)
    assert sum(1 for e in log if e == ("src", "open_blob", "start")) == 1


def _entry(repo: Reference) -> Entry:
    return Entry("app", repo, Reference.parse("registry.example/acme/app"), TagRules(tags=("1",)),
                 Approval("alice"), verify=RULE)


async def test_an_unsigned_new_digest_keeps_the_previous_one_in_the_lock(repo: Reference) -> None:
    from datetime import UTC, datetime

    store, key = LayoutStore(), generate()
    old, new = make_image(seed="v1"), make_image(seed="v2")
    await put(store, repo, old, "0")
    await put(store, repo, new, "1")
    now = datetime(2026, 5, 1, tzinfo=UTC)
    previous = LockedImage(old.digest, old.media_type, now, verified=Verified(Digest.of(b"s"), key.public.key_id))
    fresh = LockedImage(new.digest, new.media_type, now)
    entry = _entry(repo)
    locked, holds = await verify_lock_entry(
        Checker(store), entry, LockEntry(repo, entry.target, {"1": fresh, "2": fresh}),
        LockEntry(repo, entry.target, {"1": previous}), {RULE: verifier(key)},
    )
    assert locked.tags == {"1": previous}
    assert [(h.tag, h.digest, h.kept) for h in holds] == [("1", new.digest, old.digest), ("2", new.digest, None)]
    assert holds[0].describe().startswith(f"app 1 {new.digest.algorithm}:{new.digest.hex[:12]}: not verified: no cosign")

    await put(store, repo, sig_image([layer(key, new.digest)]), cosign_tag(new.digest))
    signed, none = await verify_lock_entry(
        Checker(store), entry, LockEntry(repo, entry.target, {"1": fresh}), None, {RULE: verifier(key)},
    )
    assert not none and signed.tags["1"].verified is not None and signed.tags["1"].verified.key == key.public.key_id


@pytest.mark.parametrize("data", [b"not json at all", b"[1, 2]", b"[" * 50_000 + b"]" * 50_000])
async def test_a_signature_manifest_that_is_not_a_json_object_is_a_reason(repo: Reference, data: bytes) -> None:
    from imagevet.manifest import RawManifest
    from imagevet.mediatype import OCI_MANIFEST

    store, key = LayoutStore(), generate()
    image = make_image(seed="odd-sig")
    await put(store, repo, image, "1")
    odd = RawManifest(OCI_MANIFEST, data, Digest.of(data))
    await store.put_manifest(repo.with_tag(cosign_tag(image.digest)), odd)
    result = await verify_digest(store, repo, image.digest, verifier(key))
    assert not result.ok
    assert f"tag {cosign_tag(image.digest)} {odd.digest.algorithm}:{odd.digest.hex[:12]}: the signature manifest is not a JSON object" in result.reason
