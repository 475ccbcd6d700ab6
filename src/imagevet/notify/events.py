"""The events people must act on, built from one run's report, the policy and the time.

=====================  ==============================================  ==========================
kind                   when                                            identity (besides kind)
=====================  ==============================================  ==========================
``held-update``        a ``Hold`` with ``upstream`` set: a pinned tag  entry, tag, upstream digest
                       that moved upstream, or a new upstream tag
                       waiting for ``imagevet lock``/``approve``
``sync-failure``       a failed action, or an entry that could not be  entry, tag, digest (a
                       read (an entry problem)                         problem: entry only)
``approval-expiring``  ``approval.expires`` within the target's        entry, expiry date
                       ``expiring_within`` days
``approval-expired``   ``approval.expires`` is past                    entry, expiry date
``budget-exhausted``   the plan deferred copies (the Docker Hub pull   (one per run)
                       budget would run out)
=====================  ==============================================  ==========================

The identity is what "sent once" is about (:mod:`imagevet.notify.run`): the error text of a
failure is not part of it (it varies between runs: timings, retry counts), so a failure that
keeps failing is one event; a held update that moves again to another digest is a new one.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from imagevet.engine.run import RunReport
from imagevet.plan import ActionKind
from imagevet.plan.actions import Copy, Defer, Hold, Update
from imagevet.policy import Policy

__all__ = ["CONDITIONS", "MAX_DEFERRED_LISTED", "Event", "EventKind", "collect_events"]

MAX_DEFERRED_LISTED = 20
"""Deferred copies named in one ``budget-exhausted`` event (the count says how many in all)."""


class EventKind(enum.StrEnum):
    """The kinds, named as the policy's ``notify: events`` names them (``NOTIFY_EVENTS``)."""

    HELD_UPDATE = "held-update"
    SYNC_FAILURE = "sync-failure"
    APPROVAL_EXPIRING = "approval-expiring"
    APPROVAL_EXPIRED = "approval-expired"
    BUDGET_EXHAUSTED = "budget-exhausted"


CONDITIONS = frozenset({EventKind.HELD_UPDATE, EventKind.SYNC_FAILURE, EventKind.BUDGET_EXHAUSTED})
"""Kinds that are states of a run: when one clears, its notice is forgotten, so it is sent
again if it comes back.  The approval kinds are keyed by the expiry date instead."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing to tell people; see the module docstring for kinds and identities."""

    kind: EventKind
    entry: str
    tag: str
    subject: str
    """The rest of the identity: a digest, an expiry date (``2026-12-31``) or ``""``."""
    reason: str
    source: str = ""
    target: str = ""
    wanted: str | None = None
    current: str | None = None
    upstream: str | None = None
    expires: str | None = None
    approved_by: str | None = None
    days_left: int | None = None
    deferred: tuple[str, ...] = ()
    deferred_count: int = 0

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (str(self.kind), self.entry, self.tag, self.subject)

    @property
    def id(self) -> str:
        """A stable id of the identity (the same every run): receivers can deduplicate on it."""
        return hashlib.sha256("\0".join(self.identity).encode()).hexdigest()[:32]

    def describe(self) -> str:
        """``held-update redis:7.2 (sha256:0123456789ab)``: what the CLI prints per delivery."""
        what = self.entry + (f":{self.tag}" if self.tag else "")
        if self.kind is EventKind.BUDGET_EXHAUSTED:
            what = f"{self.deferred_count} copies deferred"
        elif self.subject.startswith("sha256:"):
            what += f" ({self.subject[:19]})"
        elif self.subject:
            what += f" ({self.subject})"
        return f"{self.kind} {what}"


def _s(value: object) -> str | None:
    return str(value) if value is not None else None


def collect_events(report: RunReport, policy: Policy, *, now: datetime) -> list[Event]:
    """Every event of this run, deduplicated by identity, in a stable order.

    ``approval-expiring`` events are made for approvals expiring within 366 days; each target
    keeps those within its own ``expiring_within`` (``days_left``).  A dry run has none (it
    made no attempt that could fail; ``imagevet plan`` shows the holds).
    """
    if report.dry_run:
        return []
    out: dict[tuple[str, str, str, str], Event] = {}

    def add(event: Event) -> None:
        out.setdefault(event.identity, event)

    sources = {e.name: e.source for e in policy.entries}
    for action in report.plan.actions:
        if isinstance(action, Hold) and action.upstream is not None:
            tag = action.target.tag or ""
            source = sources.get(action.entry)
            add(Event(
                EventKind.HELD_UPDATE, action.entry, tag, str(action.upstream), action.reason,
                source=str(source.with_tag(tag)) if source is not None and tag else "",
                target=str(action.target), wanted=_s(action.wanted), current=_s(action.current),
                upstream=str(action.upstream),
            ))
    for outcome in report.failed:
        action = outcome.action
        digest = str(action.digest) if isinstance(action, Copy | Update) else ""
        tag = action.target.tag or ""
        add(Event(
            EventKind.SYNC_FAILURE, action.entry, tag, digest, outcome.message or "failed",
            source=str(action.source) if isinstance(action, Copy | Update) else "",
            target=str(action.target), wanted=digest or None,
        ))
    for problem in report.problems:
        add(Event(EventKind.SYNC_FAILURE, problem.entry, "", "", f"{problem.source}: {problem.message}"))
    defers = [a for a in report.plan.of_kind(ActionKind.DEFER) if isinstance(a, Defer)]
    if defers:
        listed = tuple(f"{d.entry}:{d.action.target.tag or d.action.digest}" for d in defers)
        add(Event(
            EventKind.BUDGET_EXHAUSTED, "", "", "", defers[0].reason,
            deferred=listed[:MAX_DEFERRED_LISTED], deferred_count=len(defers),
        ))
    today = now.astimezone(UTC).date()
    for entry in policy.entries:
        approval = entry.approval
        if approval.expires is None:
            continue
        expires = approval.expires.isoformat()
        left = (approval.expires - today).days
        kind, reason = (
            (EventKind.APPROVAL_EXPIRED,
             f"the approval ({approval.describe()}) expired: new digests are held until it is renewed")
            if approval.expired(now)
            else (EventKind.APPROVAL_EXPIRING,
                  f"the approval ({approval.describe()}) expires in {left} day{'s' if left != 1 else ''}")
        )
        if kind is EventKind.APPROVAL_EXPIRING and left > 366:
            continue
        add(Event(
            kind, entry.name, "", expires, reason, source=str(entry.source), target=str(entry.target),
            expires=expires, approved_by=approval.approved_by, days_left=left,
        ))
    return list(out.values())
