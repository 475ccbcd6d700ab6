"""Keyless (Sigstore) signatures through the whole path: a ``verify:`` rule naming an identity
and issuer, a cosign keyless ``.sig`` (Fulcio-style certificate with its SCT, chain and Rekor
bundle annotations, made by a private Sigstore in the tests) pushed to a real registry;
``imagevet lock`` records who signed, another identity is held, and ``imagevet verify`` says the
same.  Offline: the trust root is a file the test writes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from imagevet.lock import read_lock
from imagevet.policy.model import EntryKey
from imagevet.reference import Reference
from imagevet.signature.cosign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SIGNATURE_ANNOTATION,
    make_payload,
)
from tests.fixtures.cosign.signing import sig_image
from tests.integration.test_sync import imagevet, seed, write_policy
from tests.integration.test_verify import cli, held_by
from tests.support.images import Image, cosign_tag, make_image
from tests.support.pusher import push_image
from tests.support.registry_process import RunningRegistry
from tests.unit.signature.test_keyless import legacy
from tests.unit.signature.test_keyless_world import ISSUER, SUBJECT, World

WORLD = World()


async def sign_keyless(registry: Any, repo: str, image: Image, *, subject: str = SUBJECT) -> Image:
    """A cosign keyless signature of ``image`` at its ``.sig`` tag, annotated as cosign writes it."""
    payload = make_payload(f"{registry.host}/{repo}", image.digest)
    args = legacy(WORLD, WORLD.leaf(subject=subject), signed_payload=payload)
    annotations = {
        SIGNATURE_ANNOTATION: base64.b64encode(args["signature"]).decode(),
        CERTIFICATE_ANNOTATION: args["certificate_pem"].decode(),
        CHAIN_ANNOTATION: args["chain_pem"].decode(),
        BUNDLE_ANNOTATION: args["rekor"].decode(),
    }
    sig = sig_image([(payload, annotations)])
    await push_image(registry, repo, sig, cosign_tag(image.digest))
    return sig


async def test_a_keyless_rule_locks_who_signed_and_holds_another_identity(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    target: RunningRegistry = registry_factory(auth="none")
    (tmp_path / "trusted_root.json").write_bytes(WORLD.trusted_root())
    v1, v2 = make_image(seed="keyless-v1"), make_image(seed="keyless-v2")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1": v1})
    sig1 = await sign_keyless(plain_registry, repo, v1)
    src = f"{plain_registry.host}/{repo}"
    policy = write_policy(
        tmp_path, target.host, f"  - source: {src}\n    tags: {{tags: ['1']}}\n",
        defaults=f"  verify: {{identity: {SUBJECT}, issuer: '{ISSUER}', trust_root: trusted_root.json}}\n",
    )
    locked = imagevet("lock", policy=policy)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    key = EntryKey(Reference.parse(src), Reference.parse(f"{target.host}/acme/app"))
    record = read_lock(policy.with_suffix(".lock")).image(key, "1")
    assert record is not None and record.verified is not None
    assert (record.verified.signature, record.verified.identity, record.verified.issuer, record.verified.key) == (
        sig1.digest, SUBJECT, ISSUER, None
    )
    text = policy.with_suffix(".lock").read_text()
    assert f'          identity: "{SUBJECT}"\n          issuer: "{ISSUER}"\n' in text
    synced = imagevet("sync", policy=policy)
    assert synced.returncode == 0 and "1 copy" in synced.stdout, synced.stdout + synced.stderr
    again = imagevet("lock", policy=policy)  # verified under the same rule: not verified again
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr

    await seed(plain_registry, repo, {"1": v2})  # re-pointed, signed by someone else
    await sign_keyless(plain_registry, repo, v2, subject="mallory@example.org")
    moved = imagevet("lock", policy=policy)
    assert moved.returncode == 1, moved.stdout + moved.stderr
    assert "held:" in moved.stderr and "mallory@example.org" in moved.stderr, moved.stderr
    assert read_lock(policy.with_suffix(".lock")).image(key, "1").digest == v1.digest
    assert await held_by(target, "acme/app", "1") == str(v1.digest)

    ok = cli("verify", f"{src}@{v1.digest}", "--identity", SUBJECT, "--issuer", ISSUER,
             "--trust-root", str(tmp_path / "trusted_root.json"), "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    shown = json.loads(ok.stdout)
    assert (shown["verified"], shown["identity"], shown["issuer"], shown["key"]) == (True, SUBJECT, ISSUER, None)
    no = cli("verify", f"{src}:1", "--identity-regexp", ".*@example[.]org", "--issuer", "https://other.example",
             "--trust-root", str(tmp_path / "trusted_root.json"))
    assert no.returncode == 1 and "other.example" in no.stderr, no.stdout + no.stderr
    # the public-good root does not know this private Sigstore's CA
    public = cli("verify", f"{src}@{v1.digest}", "--identity", SUBJECT, "--issuer", ISSUER)
    assert public.returncode == 1, public.stdout + public.stderr


def test_a_keyless_rule_is_all_or_nothing_in_the_policy(tmp_path: Path) -> None:
    for rule, message in (
        ("{identity: a@b.c}", "exactly one of issuer or issuer_regexp"),
        ("{identity: a@b.c, identity_regexp: '.*', issuer: x}", "exactly one of identity or identity_regexp"),
        ("{key: k.pub, identity: a@b.c, issuer: x}", "not both"),
        ("{identity_regexp: '(', issuer: x}", "invalid regular expression"),
    ):
        policy = write_policy(tmp_path, "127.0.0.1:9", "  - source: 127.0.0.1:9/up/app\n    tags: {tags: ['1']}\n",
                              defaults=f"  verify: {rule}\n")
        out = imagevet("validate", policy=policy)
        assert out.returncode == 2 and message in out.stdout + out.stderr, (rule, out.stdout + out.stderr)
    missing = write_policy(tmp_path, "127.0.0.1:9", "  - source: 127.0.0.1:9/up/app\n    tags: {tags: ['1']}\n",
                           defaults="  verify: {identity: a@b.c, issuer: x, trust_root: nowhere.json}\n")
    out = imagevet("lock", policy=missing)
    assert out.returncode == 2 and "verify.trust_root" in out.stderr and "cannot read it" in out.stderr, out.stderr
