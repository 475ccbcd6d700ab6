"""Attester and verify_attestation on a real OCI layout store (no network): what is pushed when,
and what is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from imagevet.digest import Digest
from imagevet.engine.attest import Attester, lock_records, unsigned_last_run, verify_attestation
from imagevet.lock import Lock, LockedImage, LockEntry, Verified
from imagevet.policy import parse_policy
from imagevet.reference import Reference
from imagevet.signature.intoto import MirrorPredicate, Statement
from imagevet.signature.keys import PrivateKey, load_private_key
from imagevet.store import LayoutStore
from tests.support.images import make_image, make_multiarch
from tests.support.stores import put_image

WHEN = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def key() -> PrivateKey:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return load_private_key(pem, what="org.key")


def statement(repo: Reference, subject: Digest, *, lock: str = "c" * 64, when: datetime = WHEN) -> Statement:
    return Statement(repo.name, subject, MirrorPredicate(
        source="docker.io/acme/app:1", source_digest=subject, entry="app", approved_by="sec",
        lock_sha256=lock, time=when, imagevet_version="0.1.0",
    ))


def referrer_entries(layout: Path) -> list[dict[str, object]]:
    manifests = json.loads((layout / "index.json").read_text())["manifests"]
    return [m for m in manifests if m.get("artifactType") == "application/vnd.in-toto+json"]


async def test_the_same_statement_later_is_found_and_not_pushed_again(tmp_path: Path) -> None:
    org = key()
    ref = Reference.parse(f"oci:{tmp_path / 'app'}:1")
    image = make_multiarch(seed="attester-same")
    store = LayoutStore()
    try:
        await put_image(store, ref, image)
        first = await Attester(store, org).attest(ref, image.digest, statement(ref, image.digest))
        assert first.status == "signed" and first.where.startswith("referrer sha256:")
        later = statement(ref, image.digest, when=datetime(2027, 1, 1, tzinfo=UTC))
        again = await Attester(store, org).attest(ref, image.digest, later)
        assert again.status == "present" and again.where == first.where
        assert len(referrer_entries(tmp_path / "app")) == 1

        changed = await Attester(store, org).attest(ref, image.digest, statement(ref, image.digest, lock="d" * 64))
        assert changed.status == "signed" and changed.where != first.where
        check = await verify_attestation(store, ref, org.public)
        assert check.ok and len(referrer_entries(tmp_path / "app")) == 2
        assert {a.predicate.lock_sha256 for a in check.attestations} == {"c" * 64, "d" * 64}
        assert check.digest == image.digest
    finally:
        await store.aclose()


async def test_another_keys_attestation_is_not_taken_for_ours(tmp_path: Path) -> None:
    org, other = key(), key()
    ref = Reference.parse(f"oci:{tmp_path / 'app'}:1")
    image = make_image(seed="attester-other-key")
    store = LayoutStore()
    try:
        await put_image(store, ref, image)
        await Attester(store, other).attest(ref, image.digest, statement(ref, image.digest))
        ours = await Attester(store, org).attest(ref, image.digest, statement(ref, image.digest))
        assert ours.status == "signed"
        check = await verify_attestation(store, ref, org.public)
        assert check.ok and len(check.attestations) == 1
        assert check.attestations[0].key_id == org.public.key_id
        assert any("no signature of the DSSE envelope verifies" in p for p in check.problems)
    finally:
        await store.aclose()


async def test_a_statement_for_another_digest_is_refused(tmp_path: Path) -> None:
    org = key()
    ref = Reference.parse(f"oci:{tmp_path / 'app'}:1")
    image, other = make_image(seed="attester-a"), make_image(seed="attester-b")
    store = LayoutStore()
    try:
        await put_image(store, ref, image)
        # signed by the org, attached to this image, but about another digest
        await Attester(store, org).attest(ref, image.digest, statement(ref, other.digest))
        check = await verify_attestation(store, ref, org.public)
        assert not check.ok
        assert any(f"the statement is about {other.digest}, not {image.digest}" in p for p in check.problems)
    finally:
        await store.aclose()


async def test_nothing_attached_says_so(tmp_path: Path) -> None:
    ref = Reference.parse(f"oci:{tmp_path / 'app'}:1")
    store = LayoutStore()
    try:
        await put_image(store, ref, make_image(seed="attester-none"))
        check = await verify_attestation(store, ref, key().public)
        assert not check.ok and "no imagevet attestation" in check.problems[0]
        assert check.to_json()["ok"] is False
    finally:
        await store.aclose()


async def test_a_lost_att_tag_is_signed_again_and_the_referrer_is_not_duplicated(tmp_path: Path) -> None:
    org = key()
    ref = Reference.parse(f"oci:{tmp_path / 'app'}:1")
    image = make_image(seed="attester-lost-att")
    store = LayoutStore()
    try:
        await put_image(store, ref, image)
        first = await Attester(store, org).attest(ref, image.digest, statement(ref, image.digest))
        tag = image.digest.tag(".att")
        assert tag is not None and first.where.endswith(f", tag {tag}")
        await store.delete_manifest(ref.repo().with_tag(tag))  # e.g. an upstream .att copied over it
        again = await Attester(store, org).attest(ref, image.digest, statement(ref, image.digest))
        assert again.status == "signed" and again.where == f"tag {tag}"
        assert len(referrer_entries(tmp_path / "app")) == 1
        assert (await verify_attestation(store, ref, org.public)).ok
    finally:
        await store.aclose()


def test_the_last_runs_unsigned_copies_are_read_from_its_summary_and_nothing_else() -> None:
    mirrored, source = Digest.parse("sha256:" + "1" * 64), Digest.parse("sha256:" + "2" * 64)
    good = {"status": "failed", "message": "copied, but not signed: HTTP 403", "target": "r.example/acme/app:1",
            "copy": {"digest": str(mirrored), "source_digest": str(source)}}
    summary = {"actions": [
        good,
        {**good, "status": "done"},  # signed fine
        {**good, "message": "copy r -> t: HTTP 500", "target": "r.example/acme/other:1"},  # the copy failed
        {**good, "target": 7},
        {**good, "copy": {"digest": "sha256:zz", "source_digest": str(source)}},
        "junk",
    ]}
    assert unsigned_last_run(summary) == {("r.example/acme/app:1", mirrored): source}
    assert unsigned_last_run(None) == {} and unsigned_last_run({"actions": "x"}) == {}


def test_by_default_the_predicate_carries_the_locks_verified_and_evidence_records() -> None:
    policy = parse_policy(
        "version: 1\ntarget:\n  registry: registry.example.com\n  namespace: acme\n"
        "images:\n  - source: docker.io/bitnami/redis\n    name: redis\n    tags: {tags: ['7.4']}\n"
        "    approval: {approved_by: sec}\n", env={},
    )
    entry = policy.entry("redis")
    source = Digest.parse("sha256:" + "1" * 64)
    signature, evidence = Digest.parse("sha256:" + "2" * 64), Digest.parse("sha256:" + "3" * 64)
    image = LockedImage(source, "application/vnd.oci.image.index.v1+json", WHEN,
                        evidence=evidence, verified=Verified(signature, key="sha256:" + "4" * 64))
    lock = Lock().with_entry(LockEntry(entry.source, entry.target, {"7.4": image}, {}))
    records = lock_records(policy, lock, source)
    assert records("redis", "7.4") == (
        {"signature": str(signature), "key": "sha256:" + "4" * 64}, {"evidence": str(evidence)}
    )
    assert records("redis", "7.2") == (None, None)  # not locked
    assert lock_records(policy, lock, signature)("redis", "7.4") == (None, None)  # another digest
    assert records("nope", "7.4") == (None, None)
