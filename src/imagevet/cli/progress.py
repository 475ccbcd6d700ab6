"""A terminal progress bar for blob transfers (one aggregate bar, refreshed at most 10 times a second).

``rich.progress`` is imported only when a bar is drawn (not when output is not a terminal).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from imagevet.cli.common import real_console
from imagevet.digest import Digest

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["TransferProgress"]


class TransferProgress:
    """Implements :class:`imagevet.engine.copy.CopyProgress`; draws nothing when ``enabled`` is False."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._done = 0
        self._skipped = 0
        self._moved: dict[Digest, int] = {}  # bytes advanced per blob in its current attempt
        if enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeElapsedColumn(),
                console=real_console(console),
                refresh_per_second=10,
                transient=True,
            )

    def __enter__(self) -> TransferProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("blobs", total=0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def blob_started(self, digest: Digest, size: int) -> None:
        """A blob starts streaming; a second start of the same blob is a retry."""
        if self._progress is None or self._task is None:
            return
        if digest in self._moved:  # retry: take back what the failed attempt counted
            self._progress.advance(self._task, -self._moved[digest])
        else:
            total = self._progress.tasks[0].total or 0
            self._progress.update(self._task, total=total + size)
        self._moved[digest] = 0

    def blob_advanced(self, digest: Digest, nbytes: int) -> None:
        if self._progress is not None and self._task is not None:
            self._moved[digest] = self._moved.get(digest, 0) + nbytes
            self._progress.advance(self._task, nbytes)

    def blob_finished(self, digest: Digest, how: str) -> None:
        if how == "copied":
            self._done += 1
        else:
            self._skipped += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, description=f"blobs: {self._done} copied, {self._skipped} present"
            )
