"""The lock's ``evidence`` line and the evidence files beside it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.engine.evidence import (
    evidence_dir,
    lock_evidence,
    prune_evidence,
    read_evidence,
    write_evidence,
)
from imagevet.errors import EvidenceError, StateError
from imagevet.evidence import Evidence, EvidenceItem
from imagevet.lock import Lock, LockedImage, LockEntry, diff_locks, parse_lock, render_lock
from imagevet.mediatype import OCI_INDEX
from imagevet.reference import Reference

T0 = datetime(2026, 5, 1, tzinfo=UTC)
A, E1, E2 = (Digest.of(x) for x in (b"a", b"e1", b"e2"))
KEY = (Reference.parse("bitnami/redis"), Reference.parse("docker.io/acme/redis"))


def lock_with(evidence: Digest | None) -> Lock:
    image = LockedImage(A, OCI_INDEX, T0, ("linux/amd64",), (E1,), evidence=evidence)
    return Lock((LockEntry(*KEY, tags={"7.2.4": image}, digests={A: image}),))


def test_a_record_without_evidence_renders_as_before() -> None:
    text = render_lock(lock_with(None))
    assert "evidence" not in text
    assert text == render_lock(parse_lock(text))


def test_the_evidence_line_round_trips_after_referrers() -> None:
    text = render_lock(lock_with(E2))
    assert f'        referrers:\n          - "{E1}"\n        evidence: "{E2}"\n        resolved_at:' in text
    assert parse_lock(text) == lock_with(E2)
    with_located = text.replace("version: 1\n", "version: 1  # a comment the fast reader refuses\n")
    assert parse_lock(with_located) == lock_with(E2)
    bad = parse_lock(text.replace(f'evidence: "{E2}"', 'evidence: "sha256:nope"', 1))
    assert bad.unreadable and "evidence" in str(bad.unreadable[0].errors[0])


def test_new_evidence_for_the_same_digest_is_a_lock_change() -> None:
    diff = diff_locks(lock_with(E1), lock_with(E2))
    assert [c.name for c in diff.evidence_changed] == ["7.2.4", f"@{A}"]
    assert diff.has_changes and not diff.unchanged
    assert "  ! 7.2.4  sha256:" in diff.render() and "2 with new evidence" in diff.render()
    assert diff.to_json()["evidence_changed"][0]["tag"] == "7.2.4"
    assert not diff_locks(lock_with(E1), lock_with(E1)).has_changes


def evidence(n: int) -> Evidence:
    return Evidence(A, (EvidenceItem("sbom", "application/spdx+json", Digest.of(str(n).encode()), "referrer"),))


def test_files_are_named_by_their_digest_read_back_and_pruned(tmp_path: Path) -> None:
    directory = evidence_dir(tmp_path / "prod.lock")
    assert directory == tmp_path / "prod.evidence"
    one, two = evidence(1), evidence(2)
    assert write_evidence(directory, one.to_bytes()) == one.digest
    assert write_evidence(directory, two.to_bytes()) == two.digest
    assert read_evidence(directory, one.digest) == one
    (directory / "README").write_text("mine")
    removed = prune_evidence(directory, {two.digest})
    assert [p.name for p in removed] == [f"sha256-{one.digest.hex}.json"]
    assert sorted(p.name for p in directory.iterdir()) == ["README", f"sha256-{two.digest.hex}.json"]
    with pytest.raises(EvidenceError, match="missing"):
        read_evidence(directory, one.digest)


def test_a_symlinked_file_is_refused_not_followed(tmp_path: Path) -> None:
    directory = tmp_path / "imagevet.evidence"
    directory.mkdir()
    one = evidence(1)
    outside = tmp_path / "outside.json"
    outside.write_bytes(one.to_bytes())
    os.symlink(outside, directory / f"sha256-{one.digest.hex}.json")
    with pytest.raises(EvidenceError):
        read_evidence(directory, one.digest)
    with pytest.raises(StateError):
        write_evidence(directory, one.to_bytes())
    assert outside.read_bytes() == one.to_bytes()


def test_lock_evidence_counts_unreadable_entries_too() -> None:
    text = render_lock(lock_with(E2)).replace('media_type: "application', 'media_type: "not a type', 1)
    damaged = parse_lock(text)
    assert damaged.unreadable and not damaged.entries
    assert lock_evidence(damaged) == {E2}
    assert lock_evidence(lock_with(E1)) == {E1}
