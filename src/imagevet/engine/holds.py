"""Held updates: what a run's plan holds back for a person, kept in the state store between runs.

Under ``mode: pinned`` the plan makes a :class:`~imagevet.plan.Hold` with ``upstream`` set for
an upstream tag that moved away from the lock, and for a new upstream tag the lock does not have
(``wanted`` None); an expired approval holds a moved tag the same way.  After each recorded run
the state store's held updates are brought in line with the plan:

* each such Hold is held (:class:`~imagevet.engine.state.HeldUpdate`, digest = what upstream
  points at now): the same digest held again keeps its first ``since``; a new upstream digest
  for the same tag replaces it, with a new ``since``;
* a held update the plan no longer makes is released (the lock took it after ``imagevet
  approve`` or ``imagevet lock``, upstream went back, the tag or the entry is gone), but only for
  an entry observed without a problem this run: an entry whose upstream (or target, or lock
  records) could not be read keeps every hold it had.

:func:`reconcile_holds` is the decision, pure; :func:`record_holds` applies it to a store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imagevet.engine.state import HeldUpdate, StateStore
from imagevet.plan import EntryProblem, Hold, Plan

__all__ = ["HoldChanges", "held_updates", "reconcile_holds", "record_holds"]


@dataclass(frozen=True, slots=True)
class HoldChanges:
    """What a run does to the held updates.

    ``new``: held for the first time, or at a new upstream digest (``since`` is this run): what a
    person should be told about.  ``kept``: held again at the same digest (``since`` unchanged).
    ``released``: held before, no longer in the plan.  ``kept_unobserved``: held before, for an
    entry with a problem this run: kept as they were.
    """

    new: tuple[HeldUpdate, ...] = ()
    kept: tuple[HeldUpdate, ...] = ()
    released: tuple[HeldUpdate, ...] = ()
    kept_unobserved: tuple[HeldUpdate, ...] = ()

    @property
    def held(self) -> tuple[HeldUpdate, ...]:
        """Every update held after the run, by entry then tag."""
        return tuple(sorted((*self.new, *self.kept, *self.kept_unobserved), key=lambda h: h.key))

    def to_json(self) -> dict[str, list[dict[str, str]]]:
        return {
            "new": [h.to_json() for h in self.new],
            "kept": [h.to_json() for h in self.kept],
            "released": [h.to_json() for h in self.released],
            "kept_unobserved": [h.to_json() for h in self.kept_unobserved],
        }


def held_updates(plan: Plan) -> list[tuple[Hold, HeldUpdate]]:
    """Each Hold of ``plan`` that waits for a person (``upstream`` set: a tag that moved upstream
    or a new upstream tag) with the held update it stands for (``since`` = the plan's time)."""
    out: dict[tuple[str, str], tuple[Hold, HeldUpdate]] = {}
    for action in plan.actions:
        if not isinstance(action, Hold) or action.upstream is None or action.target.tag is None:
            continue
        update = HeldUpdate(action.entry, action.target.tag, str(action.upstream), action.reason, plan.now)
        out.setdefault(update.key, (action, update))
    return [out[k] for k in sorted(out)]


def reconcile_holds(
    plan: Plan, problems: Iterable[EntryProblem], held: Sequence[HeldUpdate]
) -> HoldChanges:
    """What to hold and release after a run of ``plan``, given what was ``held`` before it and
    the entries that had a ``problems`` this run (see the module docstring)."""
    troubled = {p.entry for p in problems}
    before = {h.key: h for h in held}
    wanted = {u.key: u for _, u in held_updates(plan)}
    new: list[HeldUpdate] = []
    kept: list[HeldUpdate] = []
    for key, update in sorted(wanted.items()):
        previous = before.get(key)
        if previous is not None and previous.digest == update.digest:
            kept.append(HeldUpdate(update.entry, update.tag, update.digest, update.reason, previous.since))
        else:
            new.append(update)
    released: list[HeldUpdate] = []
    unobserved: list[HeldUpdate] = []
    for key, previous in sorted(before.items()):
        if key in wanted:
            continue
        (unobserved if previous.entry in troubled else released).append(previous)
    return HoldChanges(tuple(new), tuple(kept), tuple(released), tuple(unobserved))


def record_holds(state: StateStore, plan: Plan, problems: Iterable[EntryProblem]) -> HoldChanges:
    """Bring ``state``'s held updates in line with ``plan`` (:func:`reconcile_holds`) and return
    what changed.  Blocking (one state store call per change); StateError when the store cannot
    be read or written."""
    before = {h.key: h for h in state.held()}
    changes = reconcile_holds(plan, problems, list(before.values()))
    new = tuple(state.hold(update) for update in changes.new)
    for update in changes.kept:
        if before.get(update.key) != update:  # the reason's text changed: same digest, same since
            state.hold(update)
    for update in changes.released:
        state.release(update.entry, update.tag)
    return HoldChanges(new, changes.kept, changes.released, changes.kept_unobserved)
