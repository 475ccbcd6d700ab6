"""Read files and run the finder for each: the whole scan, one result, no judgement yet."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagevet.check.compose import find_in_compose
from imagevet.check.discover import Candidate, discover, sniff_yaml
from imagevet.check.dockerfile import find_in_dockerfile
from imagevet.check.files import DEFAULT_MAX_FILE_SIZE, NotRead, read_confined
from imagevet.check.helm import find_in_helm_template, find_in_helm_values, read_app_version
from imagevet.check.kubernetes import find_in_kubernetes
from imagevet.check.model import FindingKind, FoundImage, SourceKind
from imagevet.check.text import LineIndex
from imagevet.check.workflow import find_in_workflow

__all__ = [
    "ScanResult",
    "ScannedFile",
    "SkippedFile",
    "find_images",
    "scan_paths",
]


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """A file that was read: its shown path, where it is, its kind and its text as read;
    ``tree`` is the scanned directory it lies in (a fix writes nowhere else)."""

    path: str
    file: Path
    kind: SourceKind
    text: str
    tree: Path | None = None


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file not read, and why: a link out of the scanned tree, a FIFO, a device, a socket."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Every file read and everything found in them, sorted by path, line and column; the files
    skipped unread, with why."""

    files: tuple[ScannedFile, ...]
    found: tuple[FoundImage, ...]
    skipped: tuple[SkippedFile, ...] = ()

    def file(self, path: str) -> ScannedFile | None:
        """The scanned file shown as ``path``."""
        for f in self.files:
            if f.path == path:
                return f
        return None


_MAY_HOLD_IMAGES = re.compile(r"image|container|docker://", re.IGNORECASE)
"""YAML without any of these cannot hold an image position: it is not parsed at all."""


def find_images(
    text: str, path: str, kind: SourceKind, *, app_version: str | None = None
) -> list[FoundImage]:
    """Run the finder for ``kind`` over ``text``; ``app_version`` is the chart's, for Helm values.

    A YAML text that never mentions ``image``, ``container`` or ``docker://`` is skipped unparsed
    (so a syntax error in it goes unreported: it could not hide a reference).
    """
    if kind is SourceKind.DOCKERFILE:
        return find_in_dockerfile(text, path)
    if not _MAY_HOLD_IMAGES.search(text):
        return []
    if kind is SourceKind.COMPOSE:
        return find_in_compose(text, path)
    if kind is SourceKind.KUBERNETES:
        return find_in_kubernetes(text, path)
    if kind is SourceKind.HELM_VALUES:
        return find_in_helm_values(text, path, app_version=app_version)
    if kind is SourceKind.HELM_TEMPLATE:
        return find_in_helm_template(text, path)
    return find_in_workflow(text, path)


def _app_version(file: Path, tree: Path, max_size: int) -> str | None:
    try:
        read = read_confined(file.parent / "Chart.yaml", tree, max_size=max_size)
        if isinstance(read, NotRead):
            return None
        return read_app_version(read[1].decode("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def _unreadable(candidate: Candidate, kind: SourceKind, why: str) -> FoundImage:
    return FoundImage(
        kind=FindingKind.PARSE_ERROR,
        source=kind,
        location=LineIndex(candidate.path, "").location(0, 0),
        text="",
        value="",
        context="file",
        detail=why,
    )


def scan_paths(
    paths: Sequence[Path],
    *,
    root: Path,
    exclude: Sequence[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
) -> ScanResult:
    """Find every image reference in the files under ``paths`` (see :mod:`imagevet.check.discover`).

    Files are read as :mod:`imagevet.check.files` says: a link out of the scanned tree, a FIFO, a
    device or a socket is skipped (listed in ``skipped``); a file larger than ``max_file_size``
    bytes, or one that cannot be read or parsed, gives a PARSE_ERROR finding (it may hide a
    reference, so it fails the check); the scan goes on.
    """
    files: list[ScannedFile] = []
    found: list[FoundImage] = []
    skipped: list[SkippedFile] = []
    for candidate in discover(paths, root=root, exclude=exclude):
        fallback = candidate.kind or SourceKind.KUBERNETES
        tree = candidate.tree or Path(os.path.realpath(candidate.file.parent))
        try:
            read = read_confined(candidate.file, tree, max_size=max_file_size)
            if isinstance(read, NotRead):
                if read.too_large:
                    found.append(_unreadable(candidate, fallback, read.reason))
                else:
                    skipped.append(SkippedFile(candidate.path, read.reason))
                continue
            real, data = read
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            found.append(_unreadable(candidate, fallback, f"not UTF-8 text ({e.reason})"))
            continue
        except OSError as e:
            found.append(_unreadable(candidate, fallback, f"cannot read: {e.strerror or e}"))
            continue
        kind = candidate.kind or sniff_yaml(text)
        if kind is None:
            continue
        app_version = (
            _app_version(candidate.file, tree, max_file_size) if kind is SourceKind.HELM_VALUES else None
        )
        files.append(ScannedFile(candidate.path, real, kind, text, tree))
        found.extend(find_images(text, candidate.path, kind, app_version=app_version))
    found.sort(key=FoundImage.sort_key)
    files.sort(key=lambda f: f.path)
    skipped.sort(key=lambda f: f.path)
    return ScanResult(tuple(files), tuple(found), tuple(skipped))
