"""Bounded fan-out: a few workers over many items, the first failure cancelling the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

__all__ = ["FANOUT", "each", "gather"]

_I = TypeVar("_I")

FANOUT = 16
"""Workers walking one index's children (or one manifest's blobs, or one image's attachments)."""


async def each(items: Sequence[_I], fn: Callable[[_I], Awaitable[object]], limit: int = FANOUT) -> None:
    """``fn(item)`` for every item, at most ``limit`` at once; the first failure cancels the rest."""
    it = iter(items)

    async def worker() -> None:
        for item in it:
            await fn(item)

    await gather(worker() for _ in range(min(limit, len(items))))


async def gather(aws: Iterable[Awaitable[object]]) -> None:
    """Run awaitables concurrently; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    if not tasks:
        return
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
