"""Notifications: tell people, once, what needs them after a sync (docs/notifications.md).

``notify_run(report, policy, state, now=..., env=os.environ)`` after each run: events
(:mod:`imagevet.notify.events`) from the run's report and the policy, bodies
(:mod:`imagevet.notify.render`) for a JSON webhook or a Slack incoming webhook, delivery
(:mod:`imagevet.notify.deliver`) retried and bounded, once-semantics through the state store's
notices (:mod:`imagevet.notify.run`).
"""

from __future__ import annotations

from imagevet.notify.deliver import DeliverySettings
from imagevet.notify.events import Event, EventKind, collect_events
from imagevet.notify.receivers import Receiver, resolve_receivers
from imagevet.notify.render import SCHEMA, SIGNATURE_HEADER, sign, slack_body, webhook_body
from imagevet.notify.run import Delivery, NotifyOutcome, notify_run

__all__ = [
    "SCHEMA",
    "SIGNATURE_HEADER",
    "Delivery",
    "DeliverySettings",
    "Event",
    "EventKind",
    "NotifyOutcome",
    "Receiver",
    "collect_events",
    "notify_run",
    "resolve_receivers",
    "sign",
    "slack_body",
    "webhook_body",
]
