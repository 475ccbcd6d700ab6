"""Read files and run the finder for each: the whole scan, one result, no judgement yet."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagevet.check.compose import find_in_compose
from imagevet.check.discover import Candidate, discover, sniff_yaml
from imagevet.check.dockerfile import find_in_dockerfile
from imagevet.check.helm import find_in_helm_template, find_in_helm_values, read_app_version
from imagevet.check.kubernetes import find_in_kubernetes
from imagevet.check.model import FindingKind, FoundImage, SourceKind
from imagevet.check.text import LineIndex
from imagevet.check.workflow import find_in_workflow

__all__ = [
    "ScanResult",
    "ScannedFile",
    "find_images",
    "scan_paths",
]


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """A file that was read: its shown path, where it is, its kind and its text as read."""

    path: str
    file: Path
    kind: SourceKind
    text: str


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Every file read and everything found in them, sorted by path, line and column."""

    files: tuple[ScannedFile, ...]
    found: tuple[FoundImage, ...]

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


def _app_version(file: Path) -> str | None:
    chart = file.parent / "Chart.yaml"
    try:
        return read_app_version(chart.read_text(encoding="utf-8"))
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
    paths: Sequence[Path], *, root: Path, exclude: Sequence[str] = ()
) -> ScanResult:
    """Find every image reference in the files under ``paths`` (see :mod:`imagevet.check.discover`).

    A file that cannot be read or parsed gives a PARSE_ERROR finding and the scan goes on.
    """
    files: list[ScannedFile] = []
    found: list[FoundImage] = []
    for candidate in discover(paths, root=root, exclude=exclude):
        fallback = candidate.kind or SourceKind.KUBERNETES
        try:
            text = candidate.file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            found.append(_unreadable(candidate, fallback, f"not UTF-8 text ({e.reason})"))
            continue
        except OSError as e:
            found.append(_unreadable(candidate, fallback, f"cannot read: {e.strerror or e}"))
            continue
        kind = candidate.kind or sniff_yaml(text)
        if kind is None:
            continue
        app_version = _app_version(candidate.file) if kind is SourceKind.HELM_VALUES else None
        files.append(ScannedFile(candidate.path, candidate.file, kind, text))
        found.extend(find_images(text, candidate.path, kind, app_version=app_version))
    found.sort(key=FoundImage.sort_key)
    files.sort(key=lambda f: f.path)
    return ScanResult(tuple(files), tuple(found))
