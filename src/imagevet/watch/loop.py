"""The watch loop: sync on a schedule, one run at a time, reload the policy, stop cleanly.

:class:`Watcher` owns no registry and reads no environment: the caller (``imagevet watch``)
gives it a ``load`` function (policy file -> :class:`~imagevet.policy.Policy`, raising the
loader's errors), a ``run`` function (policy -> :class:`CycleResult`, the same sync as
``imagevet sync``: it reads the lock file afresh, builds the stores, calls
:func:`imagevet.engine.run.run_sync`) and ``acquire`` (policy -> the held
:class:`~imagevet.engine.runlock.RunLock`).  One cycle:

1. take the run lock without waiting; held by another run (``imagevet sync``, a second
   watch): the cycle is skipped with a log line;
2. run, in a task of its own; on a stop request (SIGTERM, SIGINT) the run gets ``grace``
   seconds to finish, then it is cancelled.  Cancelling is safe: the copy engine pushes a tag
   only after everything it points to is at the target, so a cancelled copy leaves the tag
   where it was (absent, or the previous complete image), and an OCI layout's ``index.json``
   is only ever replaced whole (temporary file, rename);
3. the ``on_report`` hooks (each awaited in turn; one that fails is logged, the others still
   run), the metrics, one log line;
4. sleep until the next run (:func:`~imagevet.watch.schedule.next_run`: the schedule, the
   jitter, or the pull-budget reset when work was deferred).

Every ``poll`` seconds, sleeping or running, the loop beats its heartbeat (``/healthz``) and
checks the policy file: when its content hash changed (or on :meth:`request_reload`, SIGHUP)
it is loaded again.  A policy that no longer loads is logged with every error
(``file:line:column``), the last good one is kept, and the process is not ready (``/readyz``)
until the file loads again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagevet.engine.runlock import RunLock, RunLockHeldError
from imagevet.errors import ImagevetError
from imagevet.policy import Policy
from imagevet.policy.located import read_yaml_file
from imagevet.watch.metrics import WatchMetrics, held_updates
from imagevet.watch.schedule import Schedule, budget_reset, next_run, rate_limited_reset

if TYPE_CHECKING:
    from imagevet.engine.run import RunReport
    from imagevet.ratelimit import RateLimit

__all__ = ["CycleResult", "ReportHook", "WatchOptions", "Watcher"]

log = logging.getLogger("imagevet.watch")

ReportHook = Callable[["RunReport"], Awaitable[None]]
"""Called after each finished run with its report (notifications are one)."""


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one run gives back: its report and the pull budgets the stores last saw."""

    report: RunReport
    ratelimits: Mapping[str, RateLimit] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WatchOptions:
    schedule: Schedule
    jitter: timedelta = timedelta(0)
    """At most this much random delay is added to each scheduled time."""
    once: bool = False
    """One cycle, then return its exit code."""
    grace: float = 30.0
    """Seconds a run gets to finish after a stop request, before it is cancelled."""
    poll: float = 2.0
    """Seconds between heartbeats and policy file checks."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Watcher:
    """See the module docstring.  :meth:`serve` runs until :meth:`request_stop`."""

    def __init__(
        self,
        policy_path: Path,
        policy: Policy,
        *,
        load: Callable[[Path], Policy],
        run: Callable[[Policy], Awaitable[CycleResult]],
        acquire: Callable[[Policy], RunLock],
        options: WatchOptions,
        hooks: Sequence[ReportHook] = (),
        metrics: WatchMetrics | None = None,
        clock: Callable[[], datetime] = _utc_now,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy_path = policy_path
        self.policy = policy
        """The policy in force: the last one that loaded."""
        self.policy_ok = True
        """Whether the policy file loads now (False: ``policy`` is the last good one)."""
        self._load = load
        self._run = run
        self._acquire = acquire
        self.options = options
        self.hooks = list(hooks)
        self.metrics = metrics
        self._clock = clock
        self._rng = rng
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._digest = self._file_digest()
        self._heartbeat = time.monotonic()
        self.cycles = 0
        self.first_run_done = False
        self.next_due: datetime | None = None
        self.last_report: RunReport | None = None
        if metrics is not None:
            metrics.policy_loaded.set(1)

    # -- state for the health endpoints ---------------------------------------------------------

    @property
    def ready(self) -> bool:
        """A policy loads and the first run has finished."""
        return self.policy_ok and self.first_run_done

    def not_ready_reason(self) -> str:
        if not self.policy_ok:
            return f"the policy file {self.policy_path} does not load; running with the last good one"
        if not self.first_run_done:
            return "the first run has not finished"
        return ""

    def heartbeat_age(self) -> float:
        return time.monotonic() - self._heartbeat

    def _beat(self) -> None:
        self._heartbeat = time.monotonic()

    # -- requests (signal handlers call these) --------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the policy file ------------------------------------------------------------------------

    def _file_digest(self) -> str | None:
        try:
            return hashlib.sha256(read_yaml_file(self.policy_path).encode()).hexdigest()
        except (OSError, UnicodeDecodeError, ImagevetError):
            return None

    async def check_policy(self, *, force: bool = False) -> bool:
        """Load the policy again when its file changed (or ``force``); whether it was loaded."""
        digest = await asyncio.to_thread(self._file_digest)
        if not force and digest == self._digest and digest is not None:
            return False
        if not force and digest is None and not self.policy_ok:
            return False  # still unreadable: already logged
        self._digest = digest
        why = "SIGHUP" if force else "the file changed"
        try:
            policy = await asyncio.to_thread(self._load, self.policy_path)
        except ImagevetError as e:
            self.policy_ok = False
            if self.metrics is not None:
                self.metrics.policy_loaded.set(0)
                self.metrics.reloads.labels("error").inc()
            log.error(
                "policy reload (%s) failed; keeping the last good policy, not ready:\n%s", why, e
            )
            return False
        self.policy, self.policy_ok = policy, True
        if self.metrics is not None:
            self.metrics.policy_loaded.set(1)
            self.metrics.reloads.labels("ok").inc()
        log.info("policy reloaded (%s): %d entries", why, len(policy.entries))
        return True

    async def _tick(self) -> None:
        self._beat()
        if self._reload.is_set():
            self._reload.clear()
            await self.check_policy(force=True)
        else:
            await self.check_policy()

    # -- the loop -------------------------------------------------------------------------------

    async def serve(self) -> int:
        """Run cycles until a stop request (exit code 0) or, with ``once``, one cycle (its code:
        0 ok, 1 failed or skipped)."""
        log.info(
            "watching %s: %s%s", self.policy_path, self.options.schedule.describe(),
            f", jitter up to {int(self.options.jitter.total_seconds())}s" if self.options.jitter else "",
        )
        if self.options.once and self.options.jitter:  # cron-style: many hosts do not start at once
            await self._sleep_until(self._clock() + self.options.jitter * min(max(self._rng(), 0.0), 1.0))
        while not self.stopping:
            code = await self.cycle()
            if self.options.once:
                return code
            if self.stopping or self.next_due is None:
                break
            await self._sleep_until(self.next_due)
        log.info("stopped")
        return 0

    def _schedule(self, result: CycleResult | None) -> str:
        """Set :attr:`next_due` after a cycle; the words for the cycle's log line."""
        if self.options.once or self.stopping:
            return ""
        finished = self._clock()
        retry_at = None
        if result is not None:
            waits = [
                budget_reset(result.report.plan, result.ratelimits, finished),
                rate_limited_reset(result.report.failed, result.ratelimits, finished),
            ]
            retry_at = min((w for w in waits if w is not None), default=None)
        self.next_due = next_run(
            self.options.schedule, finished, jitter=self.options.jitter, random=self._rng(),
            retry_at=retry_at,
        )
        if self.metrics is not None:
            self.metrics.next_run.set(self.next_due.timestamp())
        if retry_at is not None and self.next_due == max(retry_at, finished):
            return f"; deferred work waits for the pull budget: next run {_stamp(self.next_due)}"
        return f"; next run {_stamp(self.next_due)}"

    async def _sleep_until(self, due: datetime) -> None:
        while not self.stopping:
            left = (due - self._clock()).total_seconds()
            if left <= 0:
                return
            stop = asyncio.ensure_future(self._stop.wait())
            hup = asyncio.ensure_future(self._reload.wait())
            try:
                await asyncio.wait({stop, hup}, timeout=min(left, self.options.poll),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                hup.cancel()
            await self._tick()

    async def cycle(self) -> int:
        """One run under the run lock; its exit code (0 ok or cancelled by a stop, 1 failed,
        skipped or not started).  Sets :attr:`next_due` and logs one line."""
        self.cycles += 1
        n = self.cycles
        await self._tick()
        policy = self.policy
        try:
            held = await asyncio.to_thread(self._acquire, policy)
        except RunLockHeldError as e:
            self._count("skipped")
            log.warning("cycle %d skipped: %s%s", n, e, self._schedule(None))
            return 1
        except ImagevetError as e:
            self._count("error")
            log.error("cycle %d could not start: %s%s", n, e, self._schedule(None))
            return 1
        with held:
            if held.stale is not None:
                log.warning(
                    "cleared a stale run lock %s left by %s (that process is gone)",
                    held.path, held.stale.describe(),
                )
            started = time.monotonic()
            result, cancelled = await self._supervise(asyncio.ensure_future(self._run(policy)), n)
        seconds = time.monotonic() - started
        if cancelled:
            self._count("cancelled")
            log.warning(
                "cycle %d cancelled after %.1fs to stop (a tag is pushed last: none was left on a "
                "partial image; the next run resumes)", n, seconds,
            )
            return 0
        if not isinstance(result, CycleResult):
            self._count("error")
            log.error("cycle %d failed after %.1fs: %s%s", n, seconds, result, self._schedule(None))
            return 1
        report = result.report
        finished = self._clock()
        self.last_report = report
        self.first_run_done = True
        for hook in self.hooks:
            try:
                await hook(report)
            except Exception as e:  # a hook's failure never stops the watch, nor the other hooks
                log.error("cycle %d: after-run hook %s failed: %s", n, getattr(hook, "__name__", "?"), e)
        if self.metrics is not None:
            self.metrics.observe_run(
                report, entries=[e.name for e in policy.entries], ratelimits=result.ratelimits,
                seconds=seconds, finished=finished,
            )
        self._log_cycle(n, report, seconds, self._schedule(result))
        return 0 if report.ok else 1

    async def _supervise(
        self, task: asyncio.Future[CycleResult], n: int
    ) -> tuple[CycleResult | BaseException | None, bool]:
        """Wait for ``task``; after a stop request give it ``grace`` seconds, then cancel it.
        (its result or error, whether it was cancelled)."""
        try:
            return await self._wait_for(task, n)
        except asyncio.CancelledError:  # the loop itself is going away: the run goes with it
            task.cancel()
            raise

    async def _wait_for(
        self, task: asyncio.Future[CycleResult], n: int
    ) -> tuple[CycleResult | BaseException | None, bool]:
        deadline: float | None = None
        while not task.done():
            stop = asyncio.ensure_future(self._stop.wait())
            try:
                timeout = self.options.poll
                if deadline is not None:
                    timeout = max(0.0, min(timeout, deadline - time.monotonic()))
                waited: set[asyncio.Future[Any]] = {task} if deadline is not None else {task, stop}
                await asyncio.wait(
                    waited,
                    timeout=timeout, return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stop.cancel()
            await self._tick()
            if task.done():
                break
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.options.grace
                log.warning("cycle %d: stop requested; the run may finish within %.0fs", n, self.options.grace)
            if deadline is not None and time.monotonic() >= deadline:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    return None, True
                except BaseException as e:  # it ended on its own meanwhile
                    return e, False
                return task.result(), False
        try:
            return task.result(), False
        except asyncio.CancelledError:
            return None, True
        except Exception as e:
            return e, False

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.runs.labels(result).inc()

    def _log_cycle(self, n: int, report: RunReport, seconds: float, next_words: str) -> None:
        counts = report.counts()
        order = ["copy", "update", "create-repo", "update-repo", "noop", "hold", "defer", "prune", "failed", "skipped"]
        parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
        held = held_updates(report)
        line = (
            f"cycle {n} {'ok' if report.ok else 'finished with failures'}: "
            f"{', '.join(parts) or 'nothing to do'}; "
            f"{len(report.failed)} failed, {len(report.problems)} problems, {held} held updates; "
            f"{report.bytes_copied / (1 << 20):.1f} MiB copied in {seconds:.2f}s{next_words}"
        )
        (log.info if report.ok else log.warning)("%s", line)
        for outcome in report.failed:
            log.warning("cycle %d: failed %s: %s", n, outcome.action.describe(), outcome.message)
        for p in report.problems:
            log.warning("cycle %d: %s (%s): %s", n, p.entry, p.source, p.message)
        for error in report.errors:
            log.error("cycle %d: %s", n, error)
