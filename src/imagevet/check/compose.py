"""Find image references in Compose files: ``services.<name>.image``.

Anchors, aliases and ``<<`` merges (typically from ``x-`` extension fields) are followed; the
position reported is where the value is written, and a value shared by several services is
reported once, naming them all.  ``${VAR:-default}`` takes its default; a variable with no default
is unresolved (the scan reads no ``.env`` and no environment).  A service with a ``build`` section
is skipped: its ``image`` names what is built, not something pulled.
"""

from __future__ import annotations

from ruamel.yaml.nodes import MappingNode

from imagevet.check.model import FoundImage, SourceKind
from imagevet.check.text import LineIndex
from imagevet.check.yamlnodes import get, items, load_documents, merge_duplicates, scalar_image

__all__ = [
    "find_in_compose",
]


def find_in_compose(text: str, path: str) -> list[FoundImage]:
    """Find every ``services.*.image`` of a Compose file, with exact positions."""
    index = LineIndex(path, text)
    docs = load_documents(text, index, SourceKind.COMPOSE)
    if docs.error is not None:
        return [docs.error]
    found: list[FoundImage] = []
    for doc in docs.nodes:
        services = get(doc, "services")
        if not isinstance(services, MappingNode):
            continue
        for name, service in items(services):
            if not isinstance(service, MappingNode) or get(service, "build") is not None:
                continue
            image = get(service, "image")
            if image is None:
                continue
            f = scalar_image(
                image,
                text=text,
                index=index,
                source=SourceKind.COMPOSE,
                context=f"services.{name}.image",
                interpolate=True,
            )
            if f is not None:
                found.append(f)
    return merge_duplicates(found)
