"""What a sync would do, as data: pure rules, no I/O.

Read in the order of the flow:

* :mod:`.observed`: what the operation layer saw (:class:`SourceState`, :class:`TargetState`,
  :class:`Observed`) and what it could not see (:class:`EntryProblem`);
* :mod:`.planner`: :func:`plan_sync`, per entry the tags its mirror should hold
  (:func:`desired_tags`), one action per tag, prune candidates, repository changes;
* :mod:`.budget`: the Docker Hub pull budget (:func:`estimate_pulls`, :func:`apply_budget`);
* :mod:`.actions`: the actions (:class:`Copy`, :class:`Update`, :class:`Hold`, ...) and the
  :class:`Plan` that holds them, with their JSON.
"""

from __future__ import annotations

from imagevet.plan.actions import (
    Action,
    ActionKind,
    Copy,
    CreateRepo,
    Defer,
    Hold,
    Noop,
    Plan,
    Prune,
    Update,
    UpdateRepo,
)
from imagevet.plan.budget import UNKNOWN_PLATFORMS, apply_budget, estimate_pulls
from imagevet.plan.observed import EntryProblem, Observed, SourceState, TargetState
from imagevet.plan.planner import EXPIRY_WARNING_DAYS, desired_tags, plan_sync

__all__ = [
    "Action",
    "ActionKind",
    "Copy",
    "CreateRepo",
    "Defer",
    "EXPIRY_WARNING_DAYS",
    "EntryProblem",
    "Hold",
    "Noop",
    "Observed",
    "Plan",
    "Prune",
    "SourceState",
    "TargetState",
    "UNKNOWN_PLATFORMS",
    "Update",
    "UpdateRepo",
    "apply_budget",
    "desired_tags",
    "estimate_pulls",
    "plan_sync",
]
