"""A blob write cancelled while its bytes are being written (``imagevet watch`` stopping after its
grace period cancels copies at any point): the file descriptor the writing thread uses must stay
open until that thread returns, or its last bytes land in whatever file reuses the number."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from imagevet.digest import Digest
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.store import LayoutStore
from imagevet.store.layout import CHUNK_SIZE
from imagevet.store.layout import writer as writer_module
from tests.support.images import random_blob


async def test_a_cancelled_blob_write_never_writes_into_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random_blob(CHUNK_SIZE * 2, "layout/cancel")
    desc = Descriptor("application/octet-stream", Digest.of(data), len(data))
    in_write, go_on = threading.Event(), threading.Event()
    real_write = os.write

    def slow_write(fd: int, buf: Any) -> int:
        in_write.set()
        go_on.wait(10)  # the thread is mid-write when the copy is cancelled
        return real_write(fd, buf)

    # only the writer module's writes are slowed (every other os function is the real one)
    monkeypatch.setattr(writer_module, "os", SimpleNamespace(**{**vars(os), "write": slow_write}))

    async def chunks() -> AsyncIterator[bytes]:
        yield data[:CHUNK_SIZE]
        await asyncio.sleep(60)
        yield data[CHUNK_SIZE:]

    store = LayoutStore()
    push = asyncio.ensure_future(store.push_blob(Reference.parse(f"oci:{tmp_path / 'layout'}"), desc, chunks()))
    while not in_write.is_set():
        await asyncio.sleep(0.01)
    push.cancel()
    with pytest.raises(asyncio.CancelledError):
        await push
    # the process goes on: another file gets opened (the lowest free descriptor number)
    other = tmp_path / "other.json"
    fd = os.open(other, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        real_write(fd, b'{"ok": true}')
        go_on.set()  # the writing thread finishes its write now
        await asyncio.sleep(0.3)
    finally:
        os.close(fd)
    assert other.read_bytes() == b'{"ok": true}'
    blobs = tmp_path / "layout" / "blobs" / "sha256"
    assert not (blobs / desc.digest.hex).exists()
    assert not [p for p in (tmp_path / "layout").iterdir() if p.name.startswith(".imagevet-")]  # no temporary left
