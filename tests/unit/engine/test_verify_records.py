"""The ``verify:`` policy section and the lock's ``verified`` record: parsed at file:line:col,
written only when present (other policies and locks read and render exactly as before)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.lock import (
    Lock,
    LockedImage,
    LockEntry,
    LockRecordError,
    Verified,
    diff_locks,
    parse_lock,
    render_lock,
)
from imagevet.mediatype import OCI_INDEX
from imagevet.policy import parse_policy
from imagevet.policy.located import PolicyErrors
from imagevet.policy.model import KeySource
from imagevet.reference import Reference

POLICY = """\
version: 1
target: {registry: registry.example.com, namespace: acme}
defaults:
  approval: {approved_by: alice}
%s
images:
  - source: example.org/up/app
    tags: {tags: ["1"]}
  - source: example.org/up/db
    tags: {tags: ["1"]}
%s
"""


def policy(defaults: str = "", entry: str = "", path: str = "/srv/policies/imagevet.yaml"):  # type: ignore[no-untyped-def]
    return parse_policy(POLICY % (defaults, entry), path=path, env={})


def test_defaults_verify_applies_to_every_entry_and_an_entry_replaces_it() -> None:
    p = policy("  verify: {key: keys/cosign.pub}", "    verify:\n      key_env: DB_COSIGN_PUB")
    app, db = p.entries
    assert app.verify is not None and db.verify is not None
    assert app.verify.keys == (KeySource(path=os.path.normpath("/srv/policies/keys/cosign.pub")),)
    assert str(app.verify.keys[0].location) == "/srv/policies/imagevet.yaml:5:17"
    assert db.verify.keys == (KeySource(env="DB_COSIGN_PUB"),)
    assert str(db.verify.keys[0].location) == "/srv/policies/imagevet.yaml:12:16"


def test_an_absolute_key_path_stays_and_no_verify_is_none() -> None:
    p = policy("", "    verify: {key: /etc/keys/up.pub}")
    app, db = p.entries
    assert app.verify is None
    assert db.verify is not None and db.verify.keys[0].path == "/etc/keys/up.pub"


@pytest.mark.parametrize(("entry", "where", "message"), [
    ("    verify: {key: a.pub, key_env: B}", "11:13", "give exactly one of key"),
    ("    verify: {}", "11:13", "give exactly one of key"),
    ("    verify: {key_env: 1BAD}", "11:23", "expected the name of an environment variable"),
    ("    verify: {identity: me@example.org}", "11:13", "exactly one of issuer or issuer_regexp"),
    ("    verify: {key: ' a.pub'}", "11:19", "invalid key file"),
    ("    verify: keys/cosign.pub", "11:13", "verify"),
])
def test_verify_errors_are_reported_at_their_position(entry: str, where: str, message: str) -> None:
    with pytest.raises(PolicyErrors) as e:
        policy("", entry, path="imagevet.yaml")
    text = str(e.value)
    assert f"imagevet.yaml:{where}" in text and message in text, text


def test_a_pem_in_the_policy_is_refused_as_a_secret() -> None:
    with pytest.raises(PolicyErrors, match="looks like a private key"):
        policy("", '    verify: {key: "-----BEGIN EC PRIVATE KEY-----"}')


NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
SIG = Digest.of(b"signature manifest")
KEY = "sha256:" + "ab" * 32


def _lock(verified: Verified | None) -> Lock:
    image = LockedImage(Digest.of(b"index"), OCI_INDEX, NOW, ("linux/amd64",), (),
                        (("linux/amd64", Digest.of(b"amd64")),), verified=verified)
    return Lock((LockEntry(Reference.parse("example.org/up/app"), Reference.parse("registry.example.com/acme/app"),
                           tags={"1": image}),))


def test_the_verified_record_is_written_and_read_back() -> None:
    lock = _lock(Verified(SIG, KEY))
    text = render_lock(lock)
    assert (
        '        verified:\n'
        f'          signature: "{SIG}"\n'
        f'          key: "{KEY}"\n'
        '        resolved_at: "2026-05-01T10:00:00Z"\n'
    ) in text
    assert parse_lock(text) == lock
    # through the located loader too (a comment makes it non-canonical)
    assert parse_lock(text.replace("version: 1\n", "version: 1  # hand edit\n")) == lock


def test_a_lock_without_verify_renders_as_before() -> None:
    text = render_lock(_lock(None))
    assert "verified" not in text
    assert parse_lock(text) == _lock(None)


def test_a_bad_verified_record_is_an_error_of_its_entry_at_its_line() -> None:
    text = render_lock(_lock(Verified(SIG, KEY))).replace(KEY, "sha256:nothex")
    lock = parse_lock(text, path="imagevet.lock")
    assert not lock.entries
    (bad,) = lock.unreadable
    assert any("verified.key" in str(e) and "imagevet.lock:" in str(e) for e in bad.errors), bad.errors
    with pytest.raises(LockRecordError):
        Verified(SIG, "sha256:nothex")


def test_gaining_a_verified_record_is_written_but_not_a_change() -> None:
    diff = diff_locks(_lock(None), _lock(Verified(SIG, KEY)))
    assert not diff.has_changes and diff.needs_write and len(diff.verified) == 1
    assert not diff_locks(_lock(Verified(SIG, KEY)), _lock(Verified(SIG, KEY))).needs_write


def test_paths_in_examples_are_untouched(tmp_path: Path) -> None:
    """A policy without verify: loads entries with verify None (the default)."""
    examples = Path(__file__).resolve().parents[3] / "examples" / "imagevet.yaml"
    from imagevet.policy import load_policy

    loaded = load_policy(examples, env={"IMAGEVET_ORG": "acme"})
    assert all(e.verify is None for e in loaded.entries)
