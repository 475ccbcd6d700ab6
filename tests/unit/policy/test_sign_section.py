"""The policy's ``sign`` section: where the organization's signing key comes from (never the key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagevet.policy import PolicyErrors, load_policy, parse_policy
from imagevet.policy.model import Sign

BASE = (
    "version: 1\ntarget:\n  registry: registry.example.com\n  namespace: acme\n"
    "images:\n  - source: bitnami/redis\n    tags: {tags: ['7.4']}\n    approval: {approved_by: sec}\n"
)


def test_without_a_sign_section_nothing_is_signed() -> None:
    assert parse_policy(BASE, env={}).sign is None


def test_a_key_file_is_relative_to_the_policy_file(tmp_path: Path) -> None:
    (tmp_path / "imagevet.yaml").write_text(BASE + "sign:\n  key: keys/org.key\n  password_env: ORG_KEY_PASSWORD\n")
    policy = load_policy(tmp_path / "imagevet.yaml", env={})
    assert policy.sign == Sign(key_file=tmp_path / "keys" / "org.key", password_env="ORG_KEY_PASSWORD")


def test_a_key_from_the_environment() -> None:
    policy = parse_policy(BASE + "sign: {key_env: IMAGEVET_SIGN_KEY}\n", env={})
    assert policy.sign == Sign(key_env="IMAGEVET_SIGN_KEY")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("sign: {}\n", "exactly one of key"),
        ("sign: {key: org.key, key_env: ORG_KEY}\n", "exactly one of key"),
        ("sign: {key_env: 'not a name'}\n", "expected the name of an environment variable"),
        ("sign: {key: org.key, password_env: '$X'}\n", "expected the name of an environment variable"),
        ("sign: {key: org.key, password: hunter22}\n", "looks like a secret"),
        ("sign: {key: '-----BEGIN PRIVATE KEY-----'}\n", "looks like a private key"),
        ("sign: {kye: org.key}\n", "kye"),
        ("sign: org.key\n", "sign"),
    ],
)
def test_mistakes_are_reported_with_their_place(section: str, message: str) -> None:
    with pytest.raises(PolicyErrors) as info:
        parse_policy(BASE + section, env={})
    text = str(info.value)
    assert message in text and "imagevet.yaml:9:" in text, text
