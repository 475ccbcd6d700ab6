"""``imagevet copy SRC DST``: copy one image (or every tag of a repository) byte for byte."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import typer

from imagevet.cli.common import (
    EXIT_FAILURE,
    console,
    err_console,
    fail,
    make_store,
    print_json,
    run,
    terminal_safe,
)
from imagevet.cli.progress import TransferProgress
from imagevet.digest import is_digest_tag
from imagevet.engine.copy import (
    DEFAULT_JOBS,
    CopyOptions,
    CopyResult,
    CopySession,
    copy_digest_tags,
)
from imagevet.errors import CopyError, ImagevetError, InvalidReferenceError
from imagevet.manifest import Platform
from imagevet.reference import Reference
from imagevet.store import ImageStore

__all__ = ["register"]

IMAGE_CONCURRENCY = 4
"""Images copied at once with --all-tags (blob transfers are bounded separately by --jobs)."""


@dataclass
class _Outcome:
    """Everything a copy run did: every tag of the source is in exactly one list."""

    results: list[CopyResult] = field(default_factory=list)
    errors: list[CopyError] = field(default_factory=list)
    digest_tags: list[CopyResult] = field(default_factory=list)
    """Digest tags (``sha256-<hex>[.sig|...]``) copied on their own: no image copy brought them."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(tag, reason) of digest tags not copied."""


def register(app: typer.Typer) -> None:
    app.command("copy")(copy_command)


def copy_command(
    source: str = typer.Argument(..., help="Source image: NAME[:TAG|@DIGEST] (a registry), oci:DIR[:TAG|@DIGEST] (an OCI layout) or oci-archive:FILE[:TAG|@DIGEST]; a repository or layout with --all-tags."),
    target: str = typer.Argument(..., help="Target: NAME[:TAG], oci:DIR[:TAG] or oci-archive:FILE[:TAG]; or a repository or layout (the source tag is kept)."),
    all_tags: bool = typer.Option(False, "--all-tags", help="Copy every tag of the source repository."),
    platform: list[str] = typer.Option(
        [], "--platform", help="Copy only this platform (repeatable); the index digest changes."
    ),
    referrers: bool = typer.Option(
        True, "--referrers/--no-referrers", help="Copy signatures, SBOMs and attestations."
    ),
    force: bool = typer.Option(False, "--force", help="Copy even when the target already has the digest."),
    jobs: int = typer.Option(DEFAULT_JOBS, "--jobs", "-j", min=1, max=64, help="Concurrent blob transfers."),
    insecure: list[str] = typer.Option(
        [], "--insecure", help="Registry host that may be reached over plain HTTP (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report instead of text."),
) -> None:
    """Copy an image byte for byte: the whole index, every platform, signatures and SBOMs."""
    try:
        src = Reference.parse(source)
        dst = Reference.parse(target)
        platforms = tuple(Platform.parse(p) for p in platform) or None
    except (ImagevetError, ValueError) as bad:
        fail(str(bad), 2)
    if all_tags and (src.tag or src.digest or dst.tag or dst.digest):
        fail("--all-tags takes repositories, without a tag or digest", 2)
    options = CopyOptions(jobs=jobs, referrers=referrers, platforms=platforms, force=force)
    show_progress = not as_json and err_console.is_terminal
    outcome, seconds = run(
        lambda: _copy(src, dst, options, all_tags=all_tags, insecure=insecure, progress=show_progress)
    )
    _report(outcome, seconds, as_json=as_json)
    if outcome.errors:
        raise typer.Exit(EXIT_FAILURE)


async def _copy(
    src: Reference,
    dst: Reference,
    options: CopyOptions,
    *,
    all_tags: bool,
    insecure: Sequence[str],
    progress: bool,
) -> tuple[_Outcome, float]:
    """One image, or with ``all_tags`` every tag and then the digest tags no image brought."""
    started = time.monotonic()
    async with _stores(insecure) as (source_store, target_store):
        with TransferProgress(err_console, enabled=progress) as shown:
            session = CopySession(source_store, target_store, options, progress=shown)
            if not all_tags:
                return _Outcome([await session.copy(src, dst)]), time.monotonic() - started
            listed = await source_store.list_tags(src)
            tags = sorted(t for t in listed if not is_digest_tag(t))
            outcome = _Outcome()
            outcome.results, outcome.errors = await _copy_tags(session, src, dst, tags)
            outcome.digest_tags, more_errors, outcome.skipped = await copy_digest_tags(
                session, src, dst, sorted(t for t in listed if is_digest_tag(t)),
                brought={t for r in outcome.results for t in r.digest_tags},
                any_failed=bool(outcome.errors),
            )
            outcome.errors += more_errors
            return outcome, time.monotonic() - started


def _report(outcome: _Outcome, seconds: float, *, as_json: bool) -> None:
    results, errors = outcome.results, outcome.errors
    if as_json:
        print_json({
            "ok": not errors,
            "seconds": round(seconds, 3),
            "results": [r.to_json() for r in results],
            "errors": [{"source": f.source, "target": f.target, "reason": f.reason} for f in errors],
            "digest_tags": [r.to_json() for r in outcome.digest_tags],
            "skipped": [{"tag": tag, "reason": why} for tag, why in outcome.skipped],
        })
        return
    for failure in errors:
        err_console.print(f"[red]failed[/] {terminal_safe(failure.source)} -> {terminal_safe(failure.target)}: {terminal_safe(failure.reason)}")
    for tag, why in outcome.skipped:
        err_console.print(f"[yellow]skipped[/] {terminal_safe(tag)}: {terminal_safe(why)}")
    console.print(_summary(outcome, seconds))


@asynccontextmanager
async def _stores(insecure: Sequence[str]) -> AsyncIterator[tuple[ImageStore, ImageStore]]:
    """The source and the target store of a copy: the one place they are built.

    One router serves both ends: registries, ``oci:`` layout directories and ``oci-archive:``
    files, by each reference's scheme (a blob is mounted only inside one registry); closing it
    writes the archives.
    """
    async with make_store(insecure=insecure) as store:
        yield store, store


async def _copy_tags(
    session: CopySession, src: Reference, dst: Reference, tags: list[str]
) -> tuple[list[CopyResult], list[CopyError]]:
    """Copy every tag, a few images at a time; one failing tag does not stop the others."""
    gate = asyncio.Semaphore(IMAGE_CONCURRENCY)
    results: list[CopyResult] = []
    errors: list[CopyError] = []

    async def one(tag: str) -> None:
        source, target = f"{src}:{tag}", f"{dst}:{tag}"  # printable even when no reference can name it
        async with gate:
            try:
                results.append(await session.copy(src.with_tag(tag), dst.with_tag(tag)))
            except CopyError as e:
                errors.append(e)
            except InvalidReferenceError as e:  # a listed tag outside the tag grammar
                errors.append(CopyError(source, target, str(e), cause=e))
            except Exception as e:  # one tag's unexpected failure must not stop the others
                errors.append(CopyError(source, target, f"unexpected {type(e).__name__}: {e}"))

    await asyncio.gather(*(one(t) for t in tags))
    results.sort(key=lambda r: str(r.target))
    return results, errors


def _summary(outcome: _Outcome, seconds: float) -> str:
    """One line: what was copied, what was already there, bytes and speed."""
    results, errors = outcome.results, outcome.errors
    copied = [r for r in results if not r.noop]
    loose = sum(1 for r in outcome.digest_tags if not r.noop)
    noop = len(results) - len(copied) + len(outcome.digest_tags) - loose
    moved = sum(r.bytes_copied for r in results + outcome.digest_tags)
    mib = moved / (1 << 20)
    speed = f", {mib / seconds:.1f} MiB/s" if seconds > 0 and moved else ""
    if len(results) == 1 and not errors and not outcome.digest_tags and not outcome.skipped:
        r = results[0]
        what = "already up to date" if r.noop else "copied"
        extra = f", {len(r.attachments)} attachments" if r.attachments else ""
        platforms = f", {len(r.platforms)} platforms" if r.platforms else ""
        note = " (platform subset: new index digest)" if r.index_rewritten else ""
        return (
            f"{r.target} {what}: {r.digest}{platforms}{extra}; {r.blobs_copied} blobs copied, "
            f"{r.blobs_mounted} mounted, {r.blobs_skipped} present; {mib:.1f} MiB in "
            f"{seconds:.2f}s{speed}{note}"
        )
    failed = f", {len(errors)} failed" if errors else ""
    extra = f", {loose} digest tag{'s' if loose != 1 else ''} copied on {'their' if loose != 1 else 'its'} own" if loose else ""
    skipped = f", {len(outcome.skipped)} skipped" if outcome.skipped else ""
    return (
        f"{len(copied)} images copied, {noop} already up to date{failed}{extra}{skipped}; "
        f"{mib:.1f} MiB in {seconds:.2f}s{speed}"
    )
