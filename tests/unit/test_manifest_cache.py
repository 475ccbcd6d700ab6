"""The manifest cache: content-addressed, verified on read, never written through a symlink."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.manifest import RawManifest
from imagevet.manifest_cache import ManifestCache
from imagevet.mediatype import OCI_INDEX

INDEX = RawManifest.from_bytes(
    json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
)


def entry(state: Path, digest: Digest = INDEX.digest) -> Path:
    return state / "manifests" / digest.algorithm / digest.hex


def test_round_trip_keeps_the_exact_bytes(tmp_path: Path) -> None:
    cache = ManifestCache(tmp_path / ".imagevet")
    assert cache.get(INDEX.digest) is None
    assert cache.put(INDEX)
    got = cache.get(INDEX.digest)
    assert got is not None and got.data == INDEX.data and got.digest == INDEX.digest
    assert got.media_type == OCI_INDEX and got.is_index
    assert sorted(p.name for p in entry(tmp_path / ".imagevet").parent.iterdir()) == [INDEX.digest.hex]


def test_a_tampered_entry_is_a_miss_and_is_replaced(tmp_path: Path) -> None:
    cache = ManifestCache(tmp_path)
    cache.put(INDEX)
    entry(tmp_path).write_bytes(INDEX.data.replace(b"[]", b'[{"x":1}]'))
    assert cache.get(INDEX.digest) is None
    assert cache.put(INDEX) and cache.get(INDEX.digest) == INDEX


def test_bytes_that_do_not_hash_to_the_digest_are_never_stored(tmp_path: Path) -> None:
    cache = ManifestCache(tmp_path)
    assert not cache.put(INDEX, Digest.of(b"something else"))
    assert not (tmp_path / "manifests").exists()


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(INDEX.data)
    state = tmp_path / "state"
    cache = ManifestCache(state)
    cache.put(INDEX)
    target = entry(state)
    target.unlink()
    target.symlink_to(outside)  # a link with the right bytes behind it is still a miss
    assert cache.get(INDEX.digest) is None
    assert cache.put(INDEX)  # the link is replaced, the file it pointed at untouched
    assert not target.is_symlink() and outside.read_bytes() == INDEX.data
    # a linked directory level: nothing read or written through it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (state / "manifests" / "sha256").rename(elsewhere / "sha256")
    (state / "manifests" / "sha256").symlink_to(elsewhere / "sha256")
    assert cache.get(INDEX.digest) is None
    other = RawManifest.from_bytes(INDEX.data + b" ", OCI_INDEX)
    assert not cache.put(other)
    assert not (elsewhere / "sha256" / other.digest.hex).exists()
    # a linked state directory: the same
    linked = ManifestCache(tmp_path / "linked-state")
    (tmp_path / "linked-state").symlink_to(state)
    assert linked.get(INDEX.digest) is None and not linked.put(other)


def test_special_and_oversized_files_are_a_miss_without_hanging(tmp_path: Path) -> None:
    cache = ManifestCache(tmp_path, max_size=len(INDEX.data))
    cache.put(INDEX)
    target = entry(tmp_path)
    target.unlink()
    os.mkfifo(target)
    done = threading.Event()
    result: list[object] = []

    def read() -> None:
        result.append(cache.get(INDEX.digest))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(5), "reading a FIFO from the cache hung"
    assert result == [None]
    target.unlink()
    big = RawManifest.from_bytes(INDEX.data + b" " * 10, OCI_INDEX)
    assert not cache.put(big)
    entry(tmp_path, big.digest).write_bytes(big.data)
    assert cache.get(big.digest) is None


def test_a_state_directory_that_cannot_be_written_is_a_miss_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only checkout (EROFS, EACCES, ENOSPC): the cache keeps nothing and says so; plan and
    sync go on (a crash there turned finished copies into failures)."""
    real_mkdir, real_open = os.mkdir, os.open

    def readonly_mkdir(path: object, *args: object, **kw: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    def readonly_open(path: object, flags: int, *args: object, **kw: object) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kw)  # type: ignore[arg-type]

    cache = ManifestCache(tmp_path / ".imagevet")
    monkeypatch.setattr(os, "mkdir", readonly_mkdir)
    assert cache.put(INDEX) is False
    assert cache.get(INDEX.digest) is None
    monkeypatch.setattr(os, "mkdir", real_mkdir)
    (tmp_path / ".imagevet" / "manifests" / "sha256").mkdir(parents=True)
    monkeypatch.setattr(os, "open", readonly_open)
    assert cache.put(INDEX) is False
