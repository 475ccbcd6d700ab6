"""Find image references in Kubernetes manifests (multi-document YAML with ``apiVersion``/``kind``).

Every container list (``initContainers``, ``containers``, ``ephemeralContainers``) of the pod spec
of a Pod, PodTemplate, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,
Job (``spec.template.spec``) and CronJob (``spec.jobTemplate.spec.template.spec``); ``List`` kinds
are walked through their ``items``.  Templated values (``{{ }}``) are unresolved.

Only documents that may be such a workload are composed (see :func:`workload_parts`): a
CustomResourceDefinition of half a megabyte, a ConfigMap or any other kind costs a fast line scan,
not ruamel's pure-Python composer.
"""

from __future__ import annotations

import re

from ruamel.yaml.nodes import MappingNode, Node

from imagevet.check.model import FoundImage, SourceKind
from imagevet.check.text import LineIndex
from imagevet.check.yamlnodes import (
    get,
    load_documents,
    merge_duplicates,
    scalar_image,
    scalar_text,
    sequence,
)

__all__ = [
    "CONTAINER_FIELDS",
    "POD_SPEC_PATHS",
    "find_in_kubernetes",
    "workload_parts",
]

_TEMPLATE_SPEC = ("spec", "template", "spec")
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": _TEMPLATE_SPEC,
    "StatefulSet": _TEMPLATE_SPEC,
    "DaemonSet": _TEMPLATE_SPEC,
    "ReplicaSet": _TEMPLATE_SPEC,
    "ReplicationController": _TEMPLATE_SPEC,
    "Job": _TEMPLATE_SPEC,
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
"""Where each workload kind keeps its pod spec."""

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
"""The pod spec fields holding containers, each with an ``image``."""


def find_in_kubernetes(text: str, path: str) -> list[FoundImage]:
    """Find the image of every container of every workload in a manifest, with exact positions."""
    parts = workload_parts(text)
    if parts == []:
        return []
    index = LineIndex(path, text)
    docs = load_documents(text, index, SourceKind.KUBERNETES, parts=parts)
    if docs.error is not None:
        return [docs.error]
    found: list[FoundImage] = []
    for doc in docs.nodes:
        _visit(doc, text, index, found, depth=0)
    return merge_duplicates(found)


_DOCUMENT_START = re.compile(r"^---(?=[ \t\r\n]|$)", re.MULTILINE)
_MARKER_LINE = re.compile(r"---[ \t]*(?:#[^\n]*)?\r?(?:\n|$)")
_FIRST_CONTENT = re.compile(r"^(?![ \t]*(?:#|\r?$))[^\n]*", re.MULTILINE)
_COLUMN_ZERO = re.compile(r"^[^ \t\r\n#][^\n]*", re.MULTILINE)
_PLAIN_KEY = re.compile(r"[A-Za-z_][\w./-]*[ \t]*:(?=[ \t\r\n]|$)|-(?=[ \t\r\n]|$)")
_KIND_KEY = re.compile(r"kind[ \t]*:")
_KIND_LINE = re.compile(
    r"kind[ \t]*:[ \t]+(?:([A-Za-z0-9]+)|\"([A-Za-z0-9]+)\"|'([A-Za-z0-9]+)')"
    r"(?:[ \t]+#[^\n]*)?[ \t]*\r?$"
)
_NEXT_LINE = re.compile(r"\n(?:[ \t]*\r?\n)*([ \t]?)")
_OTHER_BREAKS = re.compile("[\x85\u2028\u2029]|\r(?!\n)")
"""Line breaks for YAML (ruamel) that the line scan, reading ``\\n`` and ``\\r\\n``, would miss."""


def _may_be_workload(kind: str | None) -> bool:
    return kind is not None and (kind in POD_SPEC_PATHS or kind.endswith("List"))


class _Unusual(Exception):
    """A document the line scan cannot read for certain: the whole text is composed."""


def _document_kind(doc: str) -> str | None:
    """The top-level ``kind`` of one document (its text from its ``---`` line, or the start), read
    from its lines: None when it has none; :class:`_Unusual` unless the document is a block
    mapping at column 0 whose column-0 lines are all plain ``key:`` lines (or ``-`` entries of a
    top-level key's sequence) with at most one ``kind: Word`` on one line."""
    body = 0
    if doc.startswith("---"):
        marker = _MARKER_LINE.match(doc)
        if marker is None:  # content on the marker line (``--- !!map``, ``--- |``)
            raise _Unusual
        body = marker.end()
    first = _FIRST_CONTENT.search(doc, body)
    if first is None:
        return None  # an empty document
    if not _PLAIN_KEY.match(first[0]) or first[0].startswith("-"):
        raise _Unusual  # indented, flow, quoted, tagged, anchored, complex or a sequence
    kind: str | None = None
    for line in _COLUMN_ZERO.finditer(doc, first.start()):
        if not _PLAIN_KEY.match(line[0]):
            raise _Unusual  # ``"kind":``, ``<<:``, ``? kind``, a directive, ``...``
        if _KIND_KEY.match(line[0]):
            value = _KIND_LINE.match(line[0])
            if kind is not None or value is None:
                raise _Unusual  # twice, or a value not written as one word on this line
            after = _NEXT_LINE.match(doc, line.end())
            if after is not None and after[1]:
                raise _Unusual  # an indented next line may continue a plain scalar
            kind = value[1] or value[2] or value[3]
    return kind


def workload_parts(text: str) -> list[tuple[int, int]] | None:
    """The ``(start, end)`` offsets of the documents of ``text`` that may be a workload (a kind of
    :data:`POD_SPEC_PATHS` or a ``...List``); [] when there is none; None when every document is
    to be composed (all may be workloads, or one is written in a way the line scan cannot read
    for certain: see :func:`_document_kind`).

    A document is left out only when its top-level ``kind`` is certain from its lines and names
    no workload, or it has no ``kind``: composed, it would give no finding.  (A syntax error in
    a document left out goes unreported, as for YAML that never mentions an image: it cannot
    hide a reference.)
    """
    if _OTHER_BREAKS.search(text):
        return None
    starts = [0, *(m.start() for m in _DOCUMENT_START.finditer(text) if m.start())]
    bounds = list(zip(starts, [*starts[1:], len(text)], strict=True))
    parts: list[tuple[int, int]] = []
    try:
        for start, end in bounds:
            if _may_be_workload(_document_kind(text[start:end])):
                parts.append((start, end))
    except _Unusual:
        return None
    return None if len(parts) == len(bounds) else parts


def _visit(obj: Node, text: str, index: LineIndex, found: list[FoundImage], depth: int) -> None:
    if not isinstance(obj, MappingNode) or depth > 8:
        return
    kind = scalar_text(get(obj, "kind")) or ""
    if kind.endswith("List"):
        for item in sequence(get(obj, "items")):
            _visit(item, text, index, found, depth + 1)
        return
    spec_path = POD_SPEC_PATHS.get(kind)
    if spec_path is None:
        return
    pod: Node | None = obj
    for key in spec_path:
        pod = get(pod, key)
    if not isinstance(pod, MappingNode):
        return
    name = scalar_text(get(get(obj, "metadata"), "name")) or "?"
    for field in CONTAINER_FIELDS:
        for i, container in enumerate(sequence(get(pod, field))):
            image = get(container, "image")
            if image is None:
                continue
            cname = scalar_text(get(container, "name")) or str(i)
            f = scalar_image(
                image,
                text=text,
                index=index,
                source=SourceKind.KUBERNETES,
                context=f"{kind}/{name} {field}[{cname}]",
            )
            if f is not None:
                found.append(f)
