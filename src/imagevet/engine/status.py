"""What needs a person (``imagevet status``), from what is on disk: no registry is asked.

Read from the policy, the lock, the state store's held updates and the last run summary:

* **held**: an upstream tag that moved away from the lock under ``mode: pinned``: entry, tag,
  the locked digest, the upstream digest, since when;
* **new tags**: an upstream tag the entry's rules select that the lock does not have yet;
* **approved**: a held update the lock already holds (``imagevet approve`` or ``imagevet lock``
  took it): the next sync copies it and releases the hold; nothing for a person to do;
* **approvals** expiring within N days, and expired ones (the policy's ``approval.expires``);
* **failing**: the entries the last run could not observe or copy, and entries whose lock
  records cannot be read now;
* **pull budget**: what the last run saw (pulls left per registry, the reserve, copies
  deferred); a registry with no pulls left beyond the reserve is *exhausted*.

Everything but ``approved`` (and a budget that is not exhausted) needs a person:
:attr:`StatusReport.attention`.  A run summary is input like any other: fields of the wrong
type are left out, never trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from imagevet.engine.state import HeldUpdate
from imagevet.lock import Lock
from imagevet.plan import EntryProblem
from imagevet.policy import Policy

__all__ = [
    "ExpiringApproval",
    "FailingEntry",
    "HeldTag",
    "StatusReport",
    "status_report",
]

STATUS_VERSION = 1
_MAX_FAILING = 1000
"""Failing items kept from a run summary (a hostile summary cannot make the report huge)."""


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class HeldTag:
    """A held update of an entry in the policy, as a person reads it."""

    entry: str
    tag: str
    source: str
    target: str
    locked: str | None
    """The digest the lock holds for the tag (None: a new upstream tag)."""
    upstream: str
    """What upstream pointed the tag at when it was last observed."""
    since: datetime
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry, "tag": self.tag, "source": self.source, "target": self.target,
            "locked": self.locked, "upstream": self.upstream, "since": _stamp(self.since),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class ExpiringApproval:
    entry: str
    approved_by: str
    ticket: str | None
    expires: date
    days_left: int
    """Days from today (UTC) to ``expires``; negative once expired."""
    expired: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry, "approved_by": self.approved_by, "ticket": self.ticket,
            "expires": self.expires.isoformat(), "days_left": self.days_left, "expired": self.expired,
        }


@dataclass(frozen=True, slots=True)
class FailingEntry:
    entry: str
    where: str
    """The reference concerned (source, target, or the lock file)."""
    message: str
    tag: str | None = None
    """The tag whose copy failed (None: the whole entry)."""
    current: bool = False
    """Found now (an unreadable lock record), not in the last run summary."""

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry, "tag": self.tag, "where": self.where, "message": self.message,
                "current": self.current}


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Everything ``imagevet status`` shows; :meth:`to_json` is its stable JSON (version 1)."""

    now: datetime
    within_days: int
    held: tuple[HeldTag, ...] = ()
    new_tags: tuple[HeldTag, ...] = ()
    approved: tuple[HeldTag, ...] = ()
    approvals: tuple[ExpiringApproval, ...] = ()
    failing: tuple[FailingEntry, ...] = ()
    last_run: Mapping[str, Any] | None = None
    """``{"now", "ok", "counts"}`` of the last run summary (None: no run yet)."""
    pull_budget: Mapping[str, Any] | None = None
    """The last run's ``pull_budget`` (None: not recorded)."""

    @property
    def exhausted(self) -> list[str]:
        """Registries the last run saw with no pull left beyond the reserve."""
        if not self.pull_budget:
            return []
        reserve = self.pull_budget.get("reserve", 0)
        remaining = self.pull_budget.get("remaining", {})
        return sorted(r for r, n in remaining.items() if n <= reserve)

    @property
    def attention(self) -> int:
        """How many items need a person (0: nothing does)."""
        return (
            len(self.held) + len(self.new_tags) + len(self.approvals) + len(self.failing)
            + len(self.exhausted)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATUS_VERSION,
            "now": _stamp(self.now),
            "attention": self.attention,
            "within_days": self.within_days,
            "held": [h.to_json() for h in self.held],
            "new_tags": [h.to_json() for h in self.new_tags],
            "approved": [h.to_json() for h in self.approved],
            "approvals": [a.to_json() for a in self.approvals],
            "failing": [f.to_json() for f in self.failing],
            "last_run": dict(self.last_run) if self.last_run is not None else None,
            "pull_budget": (
                {**self.pull_budget, "exhausted": self.exhausted} if self.pull_budget is not None else None
            ),
        }


def _held(policy: Policy, lock: Lock, held: Iterable[HeldUpdate]) -> tuple[list[HeldTag], ...]:
    moved: list[HeldTag] = []
    new: list[HeldTag] = []
    approved: list[HeldTag] = []
    entries = {e.name: e for e in policy.entries}
    for h in sorted(held, key=lambda h: h.key):
        entry = entries.get(h.entry)
        if entry is None:
            continue  # not in the policy any more: the next sync releases it
        locked = lock.image(entry.key, h.tag)
        item = HeldTag(
            h.entry, h.tag, str(entry.source), str(entry.target),
            str(locked.digest) if locked is not None else None, h.digest, h.since, h.reason,
        )
        if locked is not None and str(locked.digest) == h.digest:
            approved.append(item)
        elif locked is None:
            new.append(item)
        else:
            moved.append(item)
    return moved, new, approved


def _approvals(policy: Policy, now: datetime, within_days: int) -> list[ExpiringApproval]:
    today = now.astimezone(UTC).date()
    out: list[ExpiringApproval] = []
    for e in policy.entries:
        expires = e.approval.expires
        if expires is None:
            continue
        left = (expires - today).days
        expired = e.approval.expired(now)
        if expired or left <= within_days:
            out.append(ExpiringApproval(e.name, e.approval.approved_by, e.approval.ticket, expires, left, expired))
    return sorted(out, key=lambda a: (a.expires, a.entry))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _failing(summary: Mapping[str, Any] | None) -> list[FailingEntry]:
    if summary is None:
        return []
    out: list[FailingEntry] = []
    problems = summary.get("problems")
    for p in problems if isinstance(problems, list) else []:
        if isinstance(p, dict) and _text(p.get("entry")) is not None:
            out.append(FailingEntry(p["entry"], _text(p.get("source")) or "", _text(p.get("message")) or ""))
    actions = summary.get("actions")
    for a in actions if isinstance(actions, list) else []:
        if isinstance(a, dict) and a.get("status") == "failed" and _text(a.get("entry")) is not None:
            where = _text(a.get("source")) or _text(a.get("target")) or ""
            out.append(FailingEntry(a["entry"], where, _text(a.get("message")) or "", _text(a.get("tag"))))
    return out[:_MAX_FAILING]


def _last_run(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    counts = summary.get("counts")
    return {
        "now": _text(summary.get("now")),
        "ok": summary.get("ok") if isinstance(summary.get("ok"), bool) else None,
        "counts": {k: v for k, v in counts.items() if isinstance(k, str) and type(v) is int}
        if isinstance(counts, dict) else {},
    }


def _pull_budget(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    budget = summary.get("pull_budget") if summary is not None else None
    if not isinstance(budget, dict):
        return None
    remaining = budget.get("remaining")
    return {
        "remaining": {
            k: v for k, v in (remaining.items() if isinstance(remaining, dict) else ())
            if isinstance(k, str) and type(v) is int
        },
        "reserve": budget["reserve"] if type(budget.get("reserve")) is int else 0,
        "deferred": budget["deferred"] if type(budget.get("deferred")) is int else 0,
    }


def status_report(
    policy: Policy,
    lock: Lock,
    held: Sequence[HeldUpdate],
    summary: Mapping[str, Any] | None,
    *,
    now: datetime,
    within_days: int,
    lock_problems: Sequence[EntryProblem] = (),
) -> StatusReport:
    """What needs a person now; see the module docstring.  ``policy`` is every entry as
    declared (those whose lock records cannot be read included: ``lock_problems`` says why)."""
    moved, new, approved = _held(policy, lock, held)
    current = [FailingEntry(p.entry, p.source, p.message, current=True) for p in lock_problems]
    failing = [*current, *(f for f in _failing(summary) if (f.entry, f.message) not in
                           {(c.entry, c.message) for c in current})]
    return StatusReport(
        now=now, within_days=within_days, held=tuple(moved), new_tags=tuple(new),
        approved=tuple(approved), approvals=tuple(_approvals(policy, now, within_days)),
        failing=tuple(failing), last_run=_last_run(summary), pull_budget=_pull_budget(summary),
    )
