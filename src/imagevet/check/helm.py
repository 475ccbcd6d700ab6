"""Find image references in Helm charts: ``values.yaml`` files and, line by line, ``templates/``.

In values, any key ``image`` (or ending in ``Image``, like ``initImage``) at any depth holds
either a plain reference string, or a map ``{registry, repository, tag, digest}`` put together as
``registry/repository:tag@digest`` (the registry is optional; a missing tag takes the chart's
``appVersion`` when the caller passes it, as ``{{ .Values.image.tag | default .Chart.AppVersion }}``
does, and is otherwise unresolved).  Values with ``{{ }}`` are unresolved, never rendered.

Templates (every ``*.y(a)ml`` and ``*.tpl`` file at any depth under a chart's ``templates/``) are
Go templates, not YAML: they are never parsed, only literal ``image:`` lines are read there, and any
line with a template expression is unresolved (the report folds those into one note per chart).

``--fix`` on a map edits its scalar values: ``registry`` (when present) to the mirror's registry,
``repository`` to the mirror's path (fully qualified when there is no ``registry`` key), ``tag`` to
the vetted tag and ``digest`` to the digest; with no ``digest`` key the tag becomes
``<tag>@<digest>``, which ``{{ .repository }}:{{ .tag }}`` renders as a pinned reference.  A map
without a literal ``tag`` value is not auto-fixable.
"""

from __future__ import annotations

import re

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from imagevet.check.model import (
    FindingKind,
    FixTarget,
    FoundImage,
    HelmImageMap,
    ReplaceSpan,
    SourceKind,
    Span,
)
from imagevet.check.text import LineIndex, is_templated, resolve_value
from imagevet.check.yamlnodes import (
    content_span,
    get,
    items,
    load_documents,
    merge_duplicates,
    scalar_image,
    scalar_text,
)

__all__ = [
    "find_in_helm_template",
    "find_in_helm_values",
    "read_app_version",
]

_MAP_KEYS = ("registry", "repository", "tag", "digest")
_APP_VERSION = re.compile(r"^appVersion:[ \t]*[\"']?([^\"'\s#]+)", re.MULTILINE)
_TEMPLATE_IMAGE = re.compile(r"^[ \t]*(?:-[ \t]+)?image:[ \t]*(\S(?:.*?\S)?)[ \t]*(?:[ \t]#.*)?$", re.MULTILINE)


def read_app_version(chart_yaml: str) -> str | None:
    """The ``appVersion`` of a ``Chart.yaml`` text, read without a YAML parse."""
    m = _APP_VERSION.search(chart_yaml)
    return m.group(1) if m else None


def _is_image_key(key: str) -> bool:
    return key == "image" or key.endswith("Image")


def find_in_helm_values(text: str, path: str, *, app_version: str | None = None) -> list[FoundImage]:
    """Find every image of a Helm values file, strings and maps, with exact positions."""
    index = LineIndex(path, text)
    docs = load_documents(text, index, SourceKind.HELM_VALUES)
    if docs.error is not None:
        return [docs.error]
    found: list[FoundImage] = []
    visited: set[int] = set()

    def walk(node: Node, where: str) -> None:
        if id(node) in visited:
            return
        visited.add(id(node))
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{where}[{i}]")
            return
        if not isinstance(node, MappingNode):
            return
        for key, value in items(node):
            context = f"{where}.{key}" if where else key
            if _is_image_key(key) and isinstance(value, ScalarNode):
                f = scalar_image(value, text=text, index=index, source=SourceKind.HELM_VALUES, context=context)
                if f is not None:
                    found.append(f)
            elif _is_image_key(key) and isinstance(value, MappingNode) and get(value, "repository"):
                found.append(_image_map(value, text, index, context, app_version))
            else:
                walk(value, context)

    for doc in docs.nodes:
        walk(doc, "")
    return merge_duplicates(found)


def _image_map(node: MappingNode, text: str, index: LineIndex, context: str, app_version: str | None) -> FoundImage:
    fields: dict[str, Node | None] = {k: get(node, k) for k in _MAP_KEYS}
    values = {k: (scalar_text(n) or "") for k, n in fields.items()}
    repo_node = fields["repository"]
    assert repo_node is not None
    span, _ = content_span(repo_node, text) if isinstance(repo_node, ScalarNode) else (
        Span(repo_node.start_mark.index, repo_node.start_mark.index),
        False,
    )
    registry, repository, tag, digest = (values[k] for k in _MAP_KEYS)
    detail = "image map (registry, repository, tag, digest)"
    if not tag and not digest and app_version:
        tag, detail = app_version, detail + "; tag from Chart.yaml appVersion"
    value = f"{registry}/{repository}" if registry else repository
    value += f":{tag}" if tag else ""
    value += f"@{digest}" if digest else ""
    if any(is_templated(v) for v in values.values()):
        kind, ref, why = resolve_value(next(v for v in values.values() if is_templated(v)))
    elif not tag and not digest:
        kind, ref, why = FindingKind.UNRESOLVED, None, "no tag: the chart picks one (usually .Chart.AppVersion)"
    else:
        kind, ref, why = resolve_value(value)
    fix, note = _map_fix(fields, text) if kind is FindingKind.REFERENCE else (None, "")
    return FoundImage(
        kind=kind,
        source=SourceKind.HELM_VALUES,
        location=index.location(span.start, span.end),
        text=text[span.start : span.end],
        value=value,
        context=context,
        reference=ref,
        detail=why or detail,
        fix=fix,
        fix_note=note,
    )


def _map_fix(fields: dict[str, Node | None], text: str) -> tuple[FixTarget | None, str]:
    spans: dict[str, Span] = {}
    for key, node in fields.items():
        if node is None:
            continue
        if not isinstance(node, ScalarNode) or (node.style is None and node.value == ""):
            return None, f"the {key} value is not written as a one-line string; edit it by hand"
        span, exact = content_span(node, text)
        if not exact:
            return None, f"the {key} value is not a plain one-line scalar; edit it by hand"
        spans[key] = span
    if "tag" not in spans:
        return None, "the map has no tag value to pin; add tag (and digest) by hand"
    return HelmImageMap(
        repository=spans["repository"],
        tag=spans["tag"],
        registry=spans.get("registry"),
        digest=spans.get("digest"),
    ), ""


def find_in_helm_template(text: str, path: str) -> list[FoundImage]:
    """Find literal ``image:`` lines in a chart template; templated ones are unresolved."""
    index = LineIndex(path, text)
    found: list[FoundImage] = []
    for m in _TEMPLATE_IMAGE.finditer(text):
        start, end = m.span(1)
        raw = m.group(1)
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            start, end, raw = start + 1, end - 1, raw[1:-1]
        if not raw:
            continue
        kind, ref, detail = resolve_value(raw)
        found.append(
            FoundImage(
                kind=kind,
                source=SourceKind.HELM_TEMPLATE,
                location=index.location(start, end),
                text=raw,
                value=raw,
                context="image",
                reference=ref,
                detail=detail,
                fix=ReplaceSpan(Span(start, end)) if kind is FindingKind.REFERENCE else None,
            )
        )
    return found
