"""``engine.holds``: which updates a run holds for a person, keeps, and releases (no registry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.engine.holds import HoldChanges, held_updates, reconcile_holds, record_holds
from imagevet.engine.state import FileStateStore, HeldUpdate
from imagevet.errors import StateError
from imagevet.plan import EntryProblem, Hold, Noop, Plan
from imagevet.reference import Reference

T0 = datetime(2026, 11, 1, 8, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
TARGET = Reference.parse("registry.example/acme/app")
A, B, C = Digest.of(b"a"), Digest.of(b"b"), Digest.of(b"c")


def moved(tag: str, upstream: Digest, entry: str = "app") -> Hold:
    return Hold(entry, TARGET.with_tag(tag), "upstream moved", wanted=A, current=A, upstream=upstream)


def new_tag(tag: str, upstream: Digest, entry: str = "app") -> Hold:
    return Hold(entry, TARGET.with_tag(tag), "new upstream tag", wanted=None, upstream=upstream)


def plan(*actions: Hold | Noop, now: datetime = T0) -> Plan:
    return Plan(tuple(actions), now)


def test_only_holds_with_an_upstream_digest_wait_for_a_person() -> None:
    p = plan(
        moved("1", B), new_tag("2", C),
        Hold("app", TARGET.with_tag("3"), "approval expired", wanted=A),  # nothing upstream to take
        Noop("app", TARGET.with_tag("4"), A),
    )
    got = [(h.entry, h.tag, h.digest, h.since) for _, h in held_updates(p)]
    assert got == [("app", "1", str(B), T0), ("app", "2", str(C), T0)]


def test_the_first_run_holds_the_second_keeps_since_and_a_new_digest_is_new() -> None:
    first = reconcile_holds(plan(moved("1", B)), [], [])
    assert [(h.tag, h.digest, h.since) for h in first.new] == [("1", str(B), T0)]
    again = reconcile_holds(plan(moved("1", B), now=T1), [], first.held)
    assert again.new == () and [(h.tag, h.since) for h in again.kept] == [("1", T0)]
    moved_on = reconcile_holds(plan(moved("1", C), now=T1), [], first.held)
    assert [(h.tag, h.digest, h.since) for h in moved_on.new] == [("1", str(C), T1)] and moved_on.kept == ()


def test_a_hold_no_longer_planned_is_released_unless_its_entry_had_a_problem() -> None:
    held = [
        HeldUpdate("app", "1", str(B), "upstream moved", T0),
        HeldUpdate("down", "1", str(C), "upstream moved", T0),
        HeldUpdate("gone", "9", str(C), "new upstream tag", T0),  # an entry no longer in the policy
    ]
    problems = [EntryProblem("down", "registry.example/up/down", "cannot connect")]
    changes = reconcile_holds(plan(), problems, held)
    assert [h.entry for h in changes.released] == ["app", "gone"]
    assert [h.entry for h in changes.kept_unobserved] == ["down"]
    assert [h.entry for h in changes.held] == ["down"]


def test_record_holds_brings_the_store_in_line(tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    first = record_holds(state, plan(moved("1", B), new_tag("2", C)), [])
    assert [(h.tag, h.since) for h in first.new] == [("1", T0), ("2", T0)]
    assert [(h.tag, h.digest, h.since) for h in state.held()] == [("1", str(B), T0), ("2", str(C), T0)]

    second = record_holds(state, plan(moved("1", B), now=T1), [])  # tag 2 is in the lock now
    assert second.new == () and [h.tag for h in second.released] == ["2"]
    assert [(h.tag, h.since) for h in state.held()] == [("1", T0)]

    failing = record_holds(state, plan(now=T1), [EntryProblem("app", "up", "timeout")])
    assert failing.released == () and [(h.tag, h.since) for h in state.held()] == [("1", T0)]

    record_holds(state, plan(now=T1), [])
    assert state.held() == []


def test_a_damaged_held_file_is_a_state_error_and_is_left_alone(tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    (tmp_path / ".imagevet").mkdir()
    (tmp_path / ".imagevet" / "held.json").write_text("{not json")
    with pytest.raises(StateError, match="held.json"):
        record_holds(state, plan(moved("1", B)), [])
    assert (tmp_path / ".imagevet" / "held.json").read_text() == "{not json"


def test_changes_say_what_is_held_after_the_run() -> None:
    changes = HoldChanges(
        new=(HeldUpdate("b", "1", str(B), "r", T1),),
        kept=(HeldUpdate("a", "1", str(A), "r", T0),),
        released=(HeldUpdate("c", "1", str(C), "r", T0),),
    )
    assert [h.entry for h in changes.held] == ["a", "b"]
    assert changes.to_json()["released"] == [
        {"entry": "c", "tag": "1", "digest": str(C), "reason": "r", "since": "2026-11-01T08:00:00Z"}
    ]
