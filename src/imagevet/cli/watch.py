"""``imagevet watch``: sync on a schedule, as a service; metrics and health on HTTP.

The loop is :class:`imagevet.watch.loop.Watcher`; this module builds what it needs from the
options and the environment (the same pieces ``imagevet sync`` builds), installs the signal
handlers (SIGTERM/SIGINT: stop, SIGHUP: reload the policy) and serves the endpoints.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from imagevet.cli._policy import (
    POLICY_OPTION,
    hub_manager,
    lock_problems,
    now_utc,
    state_dir,
    state_store,
)
from imagevet.cli.common import EXIT_USAGE, fail, handle_errors, make_store, run, terminal_safe
from imagevet.engine.copy import DEFAULT_JOBS

if TYPE_CHECKING:
    from imagevet.engine.run import RunReport
    from imagevet.engine.runlock import RunLock
    from imagevet.notify import NotifyOutcome
    from imagevet.policy import Policy
    from imagevet.watch.loop import CycleResult
    from imagevet.watch.schedule import Schedule

__all__ = ["parse_listen", "register"]

DEFAULT_LISTEN = "127.0.0.1:9108"
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]*)):(?P<port>\d{1,5})$")


def register(app: typer.Typer) -> None:
    app.command("watch")(watch_command)


def parse_listen(value: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:9108`` for IPv6; an empty host is every address) -> (host, port);
    an empty value -> None (no HTTP server); anything else is a usage error (exit 2)."""
    text = value.strip()
    if not text:
        return None
    m = _LISTEN.match(text)
    port = int(m["port"]) if m else -1
    if m is None or not 0 <= port <= 65535:
        fail(f"--listen {value!r}: expected HOST:PORT (127.0.0.1:9108, [::1]:9108, :9108), or '' to disable", EXIT_USAGE)
    host = m["v6"] or m["host"] or "0.0.0.0"
    return host, port


def _schedule(interval: str | None, cron: str | None, jitter: str) -> tuple[Schedule, timedelta]:
    from imagevet.watch.schedule import Interval, ScheduleError, parse_cron, parse_duration

    with handle_errors():
        if interval is not None and cron is not None:
            raise ScheduleError("--cron", "give --interval or --cron, not both")
        schedule: Schedule = (
            parse_cron(cron) if cron is not None
            else Interval(parse_duration(interval or "15m", option="--interval"))
        )
        spread = parse_duration(jitter, option="--jitter", allow_zero=True)
        limit = schedule.every if isinstance(schedule, Interval) else timedelta(hours=1)
        if spread > limit:
            raise ScheduleError("--jitter", f"{jitter!r}: at most {'the interval' if isinstance(schedule, Interval) else '1h'}")
    return schedule, spread


def _load_policy(path: Path) -> Policy:
    """The policy at ``path`` (raising the loader's errors: the watch keeps its last good one)."""
    from imagevet.policy import load_policy

    return load_policy(path, env=os.environ, today=now_utc().date())


def _acquire(policy: Policy) -> RunLock:
    from imagevet.engine.runlock import acquire_run_lock

    return acquire_run_lock(state_dir(policy), command="watch")


def log_notifications(outcome: NotifyOutcome) -> None:
    """The watch's log lines for a run's notifications: one per delivery sent or failed."""
    log = logging.getLogger("imagevet.watch")
    for delivery in outcome.sent:
        log.info("%s", terminal_safe(delivery.describe()))
    for delivery in outcome.failed:
        log.warning("%s", terminal_safe(delivery.describe()))
    for problem in outcome.problems:
        log.warning("notify: %s", terminal_safe(problem))


def _show_info_lines() -> None:
    """The watch's one line per cycle is INFO: shown unless ``--quiet`` (or more with ``--debug``)."""
    root = logging.getLogger("imagevet")
    if root.level == logging.WARNING:
        logging.getLogger("imagevet.watch").setLevel(logging.INFO)


def watch_command(
    policy: Path = POLICY_OPTION,
    interval: str | None = typer.Option(None, "--interval", help="Time between runs: 30s, 15m (default), 1h, 1h30m, 1d."),
    cron: str | None = typer.Option(None, "--cron", help="Run at the times of a 5-field cron expression (UTC) instead."),
    jitter: str = typer.Option("0s", "--jitter", help="Add a random delay up to this much to each run (at most the interval)."),
    once: bool = typer.Option(False, "--once", help="One run, then exit with sync's exit code (for cron)."),
    grace: int = typer.Option(30, "--grace", min=0, max=3600, help="Seconds a run may take to finish after SIGTERM."),
    listen: str = typer.Option(DEFAULT_LISTEN, "--listen", help="Serve /metrics, /healthz, /readyz on HOST:PORT ('' to disable)."),
    no_listen: bool = typer.Option(False, "--no-listen", help="Serve no HTTP endpoints."),
    prune: bool = typer.Option(False, "--prune", help="Delete target tags the policy no longer selects."),
    jobs: int = typer.Option(DEFAULT_JOBS, "--jobs", "-j", min=1, max=64, help="Concurrent blob transfers."),
    images: int = typer.Option(4, "--images", min=1, max=32, help="Images copied at once."),
    budget_reserve: int = typer.Option(0, "--budget-reserve", min=0, help="Docker Hub pulls to leave unspent."),
    insecure: list[str] = typer.Option([], "--insecure", help="Plain-HTTP registry host (repeatable)."),
) -> None:
    """Sync on a schedule, one run at a time; reload the policy when it changes (or on SIGHUP);
    stop cleanly on SIGTERM; serve metrics and health checks."""
    schedule, spread = _schedule(interval, cron, jitter)
    address = None if no_listen or once else parse_listen(listen)
    with handle_errors():
        first = _load_policy(policy)
    from imagevet.cli.audit import sync_setup

    sync_setup(first)  # a bad signing key is exit 2 at start, as for sync (each run checks it again)
    from imagevet.cli.verify import policy_verifiers, read_verifiers

    policy_verifiers(first)  # so is a verify: key that cannot be read (each run reads them again)
    from imagevet.cli.signing import read_sign_key

    read_sign_key(first)  # and the sign: key of the mirrors' attestations (read again each run)
    _show_info_lines()

    from imagevet.engine.run import RunOptions, run_sync
    from imagevet.watch.loop import CycleResult, Watcher, WatchOptions

    options = RunOptions(prune=prune, jobs=jobs, images=images, budget_reserve=budget_reserve)

    async def run_cycle(current: Policy) -> CycleResult:
        """Exactly what ``imagevet sync`` does, with the lock file read afresh."""
        from dataclasses import replace

        from imagevet.cli.audit import audit_setup, load_signer
        from imagevet.lock import lock_path_for, read_lock

        lock_path = lock_path_for(current.path)
        lock = read_lock(lock_path)  # `imagevet approve` may have changed it since the last run
        problems = lock_problems(current, lock)
        usable = replace(current, entries=tuple(e for e in current.entries if not lock.problems(e.key)))
        audit = audit_setup(usable, signer=load_signer(os.environ))
        run_options = replace(options, sign_key=read_sign_key(usable))  # sign: as sync does
        # the keys of verify: rules, read again each run (a key unreadable now skips this run)
        verifiers = read_verifiers(usable, os.environ) if any(e.verify for e in usable.entries) else {}
        async with make_store(insecure=insecure) as store, hub_manager(usable) as manager:
            report = await run_sync(
                usable, lock, source=store, target=store, state=state_store(usable), manager=manager,
                audit=audit, options=run_options, clock=now_utc, lock_problems=problems, lock_path=lock_path,
                verifiers=verifiers,
            )
            return CycleResult(report, dict(store.ratelimits))

    async def _main() -> int:
        import asyncio
        import contextlib
        import signal

        from imagevet.watch.metrics import WatchMetrics

        metrics = WatchMetrics() if address is not None else None
        watcher = Watcher(
            policy, first, load=_load_policy, run=run_cycle, acquire=_acquire, metrics=metrics,
            options=WatchOptions(schedule=schedule, jitter=spread, once=once, grace=float(grace), poll=1.0),
        )
        # after-run hooks, each `async (RunReport) -> None`, called in order after every finished
        # run (watcher.policy is the policy in force)

        async def notify(report: RunReport) -> None:
            """Tell people what needs them (each event once), as ``imagevet sync`` does."""
            if not watcher.policy.notify:
                return
            from imagevet.notify import notify_run

            outcome = await notify_run(
                report, watcher.policy, state_store(watcher.policy), now=now_utc(), env=os.environ
            )
            log_notifications(outcome)

        watcher.hooks.append(notify)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, watcher.request_stop)
        loop.add_signal_handler(signal.SIGHUP, watcher.request_reload)
        async with contextlib.AsyncExitStack() as stack:
            if address is not None and metrics is not None:
                from imagevet.watch.http import HealthServer, make_app

                server = HealthServer(make_app(watcher, metrics), *address)
                try:
                    await stack.enter_async_context(server)
                except OSError as e:
                    fail(f"--listen {listen}: cannot listen: {e.strerror or e}", EXIT_USAGE)
                shown = f"[{server.host}]" if ":" in server.host else server.host
                logging.getLogger("imagevet.watch").info(
                    "serving /metrics, /healthz, /readyz on http://%s:%d", shown, server.port
                )
            return await watcher.serve()

    code = run(_main)
    raise typer.Exit(code)
