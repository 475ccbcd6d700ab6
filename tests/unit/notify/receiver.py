"""A local webhook receiver on 127.0.0.1 that records every request and answers as scripted.

``Receiver().start()`` serves one aiohttp app from a background thread (``ServerThread``);
``url(path)`` is where to send; ``script(path, [500, 200])`` sets the answers, in order, of the
next requests to ``path`` (the last one repeats; the default is 200).  An answer is a status, a
``(status, headers, body)`` tuple, or ``HANG`` (never answers).  ``requests`` lists what
arrived: path, query, headers, the raw body.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.server_thread import ServerThread

HANG = "hang"

Answer = int | str | tuple[int, dict[str, str], str]


@dataclass(frozen=True)
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._scripts: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = ServerThread([app], name="webhook-receiver")
        self.port = 0

    def start(self) -> Receiver:
        (self.port,) = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, answers: list[Answer]) -> None:
        with self._lock:
            self._scripts[path] = list(answers)

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            self.requests.append(Received(request.path, request.query_string, dict(request.headers), body, time.monotonic()))
            answers = self._scripts.get(request.path) or [200]
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer == HANG:
            await asyncio.sleep(3600)
        if isinstance(answer, int):
            return web.Response(status=answer, text="ok" if answer < 300 else f"error {answer}")
        assert isinstance(answer, tuple)
        status, headers, text = answer
        return web.Response(status=status, headers=headers, text=text)
