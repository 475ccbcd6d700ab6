"""The policy's ``audit`` section: where the checkpoint goes and the public key that checks it."""

from __future__ import annotations

import pytest

from imagevet.checkpoint import Verifier, generate_key
from imagevet.policy import PolicyErrors, parse_policy
from imagevet.reference import Reference

BASE = (
    "version: 1\ntarget:\n  registry: registry.example.com\n  namespace: acme\n"
    "images:\n  - source: bitnami/redis\n    tags: {tags: ['7.4']}\n    approval: {approved_by: sec}\n"
)


def test_the_default_checkpoint_repository_is_in_the_target_namespace() -> None:
    policy = parse_policy(BASE, env={})
    assert policy.checkpoint_ref == Reference("registry.example.com", "acme/imagevet-audit", "checkpoint")
    assert policy.audit.public_key is None


def test_checkpoint_and_public_key() -> None:
    public = str(generate_key("acme-ledger").verifier)
    policy = parse_policy(
        BASE + f"audit:\n  checkpoint: registry.example.com/security/ledger\n  public_key: {public}\n", env={}
    )
    assert policy.checkpoint_ref == Reference("registry.example.com", "security/ledger", "checkpoint")
    assert policy.audit.public_key is not None
    assert Verifier.parse(policy.audit.public_key) == Verifier.parse(public)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("audit:\n  public_key: not-a-key\n", "invalid public key"),
        ("audit:\n  checkpoint: 'registry.example.com/acme/x@sha256:" + "a" * 64 + "'\n", "not a digest"),
        ("audit:\n  private_key: PRIVATE+KEY+x+00000000+AQ==\n", "looks like a secret"),
        ("audit:\n  checkpiont: registry.example.com/acme/x\n", "did you mean 'checkpoint'"),
    ],
)
def test_mistakes_are_reported_with_their_location(section: str, message: str) -> None:
    with pytest.raises(PolicyErrors) as caught:
        parse_policy(BASE + section, env={})
    text = str(caught.value)
    assert message in text and "imagevet.yaml:" in text
