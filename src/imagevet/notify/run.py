"""``notify_run``: after each sync (``imagevet sync``, ``imagevet watch``), tell each target
what people must act on, once.

Once, per target: an event is sent to a target unless the state store has a notice for it
(target, kind, entry, tag, digest or expiry date); the notice is recorded only after the
target answered 2xx.  A delivery that failed is reported and tried again on the next run, so
delivery is at least once (a 2xx lost on the way back means the event comes again; receivers
can deduplicate on the body's ``id``).

Again, when it comes back: the notices of *conditions* (held updates, failures, the pull
budget) are forgotten when this run shows the condition has cleared:

* a held update: its entry was planned this run without a problem, and upstream no longer
  points the tag at that digest (it was approved, or moved back, or the tag went away);
* a failure: this run had no failure with that identity;
* the pull budget: this run deferred nothing;
* any of them: its entry is no longer in the policy.

So a failure that clears and comes back later is sent again; one that keeps failing is sent
once.  Approval notices are keyed by the expiry date: sent once per date, again when the
approval is renewed to another date and that one comes near.

Bounded: every delivery of one call ends within ``settings.total_seconds``; targets are served
at once, each one's events in order, and a target that is down (no answer, 5xx, 429) gets the
rest of its events on the next run.  Nothing here raises for a delivery or a state error:
everything is in the :class:`NotifyOutcome`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from imagevet.engine.run import RunReport
from imagevet.engine.state import Notice, StateStore
from imagevet.errors import ImagevetError
from imagevet.notify.deliver import DeliverySettings, post
from imagevet.notify.events import CONDITIONS, Event, EventKind, collect_events
from imagevet.notify.receivers import Receiver, resolve_receivers
from imagevet.notify.render import SIGNATURE_HEADER, encode, sign, slack_body, webhook_body
from imagevet.policy import Policy
from imagevet.registry.transport import AiohttpTransport, Transport

__all__ = ["Delivery", "NotifyOutcome", "notify_run"]

_Key = tuple[str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one target: ``sent`` (recorded) or ``failed`` (tried again next run)."""

    event: Event
    target: str
    """The target's label: its variable and host, never its URL."""
    sent: bool
    reason: str = ""
    attempts: int = 0

    def describe(self) -> str:
        if self.sent:
            return f"notified {self.target}: {self.event.describe()}"
        return f"notification to {self.target} failed: {self.event.describe()}: {self.reason}; retried next run"


@dataclass(frozen=True, slots=True)
class NotifyOutcome:
    """What :func:`notify_run` did: deliveries, and problems (a target left out, a state error)."""

    deliveries: tuple[Delivery, ...] = ()
    problems: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()
    """This run's events (before filtering per target and by what was already sent)."""
    forgotten: int = 0
    """Notices of cleared conditions forgotten this run."""

    @property
    def sent(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.sent]

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.sent]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems


def _notice_key(n: Notice) -> _Key:
    return (n.target, n.kind, n.entry, n.tag, n.digest)


def _cleared(notices: Sequence[Notice], events: Sequence[Event], report: RunReport, policy: Policy) -> list[Notice]:
    """The notices of conditions this run shows have cleared (see the module docstring)."""
    current = {e.identity for e in events}
    names = {e.name for e in policy.entries}
    troubled = {p.entry for p in report.problems}
    planned = {a.entry for a in report.plan.actions} - troubled
    out: list[Notice] = []
    for n in notices:
        try:
            kind = EventKind(n.kind)
        except ValueError:
            continue  # not a notify record (or an old one without a kind): left alone
        if kind not in CONDITIONS or (n.kind, n.entry, n.tag, n.digest) in current:
            continue
        gone = n.entry not in names and kind is not EventKind.BUDGET_EXHAUSTED
        if (
            gone
            or kind is EventKind.SYNC_FAILURE
            or kind is EventKind.BUDGET_EXHAUSTED
            or (kind is EventKind.HELD_UPDATE and n.entry in planned)
        ):
            out.append(n)
    return out


def _request(receiver: Receiver, event: Event, now: datetime) -> tuple[bytes, dict[str, str]]:
    if receiver.config.type == "slack":
        return encode(slack_body(event, now=now)), {}
    body = encode(webhook_body(event, now=now))
    headers = {"X-Imagevet-Event": str(event.kind), "X-Imagevet-Delivery": event.id}
    if receiver.secret is not None:
        headers[SIGNATURE_HEADER] = sign(receiver.secret, body)
    return body, headers


async def notify_run(
    report: RunReport,
    policy: Policy,
    state: StateStore,
    *,
    now: datetime,
    env: Mapping[str, str],
    transport: Transport | None = None,
    settings: DeliverySettings | None = None,
    jitter: Callable[[], float] | None = None,
) -> NotifyOutcome:
    """Send this run's events to the policy's ``notify`` targets, each once; see the module doc.

    ``env`` holds the variables the targets name (the CLI passes ``os.environ``; nothing here
    reads it).  ``transport``: the HTTP transport (default: an :class:`AiohttpTransport` of its
    own, closed at the end; one passed in is left open).  A no-op without targets.
    """
    if not policy.notify:
        return NotifyOutcome()
    settings = settings or DeliverySettings()
    receivers, problems = resolve_receivers(policy.notify, env)
    if report.dry_run:  # nothing was attempted: nothing to tell, nothing cleared
        return NotifyOutcome(problems=tuple(problems))
    events = collect_events(report, policy, now=now)
    forgotten = 0
    try:
        notices = await asyncio.to_thread(state.notices)
        cleared = _cleared(notices, events, report, policy)
        forgotten = await asyncio.to_thread(state.forget_notices, cleared)
        done = {_notice_key(n) for n in notices if n not in cleared}
    except ImagevetError as e:  # nothing is known to be sent: send nothing rather than repeat
        return NotifyOutcome(problems=(*problems, f"notifications not sent: {e}"), events=tuple(events))
    if not receivers:
        return NotifyOutcome(problems=tuple(problems), events=tuple(events), forgotten=forgotten)

    own = transport is None
    http: Transport = transport or AiohttpTransport(
        max_connections_per_host=2, connect_timeout=settings.attempt_seconds,
        read_timeout=settings.attempt_seconds,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.total_seconds
    state_problems: list[str] = []
    every_secret = [s for r in receivers for s in r.secrets()]  # a receiver may echo another's

    async def serve(receiver: Receiver) -> list[Delivery]:
        pending = [
            e for e in events
            if receiver.wants(e) and (receiver.name, *e.identity) not in done
        ]
        out: list[Delivery] = []
        down: str | None = None
        for event in pending:
            if down is not None:
                out.append(Delivery(event, receiver.label, False, f"not sent: {down}"))
                continue
            body, headers = _request(receiver, event, now)
            kwargs = {"jitter": jitter} if jitter is not None else {}
            tried = await post(http, receiver, body, headers, deadline=deadline, settings=settings,
                               secrets=every_secret, **kwargs)
            if not tried.ok:
                out.append(Delivery(event, receiver.label, False, tried.reason, tried.attempts))
                if tried.down:
                    down = f"{receiver.label} failed earlier in this run ({tried.reason})"
                continue
            try:
                await asyncio.to_thread(
                    state.mark_notified, event.entry, event.tag, event.subject, now=now,
                    kind=str(event.kind), target=receiver.name,
                )
            except ImagevetError as e:  # sent, but it will be sent again
                state_problems.append(f"{receiver.label}: sent {event.describe()} but could not record it: {e}")
            out.append(Delivery(event, receiver.label, True, attempts=tried.attempts))
        return out

    try:
        results = await asyncio.gather(*(serve(r) for r in receivers))
    finally:
        if own:
            await http.aclose()
    deliveries = tuple(d for one in results for d in one)
    return NotifyOutcome(deliveries, (*problems, *state_problems), tuple(events), forgotten)


