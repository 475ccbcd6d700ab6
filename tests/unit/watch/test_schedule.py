"""Schedule parsing and the next-run decision (a fake clock: plain datetimes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imagevet.digest import Digest
from imagevet.errors import CopyError, NotFoundError, RateLimitedError
from imagevet.plan import Copy, Defer, Hold, Noop, Plan
from imagevet.ratelimit import RateLimit
from imagevet.reference import Reference
from imagevet.sync import ActionOutcome
from imagevet.watch.schedule import (
    Cron,
    Interval,
    ScheduleError,
    budget_reset,
    next_run,
    parse_cron,
    parse_duration,
    rate_limited_reset,
)

T0 = datetime(2026, 11, 30, 13, 7, 30, tzinfo=UTC)
D = Digest.of(b"x")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("45", 45), ("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2d", 172800),
     (" 15M ", 900), ("1d2h3m4s", 93784)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, option="--interval") == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "not a duration"), ("15x", "not a duration"), ("-5m", "not a duration"), ("1.5h", "not a duration"),
     ("m", "not a duration"), ("0s", "at least 1s"), ("32d", "at most 31d"), ("99999999999", "not a duration")],
)
def test_bad_durations_name_the_option(text: str, why: str) -> None:
    with pytest.raises(ScheduleError, match=why) as caught:
        parse_duration(text, option="--interval")
    assert str(caught.value).startswith("--interval: ")


def test_zero_jitter_is_allowed() -> None:
    assert parse_duration("0s", option="--jitter", allow_zero=True) == timedelta(0)


def test_cron_next_times_are_utc_wall_clock() -> None:
    cron = parse_cron("*/15 * * * *")
    assert cron.after(T0) == datetime(2026, 11, 30, 13, 15, tzinfo=UTC)
    assert cron.after(datetime(2026, 11, 30, 13, 15, tzinfo=UTC)) == datetime(2026, 11, 30, 13, 30, tzinfo=UTC)
    assert parse_cron("0 3 * * 1").after(T0) == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)  # next Monday


@pytest.mark.parametrize(
    ("expr", "why"),
    [("*/15 * * *", "5 fields"), ("* * * * * *", "5 fields"), ("61 * * * *", "--cron: '61"),
     ("* * 31 2 *", "--cron"), ("@hourly", "5 fields")],
)
def test_bad_cron_expressions(expr: str, why: str) -> None:
    with pytest.raises(ScheduleError, match=why):
        parse_cron(expr)


def test_interval_counts_from_the_end_of_the_run_and_jitter_is_bounded() -> None:
    every = Interval(timedelta(minutes=15))
    assert next_run(every, T0) == T0 + timedelta(minutes=15)
    jitter = timedelta(seconds=60)
    assert next_run(every, T0, jitter=jitter, random=0.5) == T0 + timedelta(minutes=15, seconds=30)
    assert next_run(every, T0, jitter=jitter, random=7.0) == T0 + timedelta(minutes=16)  # never beyond


def _defer(registry: str = "docker.io") -> Defer:
    src = Reference.parse(f"{registry}/library/redis:7") if registry != "docker.io" else Reference.parse("redis:7")
    copy = Copy("redis", src, Reference.parse("127.0.0.1:5000/acme/redis:7"), D, pulls=3)
    return Defer("redis", copy, "pull budget: needs 3 pulls at docker.io, 0 left")


def test_deferred_work_runs_when_the_window_resets_if_that_is_before_the_schedule() -> None:
    plan = Plan((_defer(), Noop("a", Reference.parse("127.0.0.1:5000/acme/a:1"), D)), T0)
    limits = {"docker.io": RateLimit(limit=100, remaining=0, window=21600)}
    reset = budget_reset(plan, limits, T0)
    assert reset == T0 + timedelta(hours=6)
    daily = parse_cron("0 3 * * *")  # next 03:00 is ~14h away: the reset comes first
    assert next_run(daily, T0, retry_at=reset) == T0 + timedelta(hours=6)
    every = Interval(timedelta(minutes=15))  # the schedule comes first: it decides
    assert next_run(every, T0, retry_at=reset) == T0 + timedelta(minutes=15)


def test_no_deferred_work_or_no_window_leaves_the_schedule_alone() -> None:
    held = Plan((Hold("a", Reference.parse("127.0.0.1:5000/acme/a:1"), "pinned", upstream=D),), T0)
    assert budget_reset(held, {"docker.io": RateLimit(100, 0, 21600)}, T0) is None
    deferred = Plan((_defer(),), T0)
    assert budget_reset(deferred, {"docker.io": RateLimit(100, 0, None)}, T0) is None
    assert budget_reset(deferred, {}, T0) is None
    assert budget_reset(deferred, {"ghcr.io": RateLimit(100, 0, 60)}, T0) is None


def test_a_reset_already_passed_means_now() -> None:
    assert next_run(Cron("0 3 * * *"), T0, retry_at=T0 - timedelta(minutes=1)) == T0


def test_copies_failed_on_429_are_retried_at_retry_after_or_the_window() -> None:
    copy = _defer().action
    limits = {"docker.io": RateLimit(100, 0, 3600)}

    def failed(error: Exception) -> ActionOutcome:
        return ActionOutcome(copy, "failed", str(error), error=error)  # type: ignore[arg-type]

    url = "https://registry-1.docker.io/v2/library/redis/manifests/7"
    told = CopyError("redis:7", "x", "429", cause=RateLimitedError(429, "GET", url, retry_after=120))
    assert rate_limited_reset([failed(told)], limits, T0) == T0 + timedelta(seconds=120)
    silent = CopyError("redis:7", "x", "429", cause=RateLimitedError(429, "GET", url))
    assert rate_limited_reset([failed(silent)], limits, T0) == T0 + timedelta(hours=1)
    assert rate_limited_reset([failed(silent)], {}, T0) is None
    other = CopyError("redis:7", "x", "404", cause=NotFoundError(404, "GET", url))
    assert rate_limited_reset([failed(other)], limits, T0) is None
    forever = CopyError("redis:7", "x", "429", cause=RateLimitedError(429, "GET", url, retry_after=10**9))
    assert rate_limited_reset([failed(forever)], limits, T0) == T0 + timedelta(days=1)
