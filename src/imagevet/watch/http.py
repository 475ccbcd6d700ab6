"""``/metrics``, ``/healthz`` and ``/readyz`` of ``imagevet watch``, served with ``aiohttp.web``.

* ``/metrics``: the watch metrics (:class:`~imagevet.watch.metrics.WatchMetrics`) in the
  Prometheus text format.
* ``/healthz``: 200 while the loop's heartbeat is recent (it beats every few seconds, running
  or sleeping), 503 when it has not beaten for :data:`HEARTBEAT_LIMIT` seconds: the process is
  stuck and should be restarted.
* ``/readyz``: 200 once a policy is loaded and the first run finished, 503 (with the reason)
  before that and while the policy file does not load.

Bodies are short plain text; nothing in them comes from a registry, and no secret is known here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from imagevet.watch.loop import Watcher
    from imagevet.watch.metrics import WatchMetrics

__all__ = ["HEARTBEAT_LIMIT", "HealthServer", "make_app"]

HEARTBEAT_LIMIT = 60.0
"""Seconds without a heartbeat after which ``/healthz`` fails."""


def make_app(watcher: Watcher, metrics: WatchMetrics, *, heartbeat_limit: float = HEARTBEAT_LIMIT) -> web.Application:
    async def metrics_view(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        age = watcher.heartbeat_age()
        if age > heartbeat_limit:
            return web.Response(status=503, text=f"not alive: no heartbeat for {age:.0f}s\n")
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if not watcher.ready:
            return web.Response(status=503, text=f"not ready: {watcher.not_ready_reason()}\n")
        return web.Response(text="ready\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class HealthServer:
    """The app on ``host:port`` (``async with``); :attr:`port` is the bound port (for port 0)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.host = host
        self.port = port

    async def __aenter__(self) -> HealthServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        for addr in self._runner.addresses:
            if isinstance(addr, tuple) and len(addr) >= 2:
                self.port = int(addr[1])
                break
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
