"""``copy --all-tags``: the digest tags of a repository that no image copy brought."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from imagevet.digest import digest_tag_subject
from imagevet.engine.copy.results import CopyResult
from imagevet.engine.copy.session import CopySession
from imagevet.errors import CopyError
from imagevet.reference import Reference

__all__ = ["copy_digest_tags"]


async def copy_digest_tags(
    session: CopySession,
    src: Reference,
    dst: Reference,
    digest_tags: Sequence[str],
    *,
    brought: Iterable[str] = (),
    any_failed: bool = False,
) -> tuple[list[CopyResult], list[CopyError], list[tuple[str, str]]]:
    """``copy --all-tags``: every digest tag of ``src`` the image copies did not bring (``brought``).

    Its subject at the target, or a tag naming no whole digest: the tag is copied (a no-op when
    it is there).  Its subject not in the source repository at all: the tag is copied as it is,
    as sparse as the source.  Its subject in the source but not at the target (no tag names it,
    or, with ``any_failed``, its copy failed): skipped, with that reason.  Returns (copied,
    failed, skipped as (tag, reason)); no tag is left out of all three.
    """
    done = set(brought)
    copied: list[CopyResult] = []
    failed: list[CopyError] = []
    skipped: list[tuple[str, str]] = []
    why = "no tag names it, or its copy failed" if any_failed else "no tag names it"
    for tag in digest_tags:
        if tag in done:
            continue
        subject = digest_tag_subject(tag)
        if (
            subject is not None
            and await session.target.head_manifest(dst.repo().with_digest(subject)) is None
            and await session.source.head_manifest(src.repo().with_digest(subject)) is not None
        ):
            skipped.append((tag, f"its subject {subject} is in the source but was not copied ({why})"))
            continue
        try:
            copied.append(await session.copy(src.repo().with_tag(tag), dst.repo().with_tag(tag)))
        except CopyError as e:
            failed.append(e)
    copied.sort(key=lambda r: str(r.target))
    return copied, failed, skipped
