"""Files of the state directory (``.imagevet/``), never followed through a symbolic link.

The state directory holds the audit ledger, its checkpoint and the last run summary.  Whoever can
plant a symbolic link there (a pull request, a shared runner) must not make imagevet write, append
to or replace a file elsewhere.  So:

* the directory itself is opened with ``O_NOFOLLOW | O_DIRECTORY``: a symlinked ``.imagevet`` is
  refused; every file operation is relative to that directory descriptor;
* files are opened with ``O_NOFOLLOW`` (a symlink is refused with ``ELOOP``) and ``O_NONBLOCK``
  (a FIFO cannot hang the open), then must be regular files;
* whole-file writes go to a fresh temporary file in the same directory and are renamed over the
  name (atomic; a reader never sees half a file); a symlink at the name is refused first, never
  replaced silently.

The parents of the state directory (the policy's directory and above) are the user's own choice
and are followed as usual.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from imagevet.errors import StateError

__all__ = [
    "StateFileError",
    "append_fd",
    "open_dir",
    "read_state_file",
    "rename_aside",
    "write_state_file",
]

_READ_LIMIT = 1 << 20


class StateFileError(StateError):
    """A state file or directory is a symlink, not a regular file, or cannot be read or written."""


def _why(e: OSError) -> str:
    return e.strerror or str(e)


@contextlib.contextmanager
def open_dir(
    directory: Path, *, create: bool = True, follow: bool = False, root: Path | None = None
) -> Iterator[int]:
    """A descriptor of ``directory`` (created when missing); a symlink there is refused.

    With ``root`` (a parent of ``directory``, e.g. the state directory for its ``manifests/sha256``),
    every level from ``root`` down is opened without following a link.  ``follow=True`` is for a
    directory the user named explicitly (``--report some/dir/x.json``).
    """
    top = directory if root is None else root
    if create:
        try:
            top.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(top, 0o755)
        except FileExistsError:
            pass
        except OSError as e:  # a read-only checkout, no permission, a full disk
            raise StateFileError(f"cannot create directory {top}: {_why(e)}") from None
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    try:
        fd = os.open(top, flags | (0 if follow else os.O_NOFOLLOW))
    except OSError as e:
        if not follow and os.path.islink(top):
            raise StateFileError(
                f"{top} is a symbolic link; imagevet does not follow links in its state "
                "directory: remove the link (a real directory is created)"
            ) from None
        raise StateFileError(f"cannot open directory {top}: {_why(e)}") from None
    try:
        shown = top
        for name in directory.relative_to(top).parts:
            shown = shown / name
            try:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                child = os.open(name, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                raise StateFileError(f"cannot open directory {shown}: {_why(e)}") from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _refuse_link(dfd: int, name: str, shown: Path) -> None:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError as e:
        raise StateFileError(f"cannot read {shown}: {_why(e)}") from None
    if stat.S_ISLNK(st.st_mode):
        raise StateFileError(
            f"{shown} is a symbolic link; imagevet does not write through links: remove it"
        )
    if not stat.S_ISREG(st.st_mode):
        raise StateFileError(f"{shown} is not a regular file")


def _open(dfd: int, name: str, flags: int, shown: Path, mode: int = 0o644) -> int:
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=dfd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StateFileError(
                f"{shown} is a symbolic link; imagevet does not follow links in its state "
                "directory: remove it"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StateFileError(f"{shown} is not a regular file")
    return fd


def read_state_file(
    path: Path, *, limit: int = _READ_LIMIT, follow_dir: bool = False, root: Path | None = None
) -> bytes | None:
    """The bytes of ``path`` (at most ``limit``), or None when it does not exist.

    ``root``: see :func:`open_dir`."""
    if not os.path.lexists(path.parent):
        return None
    with open_dir(path.parent, create=False, follow=follow_dir, root=root) as dfd:
        try:
            fd = _open(dfd, path.name, os.O_RDONLY, path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateFileError(f"cannot read {path}: {_why(e)}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise StateFileError(f"cannot read {path}: {_why(e)}") from None
    if len(data) > limit:
        raise StateFileError(f"{path} is larger than {limit} bytes")
    return data


def write_state_file(
    path: Path,
    data: bytes,
    *,
    follow_dir: bool = False,
    mode: int = 0o644,
    root: Path | None = None,
    replace_link: bool = False,
) -> None:
    """Replace ``path`` with ``data`` atomically, never through a symlink at ``path`` or its directory
    (nor, with ``root``, at any level below ``root``: see :func:`open_dir`).

    A symlink at ``path`` is refused, so that its planting is noticed; with ``replace_link`` (a
    cache whose entries name themselves) it is replaced by the file, the rename following nothing.
    """
    with open_dir(path.parent, follow=follow_dir, root=root) as dfd:
        if not replace_link:
            _refuse_link(dfd, path.name, path)
        tmp = f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = _open(dfd, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, path, mode)
        except OSError as e:
            raise StateFileError(f"cannot write {path}: {_why(e)}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            if isinstance(e, OSError):
                raise StateFileError(f"cannot write {path}: {_why(e)}") from None
            raise


def append_fd(path: Path, *, create: bool = True) -> int:
    """An ``O_APPEND`` descriptor of ``path`` (read-write), refusing symlinks; the caller closes it."""
    with open_dir(path.parent, create=create) as dfd:
        try:
            return _open(dfd, path.name, os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0), path)
        except OSError as e:
            raise StateFileError(f"cannot open {path}: {_why(e)}") from None


def rename_aside(path: Path, new_name: str) -> Path | None:
    """Rename ``path`` to ``new_name`` in the same directory (never replacing a file); None if absent."""
    with open_dir(path.parent, create=False) as dfd:
        try:
            os.stat(path.name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        try:
            os.stat(new_name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            raise StateFileError(f"{path.parent / new_name} already exists")
        try:
            os.rename(path.name, new_name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as e:
            raise StateFileError(f"cannot move {path} aside: {_why(e)}") from None
    return path.parent / new_name
