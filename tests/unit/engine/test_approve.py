"""The lock's per-tag approval record, and ``engine.approve``'s pure parts (no registry)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.lock import (
    Lock,
    LockedImage,
    LockEntry,
    LockRecordError,
    TagApproval,
    carry_resolved_at,
    parse_lock,
    read_lock,
    render_lock,
)
from imagevet.mediatype import OCI_MANIFEST
from imagevet.reference import Reference

T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 5, 2, 9, 0, 0, tzinfo=UTC)
D1, D2 = Digest.of(b"one"), Digest.of(b"two")


def entry(tags: dict[str, LockedImage]) -> LockEntry:
    return LockEntry(Reference.parse("registry.example/up/app"), Reference.parse("docker.io/acme/app"), tags)


def image(digest: Digest, approval: TagApproval | None = None, when: datetime = T0) -> LockedImage:
    return LockedImage(digest, OCI_MANIFEST, when, approval=approval)


def test_a_lock_without_approvals_renders_as_before() -> None:
    text = render_lock(Lock((entry({"1": image(D1)}),)))
    assert "approval" not in text
    assert text.endswith('        resolved_at: "2026-05-01T10:00:00Z"\n')
    assert render_lock(parse_lock(text)) == text


def test_an_approval_is_three_lines_after_resolved_at_and_reads_back() -> None:
    approval = TagApproval("Alice <alice@acme.example>", "CVE fixed upstream", T1)
    lock = Lock((entry({"1": image(D1, approval), "2": image(D2)}),))
    text = render_lock(lock)
    assert (
        f'      "1":\n        digest: "{D1}"\n        media_type: "{OCI_MANIFEST}"\n'
        '        platforms: []\n        referrers: []\n        resolved_at: "2026-05-01T10:00:00Z"\n'
        '        approval:\n          by: "Alice <alice@acme.example>"\n'
        '          reason: "CVE fixed upstream"\n          at: "2026-05-02T09:00:00Z"\n      "2":\n'
    ) in text
    assert parse_lock(text) == lock
    # the same through the located loader (a lock not in the writer's own form)
    assert parse_lock(text.replace("version: 1\n", "# a comment\nversion: 1\n")) == lock


def test_hostile_approval_text_is_one_escaped_line_and_reads_back_exactly() -> None:
    reason = "ok\nimages: []\n\x1b[31mred\x1b]0;title\x07\r\u202eevil\U0001F600" + "x" * 3000
    by = 'Eve "quote" \\ <eve@example>\t\x00'
    lock = Lock((entry({"1": image(D1, TagApproval(by, reason, T1))}),))
    text = render_lock(lock)
    assert text.isascii() and "\x1b" not in text and "\r" not in text and "\x00" not in text
    assert len(text.splitlines()) == len(render_lock(Lock((entry({"1": image(D1)}),))).splitlines()) + 4
    back = parse_lock(text).entries[0].tags["1"].approval
    assert back is not None and back.reason == reason and back.by == by


@pytest.mark.parametrize(
    ("by", "reason", "message"),
    [
        ("", "why", "approval by: must not be empty"),
        ("a", "  \n", "approval reason: must not be empty"),
        ("a", "x" * 4097, "approval reason: 4097 characters, at most 4096"),
        ("a" * 257, "why", "approval by: 257 characters, at most 256"),
        ("a", "bad \udcff byte", "lone surrogate"),
    ],
)
def test_an_approval_refuses_what_it_cannot_hold(by: str, reason: str, message: str) -> None:
    with pytest.raises(LockRecordError, match=message):
        TagApproval(by, reason, T1)


def test_a_damaged_approval_in_the_file_is_that_entry_s_error(tmp_path: Path) -> None:
    good = render_lock(Lock((entry({"1": image(D1, TagApproval("a", "b", T1))}),)))
    path = tmp_path / "imagevet.lock"
    path.write_text(good.replace('at: "2026-05-02T09:00:00Z"', 'at: "yesterday"'))
    lock = read_lock(path)
    assert lock.entries == () and len(lock.unreadable) == 1
    (error,) = lock.unreadable[0].errors
    assert "approval.at" in error.field and "UTC time" in error.message and error.line == 17
    path.write_text(good.replace('by: "a"', "by: 7"))
    assert read_lock(path).unreadable
    path.write_text(good.replace('reason: "b"', 'reason: "b"\n          extra: "x"'))
    assert read_lock(path).unreadable


def test_an_explicit_digest_carries_no_approval() -> None:
    with pytest.raises(LockRecordError, match="no approval"):
        LockEntry(Reference.parse("r.example/a/b"), Reference.parse("t.example/a/b"),
                  digests={D1: image(D1, TagApproval("a", "b", T1))})
    text = render_lock(Lock((LockEntry(Reference.parse("r.example/a/b"), Reference.parse("t.example/a/b"),
                                        digests={D1: image(D1)}),)))
    bad = text.replace('resolved_at: "2026-05-01T10:00:00Z"',
                       'resolved_at: "2026-05-01T10:00:00Z"\n        approval:\n          by: "a"\n'
                       '          reason: "b"\n          at: "2026-05-01T10:00:00Z"')
    assert parse_lock(bad).unreadable


def test_an_approval_stays_with_its_tag_at_its_digest_only() -> None:
    approval = TagApproval("alice", "reviewed", T1)
    old = Lock((entry({"1": image(D1, approval)}),))
    # `imagevet lock` finds the digest's record for another tag: without the approval
    found = old.entries[0].find_digest(D1)
    assert found is not None and found.approval is None and found.digest == D1
    # re-resolved at the same digest (a record without it): the tag keeps its approval
    same = carry_resolved_at(Lock((entry({"1": image(D1, when=T1), "2": image(D1, when=T1)}),)), old)
    assert same.entries[0].tags["1"].approval == approval and same.entries[0].tags["1"].resolved_at == T0
    assert same.entries[0].tags["2"].approval is None
    # re-pointed: the approval of the old digest is gone
    moved = carry_resolved_at(Lock((entry({"1": image(D2, when=T1)}),)), old)
    assert moved.entries[0].tags["1"].approval is None



def test_an_approved_tag_with_evidence_keeps_both_records_in_their_places() -> None:
    """Both optional records of a tag (the evidence file's digest, the approval) render where each
    belongs and read back equal, in the writer's form and through the located loader."""
    evidence = Digest.of(b"evidence")
    approved = LockedImage(
        D1, OCI_MANIFEST, T0, approval=TagApproval("alice", "reviewed", T1), evidence=evidence
    )
    lock = Lock((entry({"1": approved}),))
    text = render_lock(lock)
    assert (
        f'        referrers: []\n        evidence: "{evidence}"\n        resolved_at: "2026-05-01T10:00:00Z"\n'
        '        approval:\n          by: "alice"\n'
    ) in text
    assert parse_lock(text) == lock
    assert parse_lock(text.replace("version: 1\n", "# a comment\nversion: 1\n")) == lock
