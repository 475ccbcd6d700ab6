"""The transfer progress bar: a retried blob is not counted twice."""

from __future__ import annotations

import io

from rich.console import Console

from imagevet.cli.progress import TransferProgress
from imagevet.digest import Digest


def test_a_retry_takes_back_the_failed_attempt() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    blob = Digest.of(b"blob")
    with TransferProgress(console, enabled=True) as bar:
        bar.blob_started(blob, 1000)
        bar.blob_advanced(blob, 600)  # connection cut here
        bar.blob_started(blob, 1000)  # retried
        bar.blob_advanced(blob, 1000)
        bar.blob_finished(blob, "copied")
        assert bar._progress is not None
        task = bar._progress.tasks[0]
        assert (task.completed, task.total) == (1000, 1000)
        assert task.description == "blobs: 1 copied, 0 present"
