"""The watch loop with a fake run (no registry): skipping when the lock is held, stopping with
a grace period, reloading the policy, hooks and metrics."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from imagevet.digest import Digest
from imagevet.engine.run import RunReport
from imagevet.engine.runlock import RunLock, acquire_run_lock
from imagevet.engine.state import state_dir_for
from imagevet.lock import Lock
from imagevet.plan import Defer, Hold, Noop, Plan
from imagevet.plan.actions import Copy
from imagevet.policy import Policy, load_policy
from imagevet.ratelimit import RateLimit
from imagevet.reference import Reference
from imagevet.sync import ActionOutcome, SyncReport
from imagevet.watch.loop import CycleResult, Watcher, WatchOptions
from imagevet.watch.metrics import WatchMetrics
from imagevet.watch.schedule import Cron, Interval

D = Digest.of(b"image")
T0 = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)

POLICY = """\
version: 1
target:
  registry: 127.0.0.1:1
  namespace: acme
defaults:
  approval:
    approved_by: security@acme.example
    expires: 2099-12-31
images:
  - source: 127.0.0.1:1/up/{name}
    tags:
      tags: ["1"]
"""


def _load(path: Path) -> Policy:
    return load_policy(path, env={})


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "imagevet.yaml"
    path.write_text(POLICY.format(name="app"))
    return path


def _report(*actions: object, ok: bool = True) -> RunReport:
    plan = Plan(tuple(actions), T0)  # type: ignore[arg-type]
    outcomes = tuple(ActionOutcome(a, "done") for a in plan.actions)  # type: ignore[arg-type]
    return RunReport(SyncReport(plan, outcomes), Lock(), lock_changed=False, dry_run=True)


def _acquire(policy: Policy) -> RunLock:
    return acquire_run_lock(state_dir_for(policy.path), command="watch")


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _watcher(policy_file: Path, run: object, **kw: object) -> Watcher:
    options = kw.pop("options", WatchOptions(schedule=Interval(timedelta(seconds=1)), poll=0.05))
    return Watcher(
        policy_file, _load(policy_file), load=_load, run=run, acquire=_acquire,  # type: ignore[arg-type]
        options=options, **kw,  # type: ignore[arg-type]
    )


async def test_a_cycle_runs_hooks_and_counts_metrics(policy_file: Path) -> None:
    target = Reference.parse("127.0.0.1:1/acme/app:1")
    report = _report(Noop("app", target, D), Hold("app", target, "pinned: upstream moved", wanted=D, upstream=Digest.of(b"new")))
    seen: list[RunReport] = []

    async def run(policy: Policy) -> CycleResult:
        return CycleResult(report, {"docker.io": RateLimit(100, 42, 21600)})

    async def hook(r: RunReport) -> None:
        seen.append(r)

    async def broken(r: RunReport) -> None:
        raise RuntimeError("webhook down")

    metrics = WatchMetrics()
    watcher = _watcher(policy_file, run, hooks=[broken, hook], metrics=metrics,
                       options=WatchOptions(schedule=Interval(timedelta(seconds=1)), once=True, poll=0.05))
    assert not watcher.ready
    assert await watcher.serve() == 0
    assert seen == [report]  # the failing hook before it did not stop it
    assert watcher.ready
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition()[0].decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("imagevet_runs_total", (("result", "ok"),))] == 1
    assert samples[("imagevet_actions_total", (("kind", "noop"),))] == 1
    assert samples[("imagevet_actions_total", (("kind", "hold"),))] == 1
    assert samples[("imagevet_held_updates", ())] == 1
    assert samples[("imagevet_pull_budget_remaining", (("registry", "docker.io"),))] == 42
    assert samples[("imagevet_last_success_timestamp_seconds", (("entry", "127.0.0.1:1/up/app"),))] > T0.timestamp()


async def test_a_cycle_finding_the_lock_held_is_skipped(policy_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    runs: list[Policy] = []

    async def run(policy: Policy) -> CycleResult:
        runs.append(policy)
        return CycleResult(_report())

    metrics = WatchMetrics()
    watcher = _watcher(policy_file, run, metrics=metrics,
                       options=WatchOptions(schedule=Interval(timedelta(seconds=1)), once=True, poll=0.05))
    with acquire_run_lock(state_dir_for(policy_file), command="sync"), caplog.at_level(logging.INFO, "imagevet.watch"):
        assert await watcher.serve() == 1
    assert runs == []
    assert "cycle 1 skipped: another imagevet run holds" in caplog.text and "(sync)" in caplog.text
    assert 'imagevet_runs_total{result="skipped"} 1.0' in metrics.exposition()[0].decode()


async def test_a_stop_lets_the_run_finish_within_the_grace(policy_file: Path) -> None:
    release = asyncio.Event()
    finished: list[bool] = []

    async def run(policy: Policy) -> CycleResult:
        await release.wait()
        finished.append(True)
        return CycleResult(_report())

    watcher = _watcher(policy_file, run, options=WatchOptions(schedule=Interval(timedelta(seconds=1)), grace=5, poll=0.05))
    serving = asyncio.ensure_future(watcher.serve())
    await asyncio.sleep(0.2)
    watcher.request_stop()
    await asyncio.sleep(0.2)
    assert not serving.done()  # within the grace: the run goes on
    release.set()
    assert await asyncio.wait_for(serving, 5) == 0
    assert finished == [True] and watcher.first_run_done


async def test_a_stop_cancels_a_run_that_outlives_the_grace(policy_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    cancelled: list[bool] = []

    async def run(policy: Policy) -> CycleResult:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        raise AssertionError("not reached")

    watcher = _watcher(policy_file, run, options=WatchOptions(schedule=Interval(timedelta(seconds=1)), grace=0.3, poll=0.05))
    with caplog.at_level(logging.INFO, "imagevet.watch"):
        serving = asyncio.ensure_future(watcher.serve())
        await asyncio.sleep(0.2)
        watcher.request_stop()
        assert await asyncio.wait_for(serving, 5) == 0
    assert cancelled == [True]
    assert "cycle 1 cancelled" in caplog.text
    # the run lock was let go: the next taker gets it, with no stale record
    with acquire_run_lock(state_dir_for(policy_file), command="sync") as held:
        assert held.stale is None


async def test_a_broken_policy_keeps_the_last_good_one_until_it_loads_again(
    policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    used: list[str] = []

    async def run(policy: Policy) -> CycleResult:
        used.append(str(policy.entries[0].source))
        return CycleResult(_report())

    metrics = WatchMetrics()
    watcher = _watcher(policy_file, run, metrics=metrics)
    with caplog.at_level(logging.INFO, "imagevet.watch"):
        assert await watcher.cycle() == 0
        assert watcher.ready
        policy_file.write_text(POLICY.format(name="app").replace("tags: [\"1\"]", "tags: 5"))
        assert await watcher.cycle() == 0  # runs with the last good policy
        assert not watcher.ready and "does not load" in watcher.not_ready_reason()
        assert f"{policy_file}:12:13: images[0].tags.tags" in caplog.text  # file:line:column of the error
        assert "imagevet_policy_loaded 0.0" in metrics.exposition()[0].decode()
        policy_file.write_text(POLICY.format(name="other"))
        assert await watcher.cycle() == 0
    assert watcher.ready
    assert used == ["127.0.0.1:1/up/app", "127.0.0.1:1/up/app", "127.0.0.1:1/up/other"]
    assert "policy reloaded (the file changed)" in caplog.text


async def test_a_reload_request_reads_the_file_even_when_its_hash_is_the_same(policy_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    loads: list[Path] = []

    def load(path: Path) -> Policy:
        loads.append(path)
        return _load(path)

    async def run(policy: Policy) -> CycleResult:
        return CycleResult(_report())

    watcher = Watcher(policy_file, _load(policy_file), load=load, run=run, acquire=_acquire,
                      options=WatchOptions(schedule=Interval(timedelta(seconds=1)), poll=0.05))
    await watcher.cycle()
    assert loads == []
    watcher.request_reload()
    with caplog.at_level(logging.INFO, "imagevet.watch"):
        await watcher.cycle()
    assert loads == [policy_file] and "policy reloaded (SIGHUP)" in caplog.text


async def test_deferred_work_schedules_the_next_run_at_the_budget_reset(policy_file: Path) -> None:
    clock = FakeClock()
    copy = Copy("app", Reference.parse("redis:7"), Reference.parse("127.0.0.1:1/acme/app:1"), D, pulls=2)
    report = _report(Defer("app", copy, "pull budget: needs 2 pulls at docker.io, 0 left"))

    async def run(policy: Policy) -> CycleResult:
        clock.now += timedelta(seconds=30)  # the run takes 30 s
        return CycleResult(report, {"docker.io": RateLimit(100, 0, 3600)})

    daily = Cron("0 3 * * *")
    watcher = _watcher(policy_file, run, clock=clock, rng=lambda: 0.0,
                       options=WatchOptions(schedule=daily, poll=0.05))
    await watcher.cycle()
    assert watcher.next_due == T0 + timedelta(seconds=30) + timedelta(hours=1)  # not tomorrow 03:00

    async def run_nothing_deferred(policy: Policy) -> CycleResult:
        return CycleResult(_report(), {"docker.io": RateLimit(100, 0, 3600)})

    watcher = _watcher(policy_file, run_nothing_deferred, clock=clock, rng=lambda: 0.0,
                       options=WatchOptions(schedule=daily, poll=0.05))
    await watcher.cycle()
    assert watcher.next_due == datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


async def test_once_waits_its_jitter_before_the_run(policy_file: Path) -> None:
    clock = FakeClock()
    started: list[datetime] = []

    async def run(policy: Policy) -> CycleResult:
        started.append(clock.now)
        return CycleResult(_report())

    async def tick() -> None:
        while not started:
            await asyncio.sleep(0.01)
            clock.now += timedelta(seconds=1)

    watcher = _watcher(policy_file, run, clock=clock, rng=lambda: 0.5, options=WatchOptions(
        schedule=Interval(timedelta(minutes=5)), jitter=timedelta(seconds=40), once=True, poll=0.005))
    ticking = asyncio.ensure_future(tick())
    assert await asyncio.wait_for(watcher.serve(), 10) == 0
    await ticking
    assert started and T0 + timedelta(seconds=20) <= started[0] <= T0 + timedelta(seconds=22)
