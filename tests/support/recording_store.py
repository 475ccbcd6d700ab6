"""An image store that forwards every call to another and logs when each call starts and ends,
in one log shared by several stores, so a test can tell which requests were in flight together
(order of events, never wall time).

``hold(op, until)`` makes calls of ``op`` wait for an event before they go on (at most
``HOLD_SECONDS``, then they go on and the log says ``"held in vain"``); ``signal(op, event)``
sets an event when a call of ``op`` starts.  Together they turn "does B start while A is in
flight?" into a question with one answer on any machine: A is held until B starts; if the code
only starts B after A ends, A waits in vain.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from imagevet.digest import Digest
from imagevet.manifest import Descriptor, RawManifest
from imagevet.reference import Reference
from imagevet.store import BlobReader, ImageStore, ManifestHead

__all__ = ["HOLD_SECONDS", "Event", "RecordingStore"]

HOLD_SECONDS = 10.0
"""How long a held call waits for its event before it goes on (a deadlock guard, not a bar)."""

_T = TypeVar("_T")

Event = tuple[str, str, str]
"""(store name, operation, "start" | "end" | "held in vain")"""


class RecordingStore:
    def __init__(self, inner: ImageStore, name: str, log: list[Event]) -> None:
        self.inner = inner
        self.name = name
        self.log = log
        self._holds: dict[str, asyncio.Event] = {}
        self._signals: dict[str, asyncio.Event] = {}
        self.puts: list[str] = []
        """Each manifest PUT's reference, in the order they started."""

    def hold(self, op: str, until: asyncio.Event) -> None:
        self._holds[op] = until

    def signal(self, op: str, event: asyncio.Event) -> None:
        self._signals[op] = event

    async def _call(self, op: str, call: Callable[[], Awaitable[_T]]) -> _T:
        self.log.append((self.name, op, "start"))
        if op in self._signals:
            self._signals[op].set()
        if op in self._holds:
            try:
                await asyncio.wait_for(self._holds[op].wait(), HOLD_SECONDS)
            except TimeoutError:
                self.log.append((self.name, op, "held in vain"))
        try:
            return await call()
        finally:
            self.log.append((self.name, op, "end"))

    async def ping(self, ref: Reference) -> None:
        await self._call("ping", lambda: self.inner.ping(ref))

    async def head_manifest(self, ref: Reference) -> ManifestHead | None:
        return await self._call("head_manifest", lambda: self.inner.head_manifest(ref))

    async def get_manifest(self, ref: Reference) -> RawManifest:
        return await self._call("get_manifest", lambda: self.inner.get_manifest(ref))

    async def put_manifest(self, ref: Reference, manifest: RawManifest) -> Digest:
        self.puts.append(str(ref))
        return await self._call("put_manifest", lambda: self.inner.put_manifest(ref, manifest))

    async def delete_manifest(self, ref: Reference) -> None:
        await self._call("delete_manifest", lambda: self.inner.delete_manifest(ref))

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        return await self._call("head_blob", lambda: self.inner.head_blob(ref, digest))

    def open_blob(self, ref: Reference, desc: Descriptor) -> AbstractAsyncContextManager[BlobReader]:
        self.log.append((self.name, "open_blob", "start"))
        return self.inner.open_blob(ref, desc)

    async def push_blob(self, ref: Reference, desc: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        await self._call("push_blob", lambda: self.inner.push_blob(ref, desc, chunks))

    async def list_tags(self, ref: Reference) -> list[str]:
        return await self._call("list_tags", lambda: self.inner.list_tags(ref))

    async def referrers(
        self, ref: Reference, subject: Digest, *, tag_schema: bool = True
    ) -> list[Descriptor]:
        return await self._call(
            "referrers", lambda: self.inner.referrers(ref, subject, tag_schema=tag_schema)
        )

    async def aclose(self) -> None:
        await self.inner.aclose()

    def index(self, name: str, op: str, what: str = "start") -> int:
        """Where the first such event is in the log (ValueError if none)."""
        return self.log.index((name, op, what))
