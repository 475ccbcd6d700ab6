"""Signed mirrors end to end: ``imagevet sync`` with ``sign:`` against real registries.

* docker-registry 2.8 (``registry_factory``) has no referrers API: the attestation goes to the
  ``sha256-<hex>.att`` tag, appended to the upstream one copied along;
* the in-process ``fake_registry`` has the OCI 1.1 referrers API: it goes there as a referrer;
* an ``oci:`` layout target lists referrers from what it holds.

What is checked is what a user (or cosign) sees: tags and manifests in the target, the
envelope and statement inside, requests made, exit codes and messages; and that
``verify_attestation`` accepts it with the org's public key and refuses the rest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.engine.attest import verify_attestation
from imagevet.engine.resolve import resolve_lock
from imagevet.engine.run import RunOptions, run_sync
from imagevet.engine.state import FileStateStore
from imagevet.lock import Lock, read_lock, write_lock
from imagevet.manifest import Descriptor, RawManifest
from imagevet.policy import load_policy
from imagevet.reference import Reference
from imagevet.registry import RegistryClient
from imagevet.signature.dsse import pae
from imagevet.signature.keys import PrivateKey, PublicKey, load_private_key, load_public_key
from imagevet.store import LayoutStore, StoreRouter
from tests.support.images import (
    Image,
    cosign_tag,
    descriptor_json,
    dump_json,
    make_image,
    make_multiarch,
)
from tests.support.pusher import (
    get_blob,
    get_manifest_bytes,
    list_tags,
    list_tags_sync,
    push_image,
    push_image_sync,
)
from tests.support.registry_process import RunningRegistry

DSSE = "application/vnd.dsse.envelope.v1+json"
OURS = "https://imagevet.dev/mirror/v1"
PASSWORD = "correct horse battery staple"


async def manifest_json(registry: Any, repo: str, ref: str) -> Any:
    return json.loads((await get_manifest_bytes(registry, repo, ref))[0])


def imagevet(*args: str, policy: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args, "--policy", str(policy)],
        capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})},
    )


def org_key(tmp: Path, *, password: bytes | None = None) -> tuple[PrivateKey, PublicKey, bytes]:
    raw = ec.generate_private_key(ec.SECP256R1())
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    pem = raw.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    (tmp / "org.key").write_bytes(pem)
    private = load_private_key(pem, what="org.key", password=password)
    public = load_public_key(private.public.pem(), what="org.pub")
    return private, public, pem


def write_policy(tmp: Path, target: str, entries: str, sign: str = "sign:\n  key: org.key\n") -> Path:
    where = f"  layout: {target}\n" if target.startswith("mirror") else f"  registry: {target}\n"
    path = tmp / "imagevet.yaml"
    path.write_text(
        "version: 1\n"
        f"target:\n{where}  namespace: acme\n"
        "defaults:\n"
        "  approval:\n    approved_by: security@acme.example\n    reason: vetted for checkout\n"
        "    ticket: SEC-7\n    expires: 2099-12-31\n"
        f"{sign}"
        "images:\n" + entries
    )
    return path


def upstream_att(subject: Digest, *, seed: str) -> Image:
    """An upstream attestation in cosign's ``.att`` layout (a SLSA provenance, someone else's
    key), written out by hand as cosign writes it."""
    statement = dump_json({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "upstream.example/app", "digest": {"sha256": subject.hex}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": seed}},
    })
    envelope = dump_json({
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(statement).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(b"publisher-signature-" + seed.encode()).decode()}],
    })
    config = dump_json({
        "architecture": "", "created": "0001-01-01T00:00:00Z", "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "", "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(envelope))]}, "config": {},
    })
    body = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": descriptor_json(mediatype.OCI_CONFIG, config),
        "layers": [descriptor_json(DSSE, envelope, annotations={
            "dev.cosignproject.cosign/signature": "", "predicateType": "https://slsa.dev/provenance/v1",
        })],
    }
    top = RawManifest.from_bytes(dump_json(body), mediatype.OCI_MANIFEST)
    return Image(top=top, manifests=[top], blobs={Digest.of(config): config, Digest.of(envelope): envelope})


async def envelope_of(registry: Any, repo: str, layer: dict[str, Any]) -> dict[str, Any]:
    return json.loads(await get_blob(registry, repo, layer["digest"]))


def statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(envelope["payload"]))


def check_envelope(envelope: dict[str, Any], public: PublicKey) -> None:
    """What cosign's verifyOCIAttestation checks: the in-toto payload type and the signature
    over the PAE, with the public key (no keyid filter)."""
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [list(s) for s in envelope["signatures"]] == [["keyid", "sig"]] and envelope["signatures"][0]["keyid"] == ""
    payload = base64.b64decode(envelope["payload"])
    assert public.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae(envelope["payloadType"], payload))


@pytest.fixture
def target(registry_factory: Any) -> RunningRegistry:
    return registry_factory(auth="none")


async def test_sync_signs_each_copy_into_the_att_tag_keeps_upstream_layers_and_a_noop_pushes_nothing(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    app, tool = make_multiarch(seed="attest-app"), make_image(seed="attest-tool")
    await push_image(plain_registry, f"{unique_repo}/app", app, "1.0")
    await push_image(plain_registry, f"{unique_repo}/tool", tool, "2.0")
    theirs = upstream_att(app.digest, seed="app")
    await push_image(plain_registry, f"{unique_repo}/app", theirs, cosign_tag(app.digest, "att"))
    _, public, _ = org_key(tmp_path)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    tags: {{tags: ['1.0']}}\n"
        f"  - source: {plain_registry.host}/{unique_repo}/tool\n    name: tool\n    tags: {{tags: ['2.0']}}\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    done = imagevet("sync", "--json", policy=policy)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"] == {"copy": 2}
    assert summary["requests"]["DELETE manifest"] == 1  # one referrers-API probe per run, not one per image
    assert all("attestation signed (tag sha256-" in a["message"] for a in summary["actions"]), summary["actions"]
    lock_hash = hashlib.sha256((tmp_path / "imagevet.lock").read_bytes()).hexdigest()

    # app: an index; its digest is the subject; the upstream .att layer is kept, ours appended
    att = await manifest_json(target, "acme/app", cosign_tag(app.digest, "att"))
    assert att["layers"][0] == theirs.top.json["layers"][0]
    ours = att["layers"][1]
    assert ours["mediaType"] == DSSE and ours["annotations"] == {
        "dev.cosignproject.cosign/signature": "", "predicateType": OURS,
    }
    assert att["mediaType"] == mediatype.OCI_MANIFEST and att["config"]["mediaType"] == mediatype.OCI_CONFIG
    config = json.loads(await get_blob(target, "acme/app", att["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [theirs.top.json["layers"][0]["digest"], ours["digest"]]
    assert await get_blob(target, "acme/app", theirs.top.json["layers"][0]["digest"]) == theirs.blobs[
        Digest.parse(theirs.top.json["layers"][0]["digest"])]
    envelope = await envelope_of(target, "acme/app", ours)
    check_envelope(envelope, public)
    statement = statement_of(envelope)
    assert statement["_type"] == "https://in-toto.io/Statement/v1" and statement["predicateType"] == OURS
    assert statement["subject"] == [{"name": f"{target.host}/acme/app", "digest": {"sha256": app.digest.hex}}]
    predicate = statement["predicate"]
    assert predicate["source"] == {"reference": f"{plain_registry.host}/{unique_repo}/app:1.0",
                                   "digest": {"sha256": app.digest.hex}}
    assert predicate["entry"] == f"{plain_registry.host}/{unique_repo}/app"
    assert predicate["approval"] == {"by": "security@acme.example", "reason": "vetted for checkout",
                                     "ticket": "SEC-7", "expires": "2099-12-31"}
    assert predicate["lock"] == {"sha256": lock_hash}
    assert predicate["imagevet"]["version"] and predicate["time"].endswith("Z")

    # tool: a plain manifest, no upstream attestation: a new .att with our layer only
    tool_att = await manifest_json(target, "acme/tool", cosign_tag(tool.digest, "att"))
    assert [layer["annotations"]["predicateType"] for layer in tool_att["layers"]] == [OURS]
    tool_statement = statement_of(await envelope_of(target, "acme/tool", tool_att["layers"][0]))
    assert tool_statement["subject"][0]["digest"] == {"sha256": tool.digest.hex}
    assert tool_statement["predicate"]["entry"] == "tool"
    # no referrers API: no referrer manifest is left tagged, no fallback index was written
    assert sorted(await list_tags(target, "acme/tool")) == sorted(["2.0", cosign_tag(tool.digest, "att")])

    async with RegistryClient() as client:
        check = await verify_attestation(client, Reference.parse(f"{target.host}/acme/app:1.0"), public)
    assert check.ok and check.digest == app.digest, check.problems
    assert check.latest is not None and check.latest.predicate.ticket == "SEC-7"
    assert check.latest.where == f"tag {cosign_tag(app.digest, 'att')}"
    assert check.latest.predicate.lock_sha256 == lock_hash

    # a second sync is a no-op: no write at all, the .att is as it was
    again = imagevet("sync", "--json", policy=policy)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["counts"] == {"noop": 2}
    assert not [k for k in second["requests"] if k.split()[0] in ("PUT", "POST", "PATCH", "DELETE")], second["requests"]
    assert await manifest_json(target, "acme/app", cosign_tag(app.digest, "att")) == att


async def test_an_update_signs_the_new_digest_and_the_referrers_api_is_used_where_there_is_one(
    plain_registry: RunningRegistry, fake_registry: Any, unique_repo: str, tmp_path: Path
) -> None:
    first, second = make_multiarch(seed="attest-v1"), make_multiarch(seed="attest-v2")
    await push_image(plain_registry, f"{unique_repo}/web", first, "1")
    _, public, _ = org_key(tmp_path)
    policy = write_policy(tmp_path, fake_registry.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/web\n    name: web\n    mode: follow\n"
        "    tags: {tags: ['1']}\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    done = imagevet("sync", "--json", policy=policy)
    assert done.returncode == 0, done.stderr
    listed = fake_registry.referrers("acme/web", first.digest)
    assert len(listed) == 1 and listed[0]["artifactType"] == "application/vnd.in-toto+json"
    referrer = fake_registry.manifest("acme/web", listed[0]["digest"]).json
    assert referrer["subject"] == {"mediaType": mediatype.OCI_INDEX, "size": first.top.size, "digest": str(first.digest)}
    assert referrer["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert [layer["mediaType"] for layer in referrer["layers"]] == [DSSE]
    envelope = json.loads(fake_registry._blob("acme/web", referrer["layers"][0]["digest"]))
    check_envelope(envelope, public)
    # and the .att tag cosign verify-attestation reads, holding the same envelope
    att = fake_registry.manifest("acme/web", cosign_tag(first.digest, "att")).json
    assert [layer["digest"] for layer in att["layers"]] == [referrer["layers"][0]["digest"]]
    assert att["layers"][0]["annotations"] == {"dev.cosignproject.cosign/signature": "", "predicateType": OURS}

    puts = fake_registry.count("PUT")
    noop = imagevet("sync", "--json", policy=policy)
    assert noop.returncode == 0 and json.loads(noop.stdout)["counts"] == {"noop": 1}
    assert fake_registry.count("PUT") == puts  # nothing pushed, nothing signed again

    await push_image(plain_registry, f"{unique_repo}/web", second, "1")  # upstream moved (follow)
    updated = imagevet("sync", "--json", policy=policy)
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["counts"] == {"update": 1}
    assert len(fake_registry.referrers("acme/web", second.digest)) == 1
    assert len(fake_registry.referrers("acme/web", first.digest)) == 1  # the old one keeps its own

    async with RegistryClient() as client:
        check = await verify_attestation(client, Reference.parse(f"{fake_registry.host}/acme/web:1"), public)
        old = await verify_attestation(client, Reference.parse(f"{fake_registry.host}/acme/web@{first.digest}"), public)
    assert check.ok and check.digest == second.digest
    assert check.latest is not None and check.latest.where == (
        f"referrer {check.latest.referrers[0]}, tag {cosign_tag(second.digest, 'att')}"
    )
    assert check.latest.predicate.source_digest == second.digest
    assert old.ok and old.latest is not None and old.latest.predicate.source_digest == first.digest


async def test_a_platform_subset_signs_the_index_the_mirror_holds(
    plain_registry: RunningRegistry, fake_registry: Any, unique_repo: str, tmp_path: Path
) -> None:
    image = make_multiarch(seed="attest-subset", platforms=("linux/amd64", "linux/arm64", "linux/s390x"))
    await push_image(plain_registry, f"{unique_repo}/sub", image, "1")
    _, public, _ = org_key(tmp_path)
    policy = write_policy(tmp_path, fake_registry.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/sub\n    name: sub\n"
        "    platforms: [linux/amd64, linux/arm64]\n    tags: {tags: ['1']}\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    mirrored = fake_registry.manifest("acme/sub", "1").digest
    assert mirrored != image.digest
    async with RegistryClient() as client:
        check = await verify_attestation(client, Reference.parse(f"{fake_registry.host}/acme/sub:1"), public)
    assert check.ok and check.latest is not None
    assert check.latest.statement.subject_digest == mirrored
    assert check.latest.predicate.source_digest == image.digest


async def test_a_layout_target_holds_the_attestation_as_a_referrer(
    plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    image = make_image(seed="attest-layout")
    await push_image(plain_registry, f"{unique_repo}/lay", image, "3")
    _, public, _ = org_key(tmp_path)
    policy = write_policy(tmp_path, "mirror", (
        f"  - source: {plain_registry.host}/{unique_repo}/lay\n    name: lay\n    tags: {{tags: ['3']}}\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    done = imagevet("sync", "--json", policy=policy)
    assert done.returncode == 0, done.stderr
    message = json.loads(done.stdout)["actions"][0]["message"]
    assert "attestation signed (referrer sha256:" in message and f"tag {cosign_tag(image.digest, 'att')})" in message
    layout = tmp_path / "mirror" / "acme" / "lay"
    store = LayoutStore()
    try:
        check = await verify_attestation(store, Reference.parse(f"oci:{layout}:3"), public)
    finally:
        await store.aclose()
    assert check.ok and check.digest == image.digest, check.problems
    again = imagevet("sync", "--json", policy=policy)
    assert json.loads(again.stdout)["counts"] == {"noop": 1}
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == 3  # the image's tag, one referrer, the .att tag: nothing more


async def test_verify_refuses_a_wrong_key_a_tampered_envelope_and_another_digests_statement(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    one, two = make_image(seed="attest-one"), make_image(seed="attest-two")
    await push_image(plain_registry, f"{unique_repo}/one", one, "1")
    await push_image(plain_registry, f"{unique_repo}/two", two, "1")
    _, public, _ = org_key(tmp_path)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/one\n    name: one\n    tags: {{tags: ['1']}}\n"
        f"  - source: {plain_registry.host}/{unique_repo}/two\n    name: two\n    tags: {{tags: ['1']}}\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    other = load_public_key(
        ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        what="other.pub",
    )
    ref_one = Reference.parse(f"{target.host}/acme/one:1")
    async with RegistryClient() as client:
        wrong = await verify_attestation(client, ref_one, other)
        assert not wrong.ok and "no signature of the DSSE envelope verifies" in " ".join(wrong.problems)

        # two's valid .att (signed by the org, about two's digest) put at one's .att tag
        two_att = await client.get_manifest(Reference.parse(f"{target.host}/acme/two:{cosign_tag(two.digest, 'att')}"))
        for layer in two_att.blobs():
            async with client.open_blob(Reference.parse(f"{target.host}/acme/two"), layer) as stream:
                data = b"".join([c async for c in stream])
            await push_blob_bytes(client, Reference.parse(f"{target.host}/acme/one"), layer, data)
        await client.put_manifest(Reference.parse(f"{target.host}/acme/one:{cosign_tag(one.digest, 'att')}"), two_att)
        moved = await verify_attestation(client, ref_one, public)
        assert not moved.ok and f"not {one.digest}" in " ".join(moved.problems), moved.problems

        # a tampered payload in an otherwise valid envelope
        envelope_desc = two_att.blobs()[-1]
        async with client.open_blob(Reference.parse(f"{target.host}/acme/two"), envelope_desc) as stream:
            envelope = json.loads(b"".join([c async for c in stream]))
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["approval"]["by"] = "mallory@evil.example"
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        forged = json.dumps(envelope).encode()
        doc = dict(two_att.json)
        doc["layers"] = [{**doc["layers"][-1], "digest": str(Digest.of(forged)), "size": len(forged)}]
        forged_att = RawManifest.from_bytes(json.dumps(doc).encode())
        repo_two = Reference.parse(f"{target.host}/acme/two")
        await push_blob_bytes(client, repo_two, Descriptor(DSSE, Digest.of(forged), len(forged)), forged)
        await client.put_manifest(repo_two.with_tag(cosign_tag(two.digest, "att")), forged_att)
        tampered = await verify_attestation(client, Reference.parse(f"{target.host}/acme/two:1"), public)
        assert not tampered.ok and "no signature" in " ".join(tampered.problems)

        missing = await verify_attestation(client, Reference.parse(f"{target.host}/acme/nothing:1"), public)
        assert not missing.ok and "no such image" in missing.problems[0]


async def push_blob_bytes(client: RegistryClient, repo: Reference, desc: Any, data: bytes) -> None:
    async def chunks() -> Any:
        yield data

    if await client.head_blob(repo, desc.digest) is None:
        await client.push_blob(repo, desc, chunks())


def test_a_key_problem_stops_sync_before_anything_is_copied(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    push_image_sync(plain_registry, f"{unique_repo}/k", make_image(seed="attest-key"), "1")
    entries = f"  - source: {plain_registry.host}/{unique_repo}/k\n    name: k\n    tags: {{tags: ['1']}}\n"
    policy = write_policy(tmp_path, target.host, entries)
    assert imagevet("lock", policy=policy).returncode == 0

    missing = imagevet("sync", policy=policy)  # org.key does not exist yet
    assert missing.returncode == 2 and "cannot read the signing key" in missing.stderr
    assert "org.key" in missing.stderr

    _, _, pem = org_key(tmp_path, password=PASSWORD.encode())
    no_password = imagevet("sync", policy=policy)
    assert no_password.returncode == 2 and "encrypted: give its password" in no_password.stderr

    policy = write_policy(tmp_path, target.host, entries, sign="sign:\n  key_env: ORG_KEY\n  password_env: ORG_KEY_PASSWORD\n")
    unset = imagevet("sync", policy=policy, env={"ORG_KEY": pem.decode()})
    assert unset.returncode == 2 and "ORG_KEY_PASSWORD is not set" in unset.stderr
    wrong = imagevet("sync", policy=policy, env={"ORG_KEY": pem.decode(), "ORG_KEY_PASSWORD": "not it"})
    assert wrong.returncode == 2 and "password is wrong" in wrong.stderr
    not_a_key = imagevet("sync", policy=policy, env={"ORG_KEY": "hello", "ORG_KEY_PASSWORD": "x"})
    assert not_a_key.returncode == 2 and "not a PEM key" in not_a_key.stderr
    for run in (missing, no_password, unset, wrong, not_a_key):
        out = run.stdout + run.stderr
        assert "PRIVATE KEY" not in out and PASSWORD not in out and "not it" not in out
        assert pem.decode().splitlines()[1][:20] not in out
    assert list_tags_sync(target, "acme/k") == []  # nothing was copied

    ok = imagevet("sync", policy=policy, env={"ORG_KEY": pem.decode(), "ORG_KEY_PASSWORD": PASSWORD})
    assert ok.returncode == 0, ok.stderr


async def test_a_signing_failure_fails_that_image_only_and_the_copy_stands(
    plain_registry: RunningRegistry, target: RunningRegistry, fault_proxy: Any, unique_repo: str, tmp_path: Path
) -> None:
    good, bad = make_image(seed="attest-good"), make_image(seed="attest-bad")
    await push_image(plain_registry, f"{unique_repo}/good", good, "1")
    await push_image(plain_registry, f"{unique_repo}/bad", bad, "1")
    proxy = fault_proxy(target)
    _, public, _ = org_key(tmp_path)
    policy = write_policy(tmp_path, proxy.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/good\n    name: good\n    tags: {{tags: ['1']}}\n"
        f"  - source: {plain_registry.host}/{unique_repo}/bad\n    name: bad\n    tags: {{tags: ['1']}}\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    proxy.fail(None, 403, method="PUT", path_contains=f"acme/bad/manifests/{cosign_tag(bad.digest, 'att')}",
               code="DENIED", message="no attestations here")
    done = imagevet("sync", "--json", policy=policy)
    assert done.returncode == 1
    actions = {a["target"].rsplit("/", 1)[-1].split(":")[0]: a for a in json.loads(done.stdout)["actions"]}
    assert actions["good"]["status"] == "done" and "attestation signed" in actions["good"]["message"]
    assert actions["bad"]["status"] == "failed"
    assert actions["bad"]["message"].startswith("copied, but not signed: ") and "DENIED" in actions["bad"]["message"]
    assert (await get_manifest_bytes(target, "acme/bad", "1"))[0] == bad.top.data  # the copy stands
    async with RegistryClient() as client:
        assert (await verify_attestation(client, Reference.parse(f"{target.host}/acme/good:1"), public)).ok
        assert not (await verify_attestation(client, Reference.parse(f"{target.host}/acme/bad:1"), public)).ok

    # the next run: both are up to date; the one left unsigned is signed now, the other is not touched
    proxy.clear()
    good_att = await manifest_json(target, "acme/good", cosign_tag(good.digest, "att"))
    again = imagevet("sync", "--json", policy=policy)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["counts"] == {"noop": 2}
    by_name = {a["target"].rsplit("/", 1)[-1].split(":")[0]: a for a in second["actions"]}
    assert "attestation signed (tag sha256-" in by_name["bad"]["message"]
    assert "for the last run's copy" in by_name["bad"]["message"]
    assert "attestation" not in by_name["good"]["message"]
    assert await manifest_json(target, "acme/good", cosign_tag(good.digest, "att")) == good_att
    async with RegistryClient() as client:
        fixed = await verify_attestation(client, Reference.parse(f"{target.host}/acme/bad:1"), public)
    assert fixed.ok and fixed.latest is not None and fixed.latest.predicate.source_digest == bad.digest

    # and a third run is a plain no-op: no write
    third = json.loads(imagevet("sync", "--json", policy=policy).stdout)
    assert not [k for k in third["requests"] if k.split()[0] in ("PUT", "POST", "PATCH", "DELETE")]


async def test_run_sync_signs_with_the_lock_records_and_reports_each_attestation(
    plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    image = make_image(seed="attest-records")
    await push_image(plain_registry, f"{unique_repo}/rec", image, "5")
    private, public, _ = org_key(tmp_path)
    policy_path = write_policy(tmp_path, "mirror", (
        f"  - source: {plain_registry.host}/{unique_repo}/rec\n    name: rec\n    tags: {{tags: ['5']}}\n"
    ), sign="")
    policy = load_policy(policy_path, env={})
    asked: list[tuple[str, str | None]] = []

    def records(entry: str, tag: str | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        asked.append((entry, tag))
        return {"kind": "key", "key_id": "sha256:" + "e" * 64}, {"scanner": "trivy", "counts": {"critical": 0}}

    state = FileStateStore(tmp_path / ".imagevet")
    async with StoreRouter(RegistryClient()) as store:
        resolution = await resolve_lock(store, policy, Lock(), now=datetime.now(UTC))
        write_lock(policy_path.with_suffix(".lock"), resolution.lock)
        lock = read_lock(policy_path.with_suffix(".lock"))
        report = await run_sync(policy, lock, source=store, target=store, state=state,
                                options=RunOptions(sign_key=private), attest_records=records,
                                lock_path=policy_path.with_suffix(".lock"))
        assert report.ok and asked == [("rec", "5")]
        assert [(a.subject, a.status) for a in report.attestations] == [(image.digest, "signed")]
        check = await verify_attestation(store, Reference.parse(f"oci:{tmp_path / 'mirror' / 'acme' / 'rec'}:5"), public)
    assert check.ok and check.latest is not None
    assert check.latest.predicate.signature == {"kind": "key", "key_id": "sha256:" + "e" * 64}
    assert check.latest.predicate.scan == {"scanner": "trivy", "counts": {"critical": 0}}
    assert check.latest.predicate.lock_sha256 == hashlib.sha256(policy_path.with_suffix(".lock").read_bytes()).hexdigest()
    assert state.read_run_summary()["actions"][0]["message"].startswith("attestation signed (referrer sha256:")


async def test_imagevet_verify_checks_a_mirrors_attestation_with_the_org_key(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    """``imagevet verify MIRROR --attestation-key org.pub``: what anyone in the org runs to tell an
    imagevet mirror of a vetted upstream digest from any other push."""
    image, other = make_image(seed="attest-cli"), make_image(seed="attest-cli-unsigned")
    await push_image(plain_registry, f"{unique_repo}/cli", image, "1")
    await push_image(target, "acme/elsewhere", other, "1")  # pushed by someone else: no attestation
    _, public, _ = org_key(tmp_path)
    (tmp_path / "org.pub").write_bytes(public.pem())
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/cli\n    name: cli\n    tags: {{tags: ['1']}}\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "imagevet.cli", "verify", *args],
                              capture_output=True, text=True, timeout=120)

    ok = verify(f"{target.host}/acme/cli:1", "--attestation-key", str(tmp_path / "org.pub"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"mirror of {plain_registry.host}/{unique_repo}/cli:1@{image.digest} (entry cli)" in ok.stdout
    lock_hash = hashlib.sha256(policy.with_suffix(".lock").read_bytes()).hexdigest()
    assert "approved by security@acme.example until 2099-12-31" in ok.stdout and lock_hash in ok.stdout
    shown = json.loads(verify(f"{target.host}/acme/cli:1", "--attestation-key", str(tmp_path / "org.pub"),
                              "--json").stdout)
    assert shown["ok"] and shown["digest"] == str(image.digest)
    assert shown["attestations"][0]["predicate"]["entry"] == "cli"

    stranger = verify(f"{target.host}/acme/elsewhere:1", "--attestation-key", str(tmp_path / "org.pub"))
    assert stranger.returncode == 1 and "no imagevet attestation" in stranger.stderr, stranger.stderr
    (tmp_path / "other").mkdir()
    _, wrong, _ = org_key(tmp_path / "other")
    (tmp_path / "wrong.pub").write_bytes(wrong.pem())
    refused = verify(f"{target.host}/acme/cli:1", "--attestation-key", str(tmp_path / "wrong.pub"))
    assert refused.returncode == 1 and "not attested:" in refused.stderr, refused.stderr
    both = verify(f"{target.host}/acme/cli:1", "--attestation-key", str(tmp_path / "org.pub"),
                  "--key", str(tmp_path / "org.pub"))
    assert both.returncode == 2 and "give it alone" in both.stderr


async def test_watch_signs_what_it_copies_and_refuses_a_bad_key_at_start(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    image = make_image(seed="attest-watch")
    await push_image(plain_registry, f"{unique_repo}/w", image, "1")
    _, public, _ = org_key(tmp_path)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/w\n    name: w\n    tags: {{tags: ['1']}}\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    once = imagevet("watch", "--once", policy=policy)
    assert once.returncode == 0, once.stdout + once.stderr
    async with RegistryClient() as client:
        check = await verify_attestation(client, Reference.parse(f"{target.host}/acme/w:1"), public)
    assert check.ok and check.latest is not None and check.latest.predicate.entry == "w", check.problems
    (tmp_path / "org.key").write_text("not a key\n")
    bad = imagevet("watch", "--once", policy=policy)
    assert bad.returncode == 2 and "sign" in bad.stderr and "not a key" not in bad.stderr, bad.stderr
