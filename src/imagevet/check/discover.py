"""Which files to read: walk directories, skip vendored trees, and tell file kinds by name and content.

By name: ``Dockerfile``, ``Containerfile``, ``Dockerfile.*``, ``*.Dockerfile`` (any case; not
``.md``, ``.txt``, ``.rst``, ``.adoc`` or ``.html`` documents);
``compose.y(a)ml``, ``compose.*.y(a)ml``, ``docker-compose*.y(a)ml``; ``.github/workflows/*.y(a)ml``;
``values.yaml``, ``values-*.yaml``, ``values.*.yaml`` (Helm values); ``kustomization.y(a)ml`` and
``Kustomization`` (Kustomize ``images:``); ``*.y(a)ml`` and ``*.tpl``
at any depth under the ``templates/`` directory beside a ``Chart.yaml`` (Helm templates: Go
templates, never parsed as YAML; subcharts under ``charts/`` are charts alike).  Any other YAML file is read and
taken as a Kubernetes manifest when a line starts with ``apiVersion:`` and one with ``kind:``, or as
a Compose file when a line is ``services:`` at the top level.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imagevet.check.model import SourceKind

__all__ = [
    "Candidate",
    "SKIP_DIRS",
    "discover",
    "in_chart_templates",
    "kind_by_name",
    "sniff_yaml",
]

SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "vendor", "third_party", ".venv", "venv", "__pycache__",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".terraform", ".cache",
})
"""Directory names never walked into (they hold other people's files or caches)."""

_YAML_SUFFIXES = (".yaml", ".yml")
_TEMPLATE_SUFFIXES = (*_YAML_SUFFIXES, ".tpl")
_COMPOSE = re.compile(r"^(?:docker-)?compose(?:[.-][^/]*)?\.ya?ml$", re.IGNORECASE)
_VALUES = re.compile(r"^values(?:[.-][^/]*)?\.ya?ml$", re.IGNORECASE)
_K8S_API = re.compile(r"^apiVersion:[ \t]*\S", re.MULTILINE)
_K8S_KIND = re.compile(r"^kind:[ \t]*\S", re.MULTILINE)
_COMPOSE_SERVICES = re.compile(r"^services:[ \t]*(?:#.*)?$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file to read: where it is, how to show it, its kind (None: decide from its content), and
    the tree it belongs to (the resolved directory scanned; a link must not lead out of it)."""

    file: Path
    path: str
    kind: SourceKind | None
    tree: Path | None = None


_KUSTOMIZATION = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
"""The file names ``kustomize build`` reads a directory's kustomization from."""

_NOT_DOCKERFILES = (".md", ".txt", ".rst", ".adoc", ".html")


def _is_dockerfile(name: str) -> bool:
    lower = name.lower()
    if lower.endswith(_NOT_DOCKERFILES):
        return False
    return (
        lower in ("dockerfile", "containerfile")
        or lower.startswith(("dockerfile.", "containerfile."))
        or lower.endswith((".dockerfile", ".containerfile"))
    )


def kind_by_name(path: PurePosixPath, *, chart_dir: bool = False) -> SourceKind | None:
    """The kind of a file from its path alone; ``chart_dir`` says the file lies under a chart's
    ``templates/`` directory, at any depth (see :func:`in_chart_templates`).  None for YAML that
    needs :func:`sniff_yaml` and for other files."""
    name = path.name
    if _is_dockerfile(name):
        return SourceKind.DOCKERFILE
    if name in _KUSTOMIZATION:
        return SourceKind.KUSTOMIZE
    if chart_dir and name.lower().endswith(_TEMPLATE_SUFFIXES):
        return SourceKind.HELM_TEMPLATE
    if not name.lower().endswith(_YAML_SUFFIXES):
        return None
    parts = path.parts
    if len(parts) >= 3 and parts[-3] == ".github" and parts[-2] == "workflows":
        return SourceKind.WORKFLOW
    if _COMPOSE.fullmatch(name):
        return SourceKind.COMPOSE
    if _VALUES.fullmatch(name):
        return SourceKind.HELM_VALUES
    return None


def in_chart_templates(file: Path, known: dict[str, bool] | None = None) -> bool:
    """Whether ``file`` lies, at any depth, under a ``templates/`` directory that has a
    ``Chart.yaml`` beside it (a chart, or a subchart under a chart's ``charts/``); ``known``
    remembers the answer per directory (one walk asks once per directory)."""
    absolute = os.path.abspath(file)
    at = absolute.rfind(f"{os.sep}templates{os.sep}")
    while at >= 0:
        chart = absolute[:at]
        if known is not None and chart in known:
            found = known[chart]
        else:
            found = os.path.isfile(os.path.join(chart or os.sep, "Chart.yaml"))
            if known is not None:
                known[chart] = found
        if found:
            return True
        at = absolute.rfind(f"{os.sep}templates{os.sep}", 0, at)
    return False


def sniff_yaml(text: str) -> SourceKind | None:
    """Tell a Kubernetes manifest or a Compose file from its content; None for other YAML."""
    if _K8S_API.search(text) and _K8S_KIND.search(text):
        return SourceKind.KUBERNETES
    if _COMPOSE_SERVICES.search(text):
        return SourceKind.COMPOSE
    return None


def _display(file: Path, root: Path) -> str:
    absolute = os.path.abspath(file)
    prefix = str(root).rstrip(os.sep) + os.sep
    if absolute.startswith(prefix) and len(absolute) > len(prefix):  # the common case, by string
        rel = absolute[len(prefix):]
        return rel.replace(os.sep, "/") if os.sep != "/" else rel
    rel = os.path.relpath(absolute, root) if absolute.startswith(str(root)) else ""
    if rel and not rel.startswith(".."):
        return PurePosixPath(*Path(rel).parts).as_posix()
    return file.as_posix()


def _excluded(display: str, patterns: Sequence[str]) -> bool:
    name = display.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(display, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _candidate(file: Path, root: Path, tree: Path, known: dict[str, bool] | None = None) -> Candidate | None:
    display = _display(file, root)
    kind = kind_by_name(PurePosixPath(display), chart_dir=in_chart_templates(file, known))
    if kind is None and not file.name.lower().endswith(_YAML_SUFFIXES):
        return None
    return Candidate(file, display, kind, tree)


def discover(
    paths: Sequence[Path], *, root: Path, exclude: Sequence[str] = ()
) -> Iterator[Candidate]:
    """Yield the files under ``paths`` that may hold image references, in a stable order.

    Directories are walked (skipping :data:`SKIP_DIRS` and paths matching an ``exclude`` glob;
    links to directories are not walked into); files named explicitly are taken when their kind
    can be told.  Paths are shown relative to ``root`` when they are under it.  Each candidate's
    ``tree`` is the resolved directory it was found in (for a file named explicitly: ``root``
    when it is under it, else its own directory).
    """
    root = Path(os.path.abspath(root))
    seen: set[Path] = set()
    known: dict[str, bool] = {}
    for path in paths:
        if path.is_dir():
            tree = Path(os.path.realpath(path))
            for dirpath, dirnames, filenames in os.walk(path):
                base = Path(dirpath)
                dirnames[:] = sorted(
                    d for d in dirnames
                    if d not in SKIP_DIRS and not _excluded(_display(base / d, root), exclude)
                )
                for filename in sorted(filenames):
                    file = base / filename
                    c = _candidate(file, root, tree, known)
                    if c is not None and file not in seen and not _excluded(c.path, exclude):
                        seen.add(file)
                        yield c
        else:
            absolute = Path(os.path.abspath(path))
            under_root = absolute.is_relative_to(root)
            tree = Path(os.path.realpath(root if under_root else absolute.parent))
            c = _candidate(path, root, tree)
            if c is not None and path not in seen and not _excluded(c.path, exclude):
                seen.add(path)
                yield c
