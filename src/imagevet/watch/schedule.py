"""When ``imagevet watch`` runs: an interval or a cron expression, jitter, and the pull-budget reset.

Pure functions of their arguments (a clock value, a random number): the loop and the tests feed
them the same way.

* :func:`parse_duration`: ``90s``, ``15m``, ``1h30m``, ``2d`` (units s, m, h, d; a bare number is
  seconds), bounded; anything else is a :class:`ScheduleError` naming the option and the value.
* :class:`Interval` / :class:`Cron`: the next run after a moment.  An interval counts from the
  end of the last run (a long run never makes runs pile up); a cron expression (5 fields, the
  semantics of cron itself through ``cronsim``, in UTC) names wall-clock times.
* :func:`next_run`: the scheduled time plus the jitter, or earlier when deferred work waits for
  the pull budget's window to reset (:func:`budget_reset`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from imagevet.errors import CopyError, PolicyError, RateLimitedError
from imagevet.plan import Copy, Defer, Plan, Update
from imagevet.ratelimit import RateLimit

if TYPE_CHECKING:
    from imagevet.sync import ActionOutcome

__all__ = [
    "MAX_DURATION",
    "Cron",
    "Interval",
    "Schedule",
    "ScheduleError",
    "budget_reset",
    "next_run",
    "parse_cron",
    "parse_duration",
    "rate_limited_reset",
]

MAX_DURATION = timedelta(days=31)
"""The longest interval or jitter accepted (a longer one is a typo more often than a wish)."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:(\d{1,9})([smhd]))+")
_PART = re.compile(r"(\d{1,9})([smhd])")


class ScheduleError(PolicyError):
    """A bad ``--interval``, ``--cron`` or ``--jitter`` value (a usage error: exit 2)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(option, message)


def parse_duration(text: str, *, option: str, allow_zero: bool = False) -> timedelta:
    """``text`` (``30s``, ``15m``, ``1h30m``, ``2d``, or plain seconds ``45``) as a duration."""
    value = text.strip().lower()
    if value.isdigit() and len(value) <= 9:
        seconds = int(value)
    elif _DURATION.fullmatch(value):
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value))
    else:
        raise ScheduleError(
            option, f"{text!r} is not a duration (a number with a unit s, m, h or d: 30s, 15m, 1h30m, 2d)"
        )
    if seconds == 0 and not allow_zero:
        raise ScheduleError(option, f"{text!r}: must be at least 1s")
    if seconds > MAX_DURATION.total_seconds():
        raise ScheduleError(option, f"{text!r}: at most {MAX_DURATION.days}d")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Interval:
    """A run every ``every``, counted from the end of the previous run."""

    every: timedelta

    def after(self, now: datetime) -> datetime:
        return now + self.every

    def describe(self) -> str:
        return f"every {_human(self.every)}"


@dataclass(frozen=True, slots=True)
class Cron:
    """A run at each time a 5-field cron expression names (UTC)."""

    expression: str

    def after(self, now: datetime) -> datetime:
        from cronsim import CronSim

        start = now.astimezone(UTC).replace(microsecond=0)
        found: datetime = next(CronSim(self.expression, start))
        return found

    def describe(self) -> str:
        return f"cron {self.expression!r} (UTC)"


Schedule = Interval | Cron


def parse_cron(expression: str) -> Cron:
    """A :class:`Cron` for ``expression``, checked now (5 fields, each valid, some time matches)."""
    from cronsim import CronSim, CronSimError

    text = expression.strip()
    if len(text) > 200 or len(text.split()) != 5:
        raise ScheduleError("--cron", f"{expression!r}: a cron expression has 5 fields (minute hour day month weekday)")
    try:
        next(CronSim(text, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as e:
        raise ScheduleError("--cron", f"{expression!r}: {e}") from None
    except StopIteration:
        raise ScheduleError("--cron", f"{expression!r} never matches a date") from None
    return Cron(text)


def budget_reset(plan: Plan, ratelimits: Mapping[str, RateLimit], observed: datetime) -> datetime | None:
    """When the work ``plan`` deferred for the pull budget can go: None when nothing was deferred.

    Docker Hub counts pulls over a rolling window (``ratelimit-remaining: 0;w=21600``): the whole
    budget is back at most ``window`` seconds after ``observed`` (when the headers were read).
    Each deferred action waits for the registries it pulls from; the earliest of those resets
    is returned (the next run admits what fits then, and defers the rest again).  A registry
    that reported no window gives no time (the schedule decides).
    """
    times: list[datetime] = []
    for action in plan.actions:
        if not isinstance(action, Defer):
            continue
        windows = [
            ratelimits[host].window
            for host in action.action.costs()
            if host in ratelimits and ratelimits[host].window
        ]
        if windows:
            times.append(observed + timedelta(seconds=max(w for w in windows if w)))
    return min(times) if times else None


def rate_limited_reset(
    failed: Iterable[ActionOutcome], ratelimits: Mapping[str, RateLimit], observed: datetime
) -> datetime | None:
    """When copies that failed on a 429 (the pull budget ran out during the run) may be tried
    again: the registry's ``Retry-After`` when it sent one (at most a day), else its window
    (:func:`budget_reset`); None when no copy failed so."""
    times: list[datetime] = []
    for outcome in failed:
        error = outcome.error.cause if isinstance(outcome.error, CopyError) else outcome.error
        if not isinstance(error, RateLimitedError):
            continue
        if error.retry_after:
            times.append(observed + timedelta(seconds=min(error.retry_after, 86400.0)))
        elif isinstance(outcome.action, Copy | Update):
            limit = ratelimits.get(outcome.action.source.registry)
            if limit is not None and limit.window:
                times.append(observed + timedelta(seconds=limit.window))
    return min(times) if times else None


def next_run(
    schedule: Schedule,
    now: datetime,
    *,
    jitter: timedelta = timedelta(0),
    random: float = 0.0,
    retry_at: datetime | None = None,
) -> datetime:
    """The next run: the schedule's next time after ``now`` plus ``random`` (in [0, 1)) times
    ``jitter``; ``retry_at`` (deferred work's budget reset) instead when it comes earlier, and
    never before ``now``."""
    planned = schedule.after(now) + jitter * min(max(random, 0.0), 1.0)
    if retry_at is not None and retry_at < planned:
        return max(retry_at, now)
    return planned


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"
