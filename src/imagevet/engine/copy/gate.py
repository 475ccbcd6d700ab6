"""Many readers or one writer, for one manifest digest in one target repository."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["Gate"]


class Gate:
    """Many readers or one writer, for one manifest digest in one target repository.

    A PUT of a manifest (by digest or by tag) writes; a PUT of an index reads each child it lists,
    and so does a HEAD of the manifest at the target.  Release never awaits, so a cancelled
    holder cannot leave the gate closed.
    """

    __slots__ = ("readers", "writer", "_waiters")

    def __init__(self) -> None:
        self.readers = 0
        self.writer = False
        self._waiters: list[asyncio.Future[None]] = []

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        await self._until(lambda: not self.writer)
        self.readers += 1
        try:
            yield
        finally:
            self.readers -= 1
            self._wake()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        await self._until(lambda: not self.writer and self.readers == 0)
        self.writer = True
        try:
            yield
        finally:
            self.writer = False
            self._wake()
