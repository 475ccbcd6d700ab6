"""What ``imagevet watch`` exposes on ``/metrics``, on its own ``CollectorRegistry``.

Names (all prefixed ``imagevet_``; see docs/watch.md):

=============================================  =========  ==========================================
``runs_total{result}``                         counter    cycles by result: ok, failed, skipped
                                                          (another run held the lock), cancelled,
                                                          error (the run could not start)
``actions_total{kind}``                        counter    plan actions carried out, by kind (copy,
                                                          update, hold, noop, defer, prune, ...)
``bytes_copied_total``                         counter    blob bytes moved by copies
``failures_total``                             counter    failed actions plus entries that could
                                                          not be planned
``held_updates``                               gauge      Hold actions with an upstream digest in
                                                          the last run: pinned tags that moved
                                                          and new tags waiting for approval
``pull_budget_remaining{registry}``            gauge      pulls left, as the registry last said
``last_success_timestamp_seconds{entry}``      gauge      end of the last run in which the entry
                                                          had no failure and no problem
``run_duration_seconds``                       histogram  seconds per run (plan and apply)
``last_run_timestamp_seconds``                 gauge      end of the last finished run
``next_run_timestamp_seconds``                 gauge      when the next run is due
``policy_loaded``                              gauge      1 when the policy file loads; 0 while the
                                                          last good one is kept
``policy_reloads_total{result}``               counter    reloads: ok, error
=============================================  =========  ==========================================

Label values are bounded by the policy (entries, registries) and by the fixed action kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from imagevet.plan import ActionKind, Hold

if TYPE_CHECKING:
    from imagevet.engine.run import RunReport
    from imagevet.ratelimit import RateLimit

__all__ = ["WatchMetrics", "held_updates"]

_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))


def held_updates(report: RunReport) -> int:
    """Hold actions that wait for a person: a pinned tag that moved upstream, or a new tag."""
    return sum(1 for a in report.plan.actions if isinstance(a, Hold) and a.upstream is not None)


class WatchMetrics:
    """The watch process's metrics; :meth:`exposition` is the ``/metrics`` body."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("imagevet_runs", "Watch cycles by result.", ["result"], registry=r)
        self.actions = Counter("imagevet_actions", "Plan actions carried out, by kind.", ["kind"], registry=r)
        self.bytes_copied = Counter("imagevet_bytes_copied", "Blob bytes moved by copies.", registry=r)
        self.failures = Counter(
            "imagevet_failures", "Failed actions and entries that could not be planned.", registry=r
        )
        self.held = Gauge(
            "imagevet_held_updates", "Held updates waiting for approval in the last run.", registry=r
        )
        self.budget = Gauge(
            "imagevet_pull_budget_remaining", "Pulls left, as each registry last reported.", ["registry"],
            registry=r,
        )
        self.last_success = Gauge(
            "imagevet_last_success_timestamp_seconds",
            "End of the last run in which the entry had no failure.", ["entry"], registry=r,
        )
        self.duration = Histogram(
            "imagevet_run_duration_seconds", "Seconds per run.", buckets=_DURATION_BUCKETS, registry=r
        )
        self.last_run = Gauge("imagevet_last_run_timestamp_seconds", "End of the last finished run.", registry=r)
        self.next_run = Gauge("imagevet_next_run_timestamp_seconds", "When the next run is due.", registry=r)
        self.policy_loaded = Gauge(
            "imagevet_policy_loaded", "1 when the policy file loads; 0 while the last good one is kept.",
            registry=r,
        )
        self.reloads = Counter("imagevet_policy_reloads", "Policy reloads by result.", ["result"], registry=r)
        for result in ("ok", "failed", "skipped", "cancelled", "error"):
            self.runs.labels(result)
        for kind in ActionKind:
            self.actions.labels(str(kind))
        for result in ("ok", "error"):
            self.reloads.labels(result)

    def observe_run(
        self,
        report: RunReport,
        *,
        entries: list[str],
        ratelimits: Mapping[str, RateLimit],
        seconds: float,
        finished: datetime,
    ) -> None:
        """Count one finished run (``entries``: the policy's entry names)."""
        self.runs.labels("ok" if report.ok else "failed").inc()
        for outcome in report.outcomes:
            if outcome.status in ("done", "reported"):
                self.actions.labels(str(outcome.action.kind)).inc()
        self.bytes_copied.inc(report.bytes_copied)
        self.failures.inc(len(report.failed) + len(report.problems))
        self.held.set(held_updates(report))
        self.observe_budget(ratelimits)
        bad = {o.action.entry for o in report.failed} | {p.entry for p in report.problems}
        stamp = finished.timestamp()
        for entry in entries:
            if entry not in bad:
                self.last_success.labels(entry).set(stamp)
        self.duration.observe(seconds)
        self.last_run.set(stamp)

    def observe_budget(self, ratelimits: Mapping[str, RateLimit]) -> None:
        for registry, limit in ratelimits.items():
            if limit.remaining is not None:
                self.budget.labels(registry).set(limit.remaining)

    def exposition(self) -> tuple[bytes, str]:
        """The ``/metrics`` body and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
