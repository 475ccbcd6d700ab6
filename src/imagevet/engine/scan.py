"""Run the user's vulnerability scanner (Trivy or Grype) on one pinned source reference.

The policy's ``scan.command`` is a list of arguments; ``{ref}`` in any of them becomes the
pinned reference (``registry/repo@sha256:…``).  The command is executed directly, never through
a shell, with the user's environment (the scanner finds its own cache and registry credentials),
no standard input, in its own process group so a timeout ends the scanner and whatever it
started.  Its standard output is read up to :data:`~imagevet.scanreport.MAX_REPORT_BYTES`, and
only the last :data:`STDERR_TAIL` bytes of its standard error are kept, escaped, for the reason
when it fails.

Fail closed: a scanner that cannot be started, exits with a non-zero status, runs past its
timeout, prints too much or prints something that is not a Trivy or Grype JSON report raises
:class:`~imagevet.errors.ScanError` with the reason; the caller records the reason as the scan's
outcome and the planner holds the tag.  Nothing here raises anything else for the scanner's
behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping

from imagevet.errors import ScanError, scrub
from imagevet.policy.model import Scan
from imagevet.scanreport import MAX_REPORT_BYTES, ScanReport, parse_scan_report

__all__ = ["STDERR_TAIL", "run_scanner"]

log = logging.getLogger(__name__)

STDERR_TAIL = 2048
"""Bytes of the scanner's standard error kept for a failure's reason (the end, where the error is)."""
_CHUNK = 1 << 16


async def _read_limited(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes, and whether there was more (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(_CHUNK)
        if not chunk:
            return b"".join(chunks), False
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)


async def _read_tail(stream: asyncio.StreamReader, keep: int) -> bytes:
    """The last ``keep`` bytes of the stream (everything is read, little is kept)."""
    tail = b""
    while True:
        chunk = await stream.read(_CHUNK)
        if not chunk:
            return tail
        tail = (tail + chunk)[-keep:]


def _tail_text(data: bytes) -> str:
    text = scrub(data.decode("utf-8", "replace"), limit=STDERR_TAIL * 4).strip()
    return text[-STDERR_TAIL:]


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _name(argv: list[str]) -> str:
    return scrub(os.path.basename(argv[0]) or argv[0], limit=80)


async def run_scanner(
    scan: Scan,
    ref: str,
    *,
    env: Mapping[str, str] | None = None,
    max_output: int = MAX_REPORT_BYTES,
) -> ScanReport:
    """Scan ``ref`` with ``scan.command`` (see the module docstring); the report's counts, or
    ScanError with why there is no verdict.  ``env``: the scanner's environment (default: this
    process's)."""
    argv = scan.argv(ref)
    name = _name(argv)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )
    except OSError as e:
        raise ScanError(f"cannot run the scanner {name}: {e.strerror or e}") from None
    assert proc.stdout is not None and proc.stderr is not None
    out_task = asyncio.ensure_future(_read_limited(proc.stdout, max_output))
    err_task = asyncio.ensure_future(_read_tail(proc.stderr, STDERR_TAIL))

    async def collect() -> tuple[bytes, bool, bytes]:
        out, too_much = await asyncio.shield(out_task)
        if too_much:
            _kill(proc)
        await proc.wait()
        _kill(proc)  # whatever the scanner left running in its group
        return out, too_much, await asyncio.shield(err_task)

    try:
        out, too_much, err = await asyncio.wait_for(collect(), scan.timeout)
    except TimeoutError:
        _kill(proc)
        await proc.wait()
        err = await _settle(err_task)
        raise ScanError(
            f"the scanner {name} did not finish within {scan.timeout}s" + _said(err)
        ) from None
    finally:
        if proc.returncode is None:
            _kill(proc)
            await proc.wait()
        for task in (out_task, err_task):
            task.cancel()
    if too_much:
        raise ScanError(f"the scanner {name} printed more than {max_output} bytes" + _said(err))
    status = proc.returncode if proc.returncode is not None else -1
    if status != 0:
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        raise ScanError(f"the scanner {name} {how}" + _said(err))
    try:
        return parse_scan_report(out)
    except ScanError as e:
        raise ScanError(f"{name}: {e.reason}" + _said(err)) from None


async def _settle(task: asyncio.Task[bytes]) -> bytes:
    try:
        return await asyncio.wait_for(asyncio.shield(task), 2)
    except (TimeoutError, asyncio.CancelledError):
        return b""


def _said(err: bytes) -> str:
    text = _tail_text(err)
    return f"; stderr: {text}" if text else ""
