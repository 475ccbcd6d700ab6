"""Find image references in GitHub Actions workflows (``.github/workflows/*.yml``).

``jobs.<id>.container`` (a string, or a mapping with ``image``), ``jobs.<id>.services.<id>.image``
and ``jobs.<id>.steps[*].uses: docker://<image>`` (the span excludes ``docker://``).  Values with
``${{ }}`` expressions are unresolved.
"""

from __future__ import annotations

from ruamel.yaml.nodes import MappingNode, Node

from imagevet.check.model import FoundImage, SourceKind
from imagevet.check.text import LineIndex
from imagevet.check.yamlnodes import (
    get,
    items,
    load_documents,
    merge_duplicates,
    scalar_image,
    sequence,
)

__all__ = [
    "DOCKER_USES_PREFIX",
    "find_in_workflow",
]

DOCKER_USES_PREFIX = "docker://"


def find_in_workflow(text: str, path: str) -> list[FoundImage]:
    """Find every container, service and ``docker://`` step image of a workflow."""
    index = LineIndex(path, text)
    docs = load_documents(text, index, SourceKind.WORKFLOW)
    if docs.error is not None:
        return [docs.error]
    found: list[FoundImage] = []

    def add(node: Node | None, context: str, prefix: str = "") -> None:
        if node is None:
            return
        f = scalar_image(
            node, text=text, index=index, source=SourceKind.WORKFLOW, context=context, prefix=prefix
        )
        if f is not None:
            found.append(f)

    for doc in docs.nodes:
        jobs = get(doc, "jobs")
        if not isinstance(jobs, MappingNode):
            continue
        for job_id, job in items(jobs):
            if not isinstance(job, MappingNode):
                continue
            container = get(job, "container")
            if isinstance(container, MappingNode):
                add(get(container, "image"), f"jobs.{job_id}.container.image")
            else:
                add(container, f"jobs.{job_id}.container")
            services = get(job, "services")
            if isinstance(services, MappingNode):
                for service_id, service in items(services):
                    add(get(service, "image"), f"jobs.{job_id}.services.{service_id}.image")
            for i, step in enumerate(sequence(get(job, "steps"))):
                add(get(step, "uses"), f"jobs.{job_id}.steps[{i}].uses", DOCKER_USES_PREFIX)
    return merge_duplicates(found)
