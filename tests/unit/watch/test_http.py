"""/metrics, /healthz and /readyz over HTTP (a real server on 127.0.0.1, port 0)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from imagevet.policy import Policy
from imagevet.watch.http import HealthServer, make_app
from imagevet.watch.loop import CycleResult, Watcher, WatchOptions
from imagevet.watch.metrics import WatchMetrics
from imagevet.watch.schedule import Interval
from tests.unit.watch.test_loop import POLICY, _acquire, _load, _report


async def test_endpoints_follow_the_watch_state(tmp_path: Path) -> None:
    policy_file = tmp_path / "imagevet.yaml"
    policy_file.write_text(POLICY.format(name="app"))

    async def run(policy: Policy) -> CycleResult:
        return CycleResult(_report())

    metrics = WatchMetrics()
    watcher = Watcher(policy_file, _load(policy_file), load=_load, run=run, acquire=_acquire, metrics=metrics,
                      options=WatchOptions(schedule=Interval(timedelta(seconds=1)), poll=0.05))
    async with HealthServer(make_app(watcher, metrics, heartbeat_limit=0.5), "127.0.0.1", 0) as server, \
            aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}"

        async def get(path: str) -> tuple[int, str]:
            async with http.get(base + path) as r:
                return r.status, await r.text()

        assert await get("/healthz") == (200, "ok\n")
        assert await get("/readyz") == (503, "not ready: the first run has not finished\n")
        await watcher.cycle()
        assert await get("/readyz") == (200, "ready\n")
        status, body = await get("/metrics")
        assert status == 200
        names = {f.name for f in text_string_to_metric_families(body)}
        assert {"imagevet_runs", "imagevet_actions", "imagevet_bytes_copied", "imagevet_failures",
                "imagevet_held_updates", "imagevet_run_duration_seconds", "imagevet_policy_loaded"} <= names
        policy_file.write_text("version: [\n")
        await watcher.cycle()
        status, body = await get("/readyz")
        assert status == 503 and "does not load" in body
        watcher._heartbeat -= 10  # the loop stopped beating (stuck)
        status, body = await get("/healthz")
        assert status == 503 and body.startswith("not alive: no heartbeat for 10s")
