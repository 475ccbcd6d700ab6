"""YAML read as ruamel.yaml's composed node graph, which keeps every value's exact position.

Composing (not constructing) keeps anchors as shared nodes: a value reached through an alias or
a ``<<`` merge still carries the marks of the place where it is written, which is what a finding
must point at and what ``--fix`` must edit.  Nothing here ever dumps YAML.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from ruamel.yaml.error import MarkedYAMLError, StreamMark, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from imagevet.check.model import FindingKind, FixTarget, FoundImage, ReplaceSpan, SourceKind, Span
from imagevet.check.text import LineIndex, expand_variables, is_templated, resolve_value
from imagevet.policy.located import bounded_yaml, check_flow_nesting

__all__ = [
    "YamlDocument",
    "content_span",
    "get",
    "items",
    "load_documents",
    "load_pruned",
    "merge_duplicates",
    "scalar_image",
    "scalar_text",
    "sequence",
]


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """The composed documents of one file, or the parse error that stopped it."""

    nodes: tuple[Node, ...]
    error: FoundImage | None = None


def load_documents(
    text: str,
    index: LineIndex,
    source: SourceKind,
    *,
    parts: Sequence[tuple[int, int]] | None = None,
) -> YamlDocument:
    """Compose every document of ``text``; a syntax error becomes a PARSE_ERROR finding.

    The composer is ruamel.yaml's pure-Python one without comment scanning or tag resolution:
    comments are never needed (nothing is dumped; ``--fix`` edits the text), and it is about a
    third faster than the round-trip one.  Node marks carry the same exact offsets.  Its composer
    is :class:`~imagevet.policy.located.BoundedComposer`: an alias bomb, a recursive alias or
    nesting too deep is that file's PARSE_ERROR, at the alias, and the scan goes on.

    With ``parts`` (``(start, end)`` offsets of whole documents, each starting at a line start,
    in order), only those slices are composed, each on its own, and every node's marks are
    moved to the offsets of ``text``: the caller has found the other documents cannot matter
    (anchors never cross documents, so each composes as it would within the whole text).
    """
    nodes: list[Node] = []
    for start, end in parts if parts is not None else [(0, len(text))]:
        part = text[start:end] if parts is not None else text
        try:
            check_flow_nesting(part)
            composed = [n for n in bounded_yaml("base", pure=True).compose_all(part) if n is not None]
        except (YAMLError, RecursionError, ValueError) as e:
            return YamlDocument((), _load_error(e, text, index, source, start))
        if start:
            _move_marks(composed, start, text.count("\n", 0, start))
        nodes.extend(composed)
    return YamlDocument(tuple(nodes))


_KEY_PARENT = re.compile(
    r"""^( *)((?:- +)*)(?:[^\s#'"\[\]{}&*!|>%@`,?:-][^:#]*?|"[^"\n]*"|'[^'\n]*'):[ \t]*(?:#.*)?\r?$"""
)
_CONTENT_LINE = re.compile(r"^[ \t]*[^ \t\r\n#]", re.MULTILINE)
_ODD_BREAKS = re.compile("[\x85\u2028\u2029\v\f\x1c\x1d\x1e\t]|\r(?!\n)")
_MARKERS = re.compile(r"^(?:---|\.\.\.|%)", re.MULTILINE)


def load_pruned(text: str, index: LineIndex, source: SourceKind, *, keep: re.Pattern[str]) -> YamlDocument:
    """Compose ``text`` without the parts that cannot matter: comment and blank lines, and every
    ``key:`` whose block (the key line and all lines below it) has no line matching ``keep``; the
    block of a key whose own line matches stays whole.

    What is left is composed and every node's marks are moved back to ``text``'s lines, columns
    and offsets (whole lines are dropped, so a kept line's columns are unchanged).  Values only
    change inside block and multi-line quoted scalars, which never hold a reference the scan
    reads.  A text this cannot prune safely (several documents, tabs, line breaks other than
    ``\n`` and ``\r\n``), or whose pruned text does not compose (an alias to a dropped anchor),
    is composed whole with :func:`load_documents`: its errors are reported as they are there.
    """
    if _ODD_BREAKS.search(text) or _MARKERS.search(text):
        return load_documents(text, index, source)
    lines = text.split("\n")
    n = len(lines)
    starts = [0] * (n + 1)
    for i, line in enumerate(lines):
        starts[i + 1] = starts[i] + len(line) + 1
    blank = [True] * n
    for content in _CONTENT_LINE.finditer(text):  # lines with something but a comment on them
        blank[bisect.bisect_right(starts, content.start()) - 1] = False
    marked = [0] * n
    for hit in keep.finditer(text):
        at = bisect.bisect_right(starts, hit.start()) - 1
        if not blank[at] and "#" not in lines[at][: hit.start() - starts[at]]:
            marked[at] = 1
    hits = [0] * (n + 1)
    for i in range(n):
        hits[i + 1] = hits[i] + marked[i]
    dropped = list(blank)
    i = 0
    while i < n:
        m = None if dropped[i] else _KEY_PARENT.match(lines[i])
        if m is None:
            i += 1
            continue
        column = len(m.group(1)) + len(m.group(2))
        end, in_sequence, first = i + 1, False, True
        while end < n:
            if blank[end]:
                end += 1
                continue
            line = lines[end]
            indent = len(line) - len(line.lstrip(" "))
            if indent > column or (
                indent == column and line[indent : indent + 2].rstrip("\r") in ("-", "- ")
                and (in_sequence or first)
            ):
                in_sequence = in_sequence or indent == column
                first = False
                end += 1
                continue
            break
        if hits[end] == hits[i]:  # nothing below matters
            for j in range(i, end):
                dropped[j] = True
            i = end
        elif hits[i + 1] > hits[i]:  # the key itself matters (``image:``): its block stays whole
            i = end
        else:
            i += 1
    kept = [i for i in range(n) if not dropped[i]]
    if len(kept) == n:
        return load_documents(text, index, source)
    reduced = "\n".join(lines[i] for i in kept) + ("\n" if kept and kept[-1] < n - 1 else "")
    try:
        check_flow_nesting(reduced)
        composed = [nd for nd in bounded_yaml("base", pure=True).compose_all(reduced) if nd is not None]
    except (YAMLError, RecursionError, ValueError):
        return load_documents(text, index, source)
    _remap_marks(composed, kept, starts, len(text), n)
    return YamlDocument(tuple(composed))


def _remap_marks(roots: list[Node], kept: list[int], starts: list[int], size: int, lines: int) -> None:
    """Move every mark of a pruned text's nodes to the original text: reduced line ``l`` is the
    original line ``kept[l]``, columns unchanged."""

    def moved(mark: StreamMark) -> StreamMark:
        if mark.line >= len(kept):
            return StreamMark(mark.name, size, lines - 1, 0)
        line = kept[mark.line]
        return StreamMark(mark.name, min(starts[line] + mark.column, size), line, mark.column)

    _map_marks(roots, moved)


def _load_error(
    e: Exception, text: str, index: LineIndex, source: SourceKind, start: int
) -> FoundImage:
    offset = start
    problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        if mark is not None:
            offset = min(start + mark.index, len(text))
        problem = e.problem or e.context or problem
    return _parse_error(text, index, source, offset, f"YAML: {problem}")


def _move_marks(roots: list[Node], start: int, lines: int) -> None:
    """Shift every mark of the node graphs under ``roots`` by ``start`` characters and ``lines``
    lines."""
    _map_marks(roots, lambda m: StreamMark(m.name, m.index + start, m.line + lines, m.column))


def _map_marks(roots: list[Node], moved: Callable[[StreamMark], StreamMark]) -> None:
    """Replace every start and end mark of the node graphs under ``roots`` by ``moved(mark)``
    (each node once: an alias is the same node)."""
    seen: set[int] = set()
    todo: list[Node] = list(roots)
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        node.start_mark = moved(node.start_mark)
        node.end_mark = moved(node.end_mark)
        if isinstance(node, MappingNode):
            for key, value in node.value:
                todo.extend((key, value))
        elif isinstance(node, SequenceNode):
            todo.extend(node.value)


def _parse_error(
    text: str, index: LineIndex, source: SourceKind, offset: int, message: str
) -> FoundImage:
    end = offset
    while end < len(text) and text[end] not in "\r\n":
        end += 1
    return FoundImage(
        kind=FindingKind.PARSE_ERROR,
        source=source,
        location=index.location(offset, end),
        text=text[offset:end],
        value="",
        context="file",
        detail=message,
    )


def items(node: Node) -> Iterator[tuple[str, Node]]:
    """The key/value pairs of a mapping as YAML merge keys define them (own keys first, then
    each ``<<`` source in order); a key seen once is not repeated.  Non-string keys are skipped."""
    seen: set[str] = set()
    yield from _items(node, seen, set())


def _items(node: Node, seen: set[str], visiting: set[int]) -> Iterator[tuple[str, Node]]:
    if not isinstance(node, MappingNode) or id(node) in visiting:
        return
    visiting.add(id(node))
    merges: list[Node] = []
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            continue
        if key.value == "<<" and key.style is None:
            merges.extend(value.value if isinstance(value, SequenceNode) else [value])
            continue
        if key.value not in seen:
            seen.add(key.value)
            yield key.value, value
    for source in merges:
        yield from _items(source, seen, visiting)


def get(node: Node | None, key: str) -> Node | None:
    """The value of ``key`` in a mapping (merge keys honoured), or None."""
    if node is None:
        return None
    for k, v in items(node):
        if k == key:
            return v
    return None


def sequence(node: Node | None) -> list[Node]:
    """The entries of a sequence node; [] for anything else."""
    return list(node.value) if isinstance(node, SequenceNode) else []


_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


def scalar_text(node: Node | None) -> str | None:
    """The string value of a scalar node; a plain null (``~``, ``null``, nothing) reads as None."""
    if not isinstance(node, ScalarNode) or not isinstance(node.value, str):
        return None
    if node.style is None and node.value in _NULLS:
        return None
    return node.value


def content_span(node: ScalarNode, text: str) -> tuple[Span, bool]:
    """The span of a scalar's characters (inside its quotes) and whether they are exactly its value,
    so that writing over them is safe: plain or quoted on one line, with no escapes."""
    start, end = node.start_mark.index, node.end_mark.index
    if node.style is not None and node.style not in ('"', "'"):  # block scalars: | >
        return Span(start, end), False
    if node.style in ('"', "'"):
        end -= 1  # the closing quote
    # the start mark may sit on an anchor or a tag (``&pg bitnami/x``): count back from the end
    value = node.value if isinstance(node.value, str) else ""
    begin = end - len(value)
    written = begin >= start and text[begin:end] == value and not any(c in value for c in "\r\n")
    if written and (node.style is None or text[begin - 1 : begin] == node.style):
        return Span(begin, end), True
    if node.style in ('"', "'"):
        start = text.find(node.style, start, end) + 1 or start
    return Span(start, end), False


def scalar_image(
    node: Node,
    *,
    text: str,
    index: LineIndex,
    source: SourceKind,
    context: str,
    prefix: str = "",
    interpolate: bool = False,
    variables: Mapping[str, str] | None = None,
    variables_from: str = ".env",
) -> FoundImage | None:
    """The finding for an image written as one scalar; None when the value is empty.

    ``prefix`` (``docker://``) is required and kept out of the span; with ``interpolate``
    Compose's substitution applies with ``variables`` (read from ``variables_from``, the ``.env``
    file; never the process environment) and the defaults written in the value: a variable with
    neither is unresolved, and a required one (``${TAG:?message}``) is a note, never a guess.
    An interpolated reference is marked as inferred and is not auto-fixable.
    """
    if not isinstance(node, ScalarNode):
        start, end = node.start_mark.index, node.end_mark.index
        return FoundImage(
            kind=FindingKind.INVALID,
            source=source,
            location=index.location(start, start),
            text=text[start:end].split("\n", 1)[0],
            value="",
            context=context,
            detail="expected a string",
        )
    value = scalar_text(node)
    if not value or not value.startswith(prefix):
        return None
    span, exact = content_span(node, text)
    value = value[len(prefix) :]
    if exact:
        span = Span(span.start + len(prefix), span.end)
    missing: tuple[str, ...] = ()
    resolved = value
    inferred = ""
    note_only = False
    known = variables or {}
    if interpolate and "$" in value and not is_templated(value):
        expansion = expand_variables(value, known, escape="$")
        resolved, missing = expansion.value, expansion.missing
        note_only = bool(expansion.required) and set(missing) <= set(expansion.required)
        if expansion.used:
            inferred = "interpolation of " + ", ".join(
                f"{name} from {variables_from}" if name in known else f"{name} (unset, its default)"
                for name in expansion.used
            )
    kind, ref, detail = resolve_value(resolved, missing)
    if note_only:
        names = ", ".join(missing)
        detail = (f"requires {names} (${{{missing[0]}:?...}}), set neither in {variables_from} nor by a "
                  "default; not guessed")
    fix: FixTarget | None = None
    note = ""
    if kind is FindingKind.REFERENCE:
        if exact and resolved == value:
            fix = ReplaceSpan(span)
        elif not exact:
            note = "the value is not a plain one-line scalar; edit it by hand"
        elif inferred:
            note = (f"the reference is interpolated ({inferred}); rewriting it would drop the "
                    f"variables: edit the value or {variables_from} by hand")
        else:
            note = "the value uses variables; edit it by hand"
    return FoundImage(
        kind=kind,
        source=source,
        location=index.location(span.start, span.end),
        text=text[span.start : span.end],
        value=resolved,
        context=context,
        reference=ref,
        detail=detail,
        fix=fix,
        fix_note=note,
        inferred=inferred if kind is FindingKind.REFERENCE else "",
        note_only=note_only,
    )


def merge_duplicates(found: list[FoundImage]) -> list[FoundImage]:
    """One finding per span, in text order: a value shared through an anchor is reported once,
    with every context."""
    by_span: dict[tuple[int, int], FoundImage] = {}
    contexts: dict[tuple[int, int], list[str]] = {}
    for f in found:
        key = (f.location.span.start, f.location.span.end)
        if key not in by_span:
            by_span[key] = f
            contexts[key] = [f.context]
        elif f.context not in contexts[key]:
            contexts[key].append(f.context)
    out: list[FoundImage] = []
    for key, f in by_span.items():
        out.append(replace(f, context=", ".join(contexts[key])) if len(contexts[key]) > 1 else f)
    return sorted(out, key=lambda f: (f.location.span.start, f.location.span.end))
