"""Read files and run the finder for each: the whole scan, one result, no judgement yet."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imagevet.check.compose import find_in_compose, parse_dotenv
from imagevet.check.discover import Candidate, discover, sniff_yaml
from imagevet.check.dockerfile import find_in_dockerfile
from imagevet.check.files import DEFAULT_MAX_FILE_SIZE, NotRead, read_confined
from imagevet.check.helm import (
    ChartBuild,
    find_in_helm_template,
    find_in_helm_values,
    read_app_version,
    read_chart_build,
    with_subchart,
)
from imagevet.check.kubernetes import find_in_kubernetes
from imagevet.check.kustomize import find_in_kustomization
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


def _may_hold_images(text: str) -> bool:
    """Whether ``text`` mentions ``image``, ``container`` or ``docker://`` in any case: by plain
    substring search first (fast on megabytes of CRDs), the case-blind regex only when that finds
    nothing."""
    if any(word in text for word in ("image", "Image", "IMAGE", "container", "Container", "docker://")):
        return True
    return _MAY_HOLD_IMAGES.search(text) is not None


def find_images(
    text: str,
    path: str,
    kind: SourceKind,
    *,
    app_version: str | None = None,
    chart: ChartBuild | None = None,
    env: Mapping[str, str] | None = None,
    env_name: str = ".env",
) -> list[FoundImage]:
    """Run the finder for ``kind`` over ``text``; for Helm values, ``chart`` says how the chart
    builds its references (``app_version`` alone: a chart whose templates were not read); for
    Compose, ``env`` holds the variables of the ``.env`` file beside it (shown as ``env_name``).

    A YAML text that never mentions ``image``, ``container`` or ``docker://`` is skipped unparsed
    (so a syntax error in it goes unreported: it could not hide a reference).
    """
    if kind is SourceKind.DOCKERFILE:
        return find_in_dockerfile(text, path)
    if not _may_hold_images(text):
        return []
    if kind is SourceKind.COMPOSE:
        return find_in_compose(text, path, env=env, env_name=env_name)
    if kind is SourceKind.KUBERNETES:
        return find_in_kubernetes(text, path)
    if kind is SourceKind.HELM_VALUES:
        return find_in_helm_values(text, path, app_version=app_version, chart=chart)
    if kind is SourceKind.HELM_TEMPLATE:
        return find_in_helm_template(text, path)
    if kind is SourceKind.KUSTOMIZE:
        return find_in_kustomization(text, path)
    return find_in_workflow(text, path)


_MAX_CHART_TEMPLATES = 5000
"""Templates read per chart to learn how it builds tags; more are not read (a bounded cost)."""


_MAX_SUBCHART_DEPTH = 3


def _read_text(file: Path, tree: Path, max_size: int, cache: Mapping[Path, str] | None = None) -> str | None:
    if cache:
        known = cache.get(Path(os.path.abspath(file)))
        if known is not None:
            return known
    try:
        read = read_confined(file, tree, max_size=max_size)
        if isinstance(read, NotRead):
            return None
        return read[1].decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _chart_build(
    chart: Path, tree: Path, max_size: int, cache: Mapping[Path, str], depth: int = 0
) -> ChartBuild:
    """How the chart in ``chart`` builds its image tags: ``Chart.yaml``'s appVersion and the text
    of its templates, and those of its subcharts under ``charts/`` (files read as the scan reads
    them: confined to ``tree``, capped; a file the scan has read already is taken from ``cache``)."""
    chart_yaml = _read_text(chart / "Chart.yaml", tree, max_size)
    app_version = read_app_version(chart_yaml) if chart_yaml is not None else None
    templates_dir = chart / "templates"
    if chart_yaml is None or not templates_dir.is_dir() or templates_dir.is_symlink():
        return ChartBuild(app_version)
    texts: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(templates_dir):
        dirnames.sort()
        for name in sorted(filenames):
            if len(texts) >= _MAX_CHART_TEMPLATES:
                break
            if name.lower().endswith((".yaml", ".yml", ".tpl")):
                file = Path(dirpath) / name
                text = _read_text(file, tree, max_size, cache)
                if text is not None:
                    texts[file.relative_to(chart).as_posix()] = text
    build = read_chart_build(app_version, texts)
    subcharts = chart / "charts"
    if depth < _MAX_SUBCHART_DEPTH and subcharts.is_dir() and not subcharts.is_symlink():
        for sub in sorted(subcharts.iterdir()):
            if sub.is_dir() and not sub.is_symlink() and (sub / "Chart.yaml").is_file():
                build = with_subchart(build, sub.name, _chart_build(sub, tree, max_size, cache, depth + 1))
    return build


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
    charts: dict[Path, ChartBuild] = {}
    texts: dict[Path, str] = {}
    values: list[tuple[Candidate, Path, str, Path]] = []
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
        if kind is SourceKind.HELM_TEMPLATE:
            texts[Path(os.path.abspath(candidate.file))] = text
        if kind is SourceKind.HELM_VALUES:  # after the walk: the chart's templates are read by then
            values.append((candidate, real, text, tree))
            continue
        env: dict[str, str] | None = None
        env_name = ".env"
        if kind is SourceKind.COMPOSE:
            env_text = _read_text(candidate.file.parent / ".env", tree, max_file_size)
            env = parse_dotenv(env_text) if env_text is not None else {}
            env_name = (PurePosixPath(candidate.path).parent / ".env").as_posix()
        files.append(ScannedFile(candidate.path, real, kind, text, tree))
        found.extend(find_images(text, candidate.path, kind, env=env, env_name=env_name))
    for candidate, real, text, tree in values:
        chart_dir = candidate.file.parent
        if chart_dir not in charts:
            charts[chart_dir] = _chart_build(chart_dir, tree, max_file_size, texts)
        files.append(ScannedFile(candidate.path, real, SourceKind.HELM_VALUES, text, tree))
        found.extend(find_images(text, candidate.path, SourceKind.HELM_VALUES, chart=charts[chart_dir]))
    found.sort(key=FoundImage.sort_key)
    files.sort(key=lambda f: f.path)
    skipped.sort(key=lambda f: f.path)
    return ScanResult(tuple(files), tuple(found), tuple(skipped))
