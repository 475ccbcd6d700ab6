"""Upstream cosign signatures through a real docker-registry, as a user meets them: ``imagevet
verify``, ``imagevet lock`` recording which signature verified each digest, and ``plan``/``sync``
holding what did not verify (signatures made in cosign's format, tests/fixtures/cosign)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagevet.lock import read_lock
from imagevet.policy.model import EntryKey
from imagevet.reference import Reference
from imagevet.signature.keys import PrivateKey
from tests.fixtures.cosign.signing import generate, layer, sig_image
from tests.integration.test_sync import imagevet, seed, write_policy
from tests.support.images import (
    Image,
    cosign_tag,
    make_image,
    make_multiarch,
    make_referrers_tag_index,
)
from tests.support.pusher import head_manifest, push_image, push_manifest
from tests.support.registry_process import RunningRegistry


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


async def held_by(registry: Any, repo: str, tag: str) -> str | None:
    """The digest ``repo:tag`` holds in ``registry`` (None: no such tag)."""
    r = await head_manifest(registry, repo, tag)
    return r.headers.get("Docker-Content-Digest") if r.status == 200 else None


def key_file(tmp_path: Path, key: PrivateKey, name: str = "cosign.pub") -> Path:
    path = tmp_path / name
    path.write_bytes(key.public.pem())
    return path


async def sign(registry: Any, repo: str, image: Image, key: PrivateKey, *, referrer: bool = False) -> Image:
    """Push a cosign signature of ``image``: at its ``.sig`` tag, or as an OCI 1.1 referrer
    (with the referrers tag index, as cosign does on a registry without the API)."""
    if not referrer:
        sig = sig_image([layer(key, image.digest, reference=f"{repo}")])
        await push_image(registry, repo, sig, cosign_tag(image.digest))
        return sig
    sig = sig_image([layer(key, image.digest, reference=f"{repo}")], subject=image.top)
    await push_image(registry, repo, sig)
    await push_manifest(registry, repo, make_referrers_tag_index([sig]), f"{image.digest.algorithm}-{image.digest.hex}")
    return sig


# ---- imagevet verify ------------------------------------------------------------------------------


async def test_verify_exit_codes_and_output(plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path) -> None:
    key, stranger = generate(), generate("ed25519")
    signed, unsigned = make_multiarch(seed="v-signed"), make_image(seed="v-unsigned")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1": signed, "2": unsigned})
    sig = await sign(plain_registry, repo, signed, key)
    pub = key_file(tmp_path, key)
    ref = f"{plain_registry.host}/{repo}"

    ok = cli("verify", f"{ref}:1", "--key", str(pub))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"verified: {ref}@{signed.digest}" in ok.stdout
    assert f"signature {sig.digest} (tag {cosign_tag(signed.digest)})" in ok.stdout
    assert f"key {key.public.key_id}" in ok.stdout

    as_json = json.loads(cli("verify", f"{ref}@{signed.digest}", "--key-env", "UP_PUB", "--json",
                             env={"UP_PUB": key.public.pem().decode()}).stdout)
    assert as_json["verified"] is True and as_json["signature"] == str(sig.digest)
    assert as_json["key"] == key.public.key_id and as_json["digest"] == str(signed.digest)

    none = cli("verify", f"{ref}:2", "--key", str(pub))
    assert none.returncode == 1 and "no cosign signature" in none.stderr, none.stderr
    other = cli("verify", f"{ref}:1", "--key", str(key_file(tmp_path, stranger, "other.pub")))
    assert other.returncode == 1 and "does not verify with the key" in other.stderr, other.stderr
    assert stranger.public.key_id in other.stderr

    for args, message in [
        ((f"{ref}:1",), "give --key FILE"),
        ((f"{ref}:1", "--key", str(pub), "--key-env", "X"), "not both"),
        (("not a reference!", "--key", str(pub)), "invalid"),
        ((f"{ref}:1", "--key", str(tmp_path / "missing.pub")), "cannot read it"),
        ((f"{ref}:1", "--key-env", "IMAGEVET_TEST_UNSET_VAR"), "not set"),
    ]:
        bad = cli("verify", *args)
        assert bad.returncode == 2, (args, bad.stdout + bad.stderr)
        assert message in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    bad_key = cli("verify", f"{ref}:1", "--key", str(garbage))
    assert bad_key.returncode == 2 and "not a PEM public key" in bad_key.stderr


async def test_verify_with_the_policy_rule_and_a_signature_found_by_referrers(
    plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    key = generate("rsa")
    image = make_image(seed="by-referrer")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1": image})
    sig = await sign(plain_registry, repo, image, key, referrer=True)
    (tmp_path / "keys").mkdir()
    key_file(tmp_path / "keys", key)
    policy = write_policy(tmp_path, plain_registry.host, (
        f"  - source: {plain_registry.host}/{repo}\n    tags: {{tags: ['1']}}\n"
    ), defaults="  verify: {key: keys/cosign.pub}\n")

    out = cli("verify", f"{plain_registry.host}/{repo}:1", "-p", str(policy))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"signature {sig.digest} (referrer)" in out.stdout
    mirror = cli("verify", f"{plain_registry.host}/acme/app:1", "-p", str(policy))  # the entry's target
    assert mirror.returncode == 1 and "no such image" in mirror.stderr
    stray = cli("verify", f"{plain_registry.host}/{unique_repo}/other:1", "-p", str(policy))
    assert stray.returncode == 2 and "no entry" in stray.stderr


async def test_verify_an_oci_layout(plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path) -> None:
    key = generate()
    image = make_image(seed="to-layout")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1": image})
    await sign(plain_registry, repo, image, key)
    layout = tmp_path / "mirror"
    copied = cli("copy", f"{plain_registry.host}/{repo}:1", f"oci:{layout}:1")
    assert copied.returncode == 0, copied.stderr
    out = cli("verify", f"oci:{layout}:1", "--key", str(key_file(tmp_path, key)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"key {key.public.key_id}" in out.stdout


async def test_thousands_of_signature_referrers_are_bounded_and_one_by_the_api_verifies(
    fake_registry: Any, tmp_path: Path
) -> None:
    """A registry with the referrers API, listing 3000 bogus signature referrers of the image
    (their payload blobs absent) and the real one last: at most 16 manifests and their payloads
    are read, and the real one is not reached; alone, it verifies through the API."""
    key, stranger = generate(), generate()
    image = make_image(seed="crowded")
    fake_registry.seed("up/app", image, "1")
    for i in range(3000):
        bogus = sig_image([layer(stranger, image.digest, reference=f"r/{i}")], subject=image.top)
        fake_registry.put_manifest("up/app", bogus.top)
    pub = str(key_file(tmp_path, key))
    ref = f"{fake_registry.host}/up/app:1"
    fake_registry.requests.clear()
    out = cli("verify", ref, "--key", pub, "--json")
    assert out.returncode == 1, out.stderr
    result = json.loads(out.stdout)
    assert result["verified"] is False and result["examined"] <= 16
    assert any("more signature referrers not examined" in r for r in result["reasons"]), result["reasons"]
    gets = [r for r in fake_registry.requests if r.method == "GET"]
    assert len(gets) <= 2 + 16 + 16, len(gets)

    other = make_image(seed="alone")
    fake_registry.seed("up/app", other, "2")
    real = sig_image([layer(key, other.digest)], subject=other.top)
    fake_registry.seed("up/app", real)
    ok = cli("verify", f"{fake_registry.host}/up/app:2", "--key", pub)
    assert ok.returncode == 0 and f"signature {real.digest} (referrer)" in ok.stdout, ok.stdout + ok.stderr


# ---- lock, plan, sync ---------------------------------------------------------------------------


def _lock_image(policy: Path, source: str, target: str, tag: str) -> Any:
    return read_lock(policy.with_suffix(".lock")).image(
        EntryKey(Reference.parse(source), Reference.parse(target)), tag)


async def test_pinned_lock_records_the_signature_and_holds_an_unsigned_repoint(
    plain_registry: RunningRegistry, registry_factory: Any, fault_proxy: Any, unique_repo: str, tmp_path: Path
) -> None:
    target: RunningRegistry = registry_factory(auth="none")
    key = generate()
    v1, v2 = make_multiarch(seed="pin-v1"), make_multiarch(seed="pin-v2")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1": v1})
    sig1 = await sign(plain_registry, repo, v1, key)
    source = fault_proxy(plain_registry)
    key_file(tmp_path, key)
    src = f"{source.host}/{repo}"
    policy = write_policy(tmp_path, target.host, f"  - source: {src}\n    tags: {{tags: ['1']}}\n",
                          defaults="  verify: {key: cosign.pub}\n")

    locked = imagevet("lock", policy=policy)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    record = _lock_image(policy, src, f"{target.host}/acme/app", "1")
    assert record.digest == v1.digest and record.verified is not None
    assert record.verified.signature == sig1.digest and record.verified.key == key.public.key_id
    text = policy.with_suffix(".lock").read_text()
    assert f'signature: "{sig1.digest}"' in text and f'key: "{key.public.key_id}"' in text

    source.requests.clear()
    again = imagevet("lock", policy=policy)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr
    assert policy.with_suffix(".lock").read_text() == text
    paths = [r.path for r in source.requests]
    assert not [p for p in paths if ".sig" in p or "/blobs/" in p or "/referrers/" in p], paths

    synced = imagevet("sync", policy=policy)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert await held_by(target, "acme/app", "1") == str(v1.digest)

    await seed(plain_registry, repo, {"1": v2})  # re-pointed upstream, unsigned
    held = imagevet("lock", policy=policy)
    assert held.returncode == 1, held.stdout + held.stderr
    assert "held:" in held.stderr and "not verified: no cosign signature" in held.stderr
    assert f"the lock keeps {v1.digest.algorithm}:{v1.digest.hex[:12]}" in held.stderr
    assert "up to date" not in held.stdout and "1 digest held, not verified" in held.stdout, held.stdout
    assert _lock_image(policy, src, f"{target.host}/acme/app", "1").digest == v1.digest
    plan = imagevet("plan", policy=policy)
    assert plan.returncode == 0 and "hold" in plan.stdout and "upstream moved" in plan.stdout, plan.stdout
    resync = imagevet("sync", policy=policy)
    assert resync.returncode == 0, resync.stdout + resync.stderr
    assert await held_by(target, "acme/app", "1") == str(v1.digest)

    sig2 = await sign(plain_registry, repo, v2, key)  # now signed: the lock takes it
    taken = imagevet("lock", policy=policy)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    record = _lock_image(policy, src, f"{target.host}/acme/app", "1")
    assert record.digest == v2.digest and record.verified is not None and record.verified.signature == sig2.digest


async def test_pinned_records_without_verified_are_held_until_locked(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    target: RunningRegistry = registry_factory(auth="none")
    key = generate("ed25519")
    v1 = make_image(seed="late-rule")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1": v1})
    entries = f"  - source: {plain_registry.host}/{repo}\n    tags: {{tags: ['1']}}\n"
    policy = write_policy(tmp_path, target.host, entries)
    assert imagevet("lock", policy=policy).returncode == 0  # no rule yet: no verified record

    key_file(tmp_path, key)
    policy = write_policy(tmp_path, target.host, entries, defaults="  verify: {key: cosign.pub}\n")
    plan = imagevet("plan", policy=policy)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "hold" in plan.stdout and "run `imagevet lock`" in plan.stdout, plan.stdout
    synced = imagevet("sync", policy=policy)
    assert synced.returncode == 0 and "1 hold" in synced.stdout, synced.stdout + synced.stderr
    assert await held_by(target, "acme/app", "1") is None

    unsigned = imagevet("lock", policy=policy)
    assert unsigned.returncode == 1 and "no cosign signature" in unsigned.stderr
    await sign(plain_registry, repo, v1, key)
    signed = imagevet("lock", policy=policy)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert "verified:" in policy.with_suffix(".lock").read_text()
    copied = imagevet("sync", policy=policy)
    assert copied.returncode == 0 and "1 copy" in copied.stdout, copied.stdout + copied.stderr


async def test_follow_holds_an_unsigned_move_and_keeps_the_old_digest_mirrored(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    target: RunningRegistry = registry_factory(auth="none")
    key = generate("p384")
    v1, v2 = make_image(seed="follow-v1"), make_image(seed="follow-v2")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1": v1})
    sig1 = await sign(plain_registry, repo, v1, key, referrer=True)
    key_file(tmp_path, key)
    src = f"{plain_registry.host}/{repo}"
    policy = write_policy(tmp_path, target.host, f"  - source: {src}\n    mode: follow\n    tags: {{tags: ['1']}}\n",
                          defaults="  verify: {key: cosign.pub}\n")

    first = imagevet("sync", policy=policy)
    assert first.returncode == 0 and "1 copy" in first.stdout, first.stdout + first.stderr
    record = _lock_image(policy, src, f"{target.host}/acme/app", "1")
    assert record is not None and record.verified is not None and record.verified.signature == sig1.digest

    await seed(plain_registry, repo, {"1": v2})
    plan = imagevet("plan", policy=policy)
    assert "hold" in plan.stdout and "not verified: no cosign signature" in plan.stdout, plan.stdout
    moved = imagevet("sync", policy=policy)
    assert moved.returncode == 0 and "1 hold" in moved.stdout, moved.stdout + moved.stderr
    assert await held_by(target, "acme/app", "1") == str(v1.digest)
    assert _lock_image(policy, src, f"{target.host}/acme/app", "1").digest == v1.digest

    await sign(plain_registry, repo, v2, key)
    updated = imagevet("sync", policy=policy)
    assert updated.returncode == 0 and "1 update" in updated.stdout, updated.stdout + updated.stderr
    assert await held_by(target, "acme/app", "1") == str(v2.digest)
    record = _lock_image(policy, src, f"{target.host}/acme/app", "1")
    assert record.digest == v2.digest and record.verified is not None


@pytest.mark.parametrize("where", ["key", "key_env"])
async def test_an_unreadable_key_stops_lock_plan_and_sync_at_its_policy_line(
    where: str, tmp_path: Path
) -> None:
    rule = "  verify: {key: missing.pub}\n" if where == "key" else "  verify: {key_env: IMAGEVET_TEST_UNSET_VAR}\n"
    policy = write_policy(tmp_path, "127.0.0.1:9", "  - source: 127.0.0.1:9/up/app\n    tags: {tags: ['1']}\n",
                          defaults=rule)
    for command in ("lock", "plan", "sync"):
        out = imagevet(command, policy=policy)
        assert out.returncode == 2, (command, out.stdout + out.stderr)
        assert f"{policy}:9:" in out.stderr and ("cannot read it" in out.stderr or "not set" in out.stderr), out.stderr


async def test_watch_verifies_as_sync_does(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    """``imagevet watch`` passes the policy's verify: keys to each run: a signed image is copied,
    an unsigned move is held; a key that cannot be read stops it at start (exit 2)."""
    target: RunningRegistry = registry_factory(auth="none")
    key = generate("p256")
    v1, v2 = make_image(seed="watch-v1"), make_image(seed="watch-v2")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1": v1})
    await sign(plain_registry, repo, v1, key)
    key_file(tmp_path, key)
    src = f"{plain_registry.host}/{repo}"
    policy = write_policy(tmp_path, target.host, f"  - source: {src}\n    mode: follow\n    tags: {{tags: ['1']}}\n",
                          defaults="  verify: {key: cosign.pub}\n")
    first = imagevet("watch", "--once", policy=policy)
    assert first.returncode == 0 and "1 copy" in first.stdout + first.stderr, first.stdout + first.stderr
    assert await held_by(target, "acme/app", "1") == str(v1.digest)

    await seed(plain_registry, repo, {"1": v2})  # unsigned
    moved = imagevet("watch", "--once", policy=policy)
    assert moved.returncode == 0 and "1 hold" in moved.stdout + moved.stderr, moved.stdout + moved.stderr
    assert await held_by(target, "acme/app", "1") == str(v1.digest)

    (tmp_path / "cosign.pub").unlink()
    gone = imagevet("watch", "--once", policy=policy)
    assert gone.returncode == 2 and "cannot read it" in gone.stderr, gone.stdout + gone.stderr
