"""Run aiohttp.web applications on 127.0.0.1 in a background thread with its own event loop.

The servers built on this (token server, fault proxy, fake registry) work the same from sync
tests and from async tests, whatever event loop pytest-asyncio gives the test.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import socket
import threading
import weakref
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from tests.support.ports import LOOPBACK

__all__ = ["ServerThread"]

T = TypeVar("T")

_LIVE: weakref.WeakSet[ServerThread] = weakref.WeakSet()


class ServerThread:
    """Serve one or more aiohttp apps, each on its own free port, from a daemon thread."""

    def __init__(self, apps: list[web.Application], *, name: str = "test-server") -> None:
        self._apps = apps
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []
        self.ports: list[int] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's own event loop (only valid between start and stop)."""
        if self._loop is None:
            raise RuntimeError(f"{self._name} is not running")
        return self._loop

    def start(self, timeout: float = 10.0) -> list[int]:
        """Start serving; return the port of each app, in order."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} already started")
        ready: Future[list[int]] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=self._name, daemon=True
        )
        self._thread.start()
        self.ports = ready.result(timeout)
        _LIVE.add(self)
        return self.ports

    def _main(self, ready: Future[list[int]]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            ports = loop.run_until_complete(self._setup())
        except BaseException as e:  # report start-up failures to start()
            if not ready.done():
                ready.set_exception(e)
            loop.close()
            return
        # Report readiness from inside run_forever: a stop() that follows start() at once is
        # then handled by this loop run, not swallowed by the set-up run above.
        loop.call_soon(ready.set_result, ports)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self) -> list[int]:
        ports: list[int] = []
        for app in self._apps:
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
            await runner.setup()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, 0))
            site = web.SockSite(runner, sock)
            await site.start()
            self._runners.append(runner)
            ports.append(int(sock.getsockname()[1]))
        return ports

    async def _cleanup(self) -> None:
        for runner in self._runners:
            with contextlib.suppress(Exception):  # best effort on teardown
                await asyncio.wait_for(runner.cleanup(), 5)
        self._runners.clear()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the server loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop serving and join the thread; idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        _LIVE.discard(self)


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()
