"""Reading and writing the files of an untrusted tree: confined, regular files only, size-capped.

``imagevet check`` runs as a CI gate on pull requests, so every file is hostile input:

* a symbolic link is resolved, and read only when its target lies inside the scanned tree;
  a link out of it (``Dockerfile -> /etc/passwd``, ``-> /dev/zero``) is skipped with a note;
* only regular files are opened: a FIFO, device or socket is skipped with a note (a FIFO would
  block the read forever, ``/dev/zero`` never ends);
* a file larger than the cap (:data:`DEFAULT_MAX_FILE_SIZE`, ``--max-file-size``) is not read;
* ``--fix`` writes the resolved, confined file by atomic replace (a new file created with
  ``O_EXCL | O_NOFOLLOW`` beside it, then renamed over it): never through a link, never outside
  the tree, and a reader sees the old text or the new, never half of it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from imagevet.errors import SecurityError

__all__ = [
    "DEFAULT_MAX_FILE_SIZE",
    "NotRead",
    "confined_target",
    "read_confined",
    "write_confined",
]

DEFAULT_MAX_FILE_SIZE = 4 * 2**20
"""Files larger than this (4 MiB) are reported and not read; ``--max-file-size`` changes it."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _NOFOLLOW
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW


@dataclass(frozen=True, slots=True)
class NotRead:
    """Why a file was not read: ``too_large`` for the size cap, else it was skipped (a link out of
    the tree, a FIFO, a device, a socket)."""

    reason: str
    too_large: bool = False


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def confined_target(file: Path, tree: Path) -> Path | NotRead:
    """The real path of ``file`` (links resolved) when it lies inside ``tree`` (a resolved
    directory) and is a regular file; else why not."""
    real = Path(os.path.realpath(file))
    if real != tree and not real.is_relative_to(tree):
        what = "a symbolic link" if os.path.islink(file) else "a path"
        return NotRead(f"{what} to outside the scanned tree: not read")
    try:
        mode = os.stat(real, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return NotRead("a dangling symbolic link: not read")
    if not stat.S_ISREG(mode):
        return NotRead(f"{_kind(mode)}: not read")
    return real


def _too_large(cap: int) -> NotRead:
    return NotRead(f"larger than the {cap}-byte cap (--max-file-size): not read", too_large=True)


def read_confined(
    file: Path, tree: Path, *, max_size: int = DEFAULT_MAX_FILE_SIZE
) -> tuple[Path, bytes] | NotRead:
    """The real path and bytes of ``file`` when it is a regular file inside ``tree`` of at most
    ``max_size`` bytes; else why it was not read.  I/O errors raise OSError."""
    real = confined_target(file, tree)
    if isinstance(real, NotRead):
        return real
    fd = os.open(real, _READ_FLAGS)  # O_NOFOLLOW: a link swapped in since is refused (ELOOP)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return NotRead(f"{_kind(st.st_mode)}: not read")
        if st.st_size > max_size:
            return _too_large(max_size)
        chunks: list[bytes] = []
        left = max_size + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_size:  # it grew while being read
            return _too_large(max_size)
        return real, data
    finally:
        os.close(fd)


def write_confined(file: Path, tree: Path, data: bytes) -> Path:
    """Replace the real file behind ``file`` (inside ``tree``, regular) with ``data``, atomically.

    The new text goes to a fresh file beside it (``O_CREAT | O_EXCL | O_NOFOLLOW``, with the old
    file's permission bits), which is then renamed over it: no link is followed for the write,
    and the rename replaces the directory entry itself.  Returns the path written; a file that is
    no longer a regular file inside ``tree`` raises :class:`~imagevet.errors.SecurityError`.
    """
    real = confined_target(file, tree)
    if isinstance(real, NotRead):
        raise SecurityError(f"{file}: not written: {real.reason.removesuffix(': not read')}")
    mode = stat.S_IMODE(os.stat(real, follow_symlinks=False).st_mode)
    for attempt in range(100):
        temp = real.with_name(f".{real.name}.imagevet-{os.getpid()}-{attempt}.tmp")
        try:
            fd = os.open(temp, _WRITE_FLAGS, 0o600)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - a hundred leftovers of our own process id
        raise SecurityError(f"{real}: cannot create a temporary file beside it")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, real)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return real
