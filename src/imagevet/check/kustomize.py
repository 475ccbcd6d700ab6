"""Find image references in Kustomize ``images:`` entries (``kustomization.yaml``/``.yml``,
``Kustomization``).

Each entry ``{name, newName, newTag, digest}`` sets the image of every container whose image is
``name``; the reference is the effective image, as Kustomize's image transformer builds it:
``newName`` (else ``name``), then ``:newTag`` and ``@digest`` (a tag and a digest both given are
both kept).  An entry with neither ``newTag`` nor ``digest`` keeps the tag each matching resource
writes, which the scan does not know: it is unresolved.  The finding is at ``newName`` when it is
written, else at ``name``.

``--fix`` sets ``newName`` to the vetted mirror, ``newTag`` to the vetted tag and ``digest`` to
its digest: the written values are edited in place, the missing keys are added after the entry's
last key, as the entry writes its keys (one per line at its indentation, or ``, key: value`` in a
flow mapping).  ``name`` never changes: it is what the entry matches.
"""

from __future__ import annotations

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from imagevet.check.model import FindingKind, FoundImage, KustomizeImage, SourceKind, Span
from imagevet.check.text import LineIndex, is_templated, resolve_value
from imagevet.check.yamlnodes import content_span, get, load_documents, scalar_text, sequence

__all__ = [
    "find_in_kustomization",
]

_KEYS = ("name", "newName", "newTag", "digest")


def find_in_kustomization(text: str, path: str) -> list[FoundImage]:
    """Find every ``images:`` entry of a kustomization, with exact positions."""
    index = LineIndex(path, text)
    docs = load_documents(text, index, SourceKind.KUSTOMIZE)
    if docs.error is not None:
        return [docs.error]
    found: list[FoundImage] = []
    for doc in docs.nodes:
        for i, entry in enumerate(sequence(get(doc, "images"))):
            f = _entry(entry, text, index, f"images[{i}]")
            if f is not None:
                found.append(f)
    return found


def _entry(node: Node, text: str, index: LineIndex, context: str) -> FoundImage | None:
    if not isinstance(node, MappingNode):
        return None
    fields = {k: get(node, k) for k in _KEYS}
    values = {k: scalar_text(n) or "" for k, n in fields.items()}
    name, new_name, new_tag, digest = (values[k] for k in _KEYS)
    at = fields["newName"] if new_name else fields["name"]
    if not isinstance(at, ScalarNode) or not (name or new_name):
        return None
    span, _ = content_span(at, text)
    value = new_name or name
    value += f":{new_tag}" if new_tag else ""
    value += f"@{digest}" if digest else ""
    if not new_tag and not digest:
        kind, ref, detail = (FindingKind.UNRESOLVED, None,
                             f"no newTag or digest: each resource's own tag of {name} is kept")
    elif any(is_templated(v) for v in values.values()):
        kind, ref, detail = resolve_value(next(v for v in values.values() if is_templated(v)))
    else:
        kind, ref, detail = resolve_value(value)
    fix, note = _fix(node, fields, text) if kind is FindingKind.REFERENCE else (None, "")
    return FoundImage(
        kind=kind,
        source=SourceKind.KUSTOMIZE,
        location=index.location(span.start, span.end),
        text=text[span.start : span.end],
        value=value,
        context=f"{context} (name {name})" if name else context,
        reference=ref,
        detail=detail,
        fix=fix,
        fix_note=note,
    )


def _fix(
    node: MappingNode, fields: dict[str, Node | None], text: str
) -> tuple[KustomizeImage | None, str]:
    spans: dict[str, Span | None] = {}
    for key in ("newName", "newTag", "digest"):
        value = fields[key]
        if value is None:
            spans[key] = None
            continue
        if not isinstance(value, ScalarNode) or (value.style is None and value.value == ""):
            return None, f"the {key} value is not written as a one-line string; edit it by hand"
        span, exact = content_span(value, text)
        if not exact:
            return None, f"the {key} value is not a plain one-line scalar; edit it by hand"
        spans[key] = span
    if all(s is not None for s in spans.values()):
        insert_at, indent, flow = 0, "", node.flow_style is True
    elif node.flow_style:
        close = node.end_mark.index - 1
        if text[close : close + 1] != "}":
            return None, "the entry's flow mapping could not be read exactly; edit it by hand"
        insert_at, indent, flow = close, ", ", True
        while insert_at > 0 and text[insert_at - 1] in " \t":
            insert_at -= 1
    else:
        first_key = node.value[0][0]
        last = node.value[-1][1]
        if last.start_mark.line != last.end_mark.line and not (
            last.end_mark.column == 0 and last.end_mark.line == last.start_mark.line + 1
        ):
            return None, "the entry's last value spans lines; edit it by hand"
        line_end = text.find("\n", last.start_mark.index)
        line_end = len(text) if line_end < 0 else line_end
        newline = "\r\n" if text[line_end - 1 : line_end] == "\r" else "\n"
        if newline == "\r\n":
            line_end -= 1
        insert_at = line_end
        indent = newline + " " * first_key.start_mark.column
        flow = False
    return KustomizeImage(
        new_name=spans["newName"],
        new_tag=spans["newTag"],
        digest=spans["digest"],
        insert_at=insert_at,
        indent=indent,
        flow=flow,
    ), ""
