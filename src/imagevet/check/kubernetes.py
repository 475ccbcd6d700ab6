"""Find image references in Kubernetes manifests (multi-document YAML with ``apiVersion``/``kind``).

Every container list (``initContainers``, ``containers``, ``ephemeralContainers``) of the pod spec
of a Pod, PodTemplate, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,
Job (``spec.template.spec``) and CronJob (``spec.jobTemplate.spec.template.spec``); ``List`` kinds
are walked through their ``items``.  Templated values (``{{ }}``) are unresolved.
"""

from __future__ import annotations

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
    index = LineIndex(path, text)
    docs = load_documents(text, index, SourceKind.KUBERNETES)
    if docs.error is not None:
        return [docs.error]
    found: list[FoundImage] = []
    for doc in docs.nodes:
        _visit(doc, text, index, found, depth=0)
    return merge_duplicates(found)


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
