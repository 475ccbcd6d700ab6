"""TransferTimeouts: a body that stalls or crawls fails in bounded time; a slow consumer does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import TransferTimeoutError
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.registry import TransferTimeouts
from imagevet.registry.transport import Request, Response
from tests.unit.registry.helpers import REGISTRY, make_client


def body(pieces: int, pause: float, first_pause: float = 0.0) -> Response:
    async def stream() -> AsyncIterator[bytes]:
        await asyncio.sleep(first_pause)
        for _ in range(pieces):
            yield b"x"
            await asyncio.sleep(pause)

    return Response(200, CIMultiDictProxy(CIMultiDict()), "http://r.example/b", stream())


async def drain(resp: Response, consumer_pause: float = 0.0) -> int:
    got = 0
    async for chunk in resp.aiter_bytes():
        got += len(chunk)
        await asyncio.sleep(consumer_pause)
    return got


async def test_stalled_body_fails_after_the_idle_timeout() -> None:
    resp = body(1, 30.0)
    resp.pace("GET", TransferTimeouts(idle=0.2, window=5.0))
    started = time.monotonic()
    with pytest.raises(TransferTimeoutError, match="stalled: no data for 0.2 s"):
        await drain(resp)
    assert time.monotonic() - started < 3.0


async def test_crawling_body_fails_after_one_window() -> None:
    resp = body(10_000, 0.01)  # about 100 bytes/s
    resp.pace("GET", TransferTimeouts(idle=5.0, min_rate=1000, window=0.3))
    started = time.monotonic()
    with pytest.raises(TransferTimeoutError, match="too slow: .* bytes in 0.3 s"):
        await drain(resp)
    assert time.monotonic() - started < 3.0


async def test_time_the_consumer_spends_does_not_count() -> None:
    resp = body(3, 0.0)
    resp.pace("GET", TransferTimeouts(idle=0.3, min_rate=1000, window=0.3))
    assert await drain(resp, consumer_pause=0.6) == 3  # 1.8 s in all, far below the minimum rate


async def test_a_body_at_the_minimum_rate_completes() -> None:
    resp = body(20, 0.01)  # about 100 bytes/s for 0.2 s
    resp.pace("GET", TransferTimeouts(idle=1.0, min_rate=10, window=0.5))
    assert await drain(resp) == 20


def test_timeouts_are_validated() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            TransferTimeouts.within(bad)
    assert TransferTimeouts.within(5) == TransferTimeouts(connect=5, idle=5, window=5)


async def test_upload_the_registry_stops_taking_fails_after_the_idle_timeout() -> None:
    """A target that takes the first piece of a streamed blob upload, then no more."""
    data = b"x" * 4096
    desc = Descriptor(mediatype.OCI_LAYER, Digest.of(data), len(data))
    taken: list[bytes] = []

    async def handler(req: Request) -> Response:
        if req.method == "POST":
            return Response.from_bytes(202, {"Location": "/v2/team/app/blobs/uploads/u1"})
        if req.method == "DELETE":
            return Response.from_bytes(204)
        assert req.body is not None and not isinstance(req.body, bytes)
        async for chunk in req.body:
            taken.append(chunk)
            await asyncio.sleep(30)  # the registry stops reading
        return Response.from_bytes(201)

    async def source() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 1024):
            yield data[i : i + 1024]

    client, _ = make_client(handler, timeouts=TransferTimeouts(idle=0.2, window=5.0))
    started = time.monotonic()
    with pytest.raises(TransferTimeoutError, match="sending the body: stalled for 0.2 s"):
        await client.push_blob(Reference.parse(f"{REGISTRY}/team/app"), desc, source())
    assert time.monotonic() - started < 3.0
    assert len(taken) == 1
