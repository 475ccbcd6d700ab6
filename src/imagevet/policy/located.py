"""YAML read with the line and column of every key and value, and errors that point at them.

ruamel.yaml (round-trip mode, YAML 1.2, so ``yes``/``on`` stay strings) *composes* the document
into nodes; this module builds plain Python data from the nodes itself and records a
:class:`Span` per path.  Building the data here rather than with ruamel's constructor means
that every problem gets a location: ruamel raises a bare ``ValueError`` with no position for a
date such as ``2026-02-30``, and silently keeps the last of two duplicate keys.  Dates stay
strings (the schema parses them); keys are always the text as written (``7.10:`` is the key
``"7.10"``, not the float 7.1).  ``<<`` merge keys and anchors work.

Hostile input stays bounded: a text longer than :data:`MAX_YAML_CHARS` is refused unread, and
:class:`BoundedComposer` (also used by ``imagevet check`` for the files it scans) counts, as it
composes, how many values the aliases would expand to.  Past :data:`ALIAS_BUDGET_FLOOR` plus
:data:`ALIAS_BUDGET_RATIO` times the values written, or on an alias inside its own anchor, it
stops with an error at that alias: a few hundred bytes of nested anchors (a "billion laughs")
never get built.

:class:`PolicyErrors` collects every error of a file (sorted by position) so that a user fixes
them all in one go; it is a :class:`~imagevet.errors.PolicyError` itself.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.error import MarkedYAMLError, StreamMark
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from imagevet.errors import PolicyError

__all__ = [
    "ALIAS_BUDGET_FLOOR",
    "ALIAS_BUDGET_RATIO",
    "BoundedComposer",
    "Located",
    "MAX_YAML_CHARS",
    "PolicyErrors",
    "Span",
    "YamlLimitError",
    "bounded_yaml",
    "check_flow_nesting",
    "expand_env",
    "field_path",
    "hint_key",
    "parse_yaml",
    "read_yaml_file",
    "validation_errors",
]

YamlPath = tuple[str | int, ...]

_MAX_DEPTH = 64

MAX_YAML_CHARS = 16 * 2**20
"""The longest policy or lock text read (16 MiB): far above any real one, far below trouble."""
ALIAS_BUDGET_FLOOR = 10_000
ALIAS_BUDGET_RATIO = 10
"""Aliases may expand a document by at most ``FLOOR + RATIO x`` the values written in it."""
_MAX_NESTING = 200
"""Collections nested deeper than this are refused while composing (before Python's recursion
limit would stop the composer with a bare RecursionError)."""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")
_TAG = "tag:yaml.org,2002:"


class PolicyErrors(PolicyError):
    """Every error found in one policy or lock file; ``errors`` is sorted by line and column.

    ``path``, ``line``, ``column``, ``field`` and ``message`` are those of the first error, and
    ``str()`` lists them all, one per line.
    """

    def __init__(self, errors: Sequence[PolicyError]) -> None:
        flat: list[PolicyError] = []
        for e in errors:
            flat.extend(e.errors if isinstance(e, PolicyErrors) else [e])
        if not flat:
            raise ValueError("PolicyErrors needs at least one error")
        self.errors: tuple[PolicyError, ...] = tuple(
            sorted(flat, key=lambda e: (e.path, e.line or 0, e.column or 0, e.field or ""))
        )
        first = self.errors[0]
        super().__init__(
            first.path, first.message, line=first.line, column=first.column, field=first.field
        )

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


@dataclass(frozen=True, slots=True)
class Span:
    """Where a value (and its key, in a mapping) was written: 1-based line and column."""

    line: int
    column: int
    key_line: int | None = None
    key_column: int | None = None
    raw: str | None = None
    """The scalar as written, for messages such as 'quote it: "1.10"'."""
    tag: str | None = None
    """The YAML type the scalar was read as: str, int, float, bool, null or timestamp."""


@dataclass(frozen=True, slots=True)
class Located:
    """A YAML document as plain data, with a :class:`Span` for every path in it."""

    path: str
    data: Any
    spans: Mapping[YamlPath, Span]

    def span(self, path: YamlPath) -> Span:
        """The span of ``path``, or of its longest prefix that was written."""
        while path not in self.spans and path:
            path = path[:-1]
        return self.spans.get(path, Span(1, 1))

    def error(self, path: YamlPath, message: str, *, at_key: bool = False) -> PolicyError:
        """A PolicyError at ``path`` (its key when ``at_key``) with the dotted field name."""
        span = self.span(path)
        line, column = span.line, span.column
        if at_key and span.key_line is not None and span.key_column is not None:
            line, column = span.key_line, span.key_column
        return PolicyError(
            self.path, message, line=line, column=column, field=field_path(path) or None
        )

    def location(self, path: YamlPath) -> str:
        """``line:column`` of ``path``, for messages that point at a second place."""
        span = self.span(path)
        return f"line {span.line}:{span.column}"


def field_path(path: Iterable[str | int]) -> str:
    """``images[0].tags.allow[2]`` from ``("images", 0, "tags", "allow", 2)``; keys that are not
    names are quoted: ``tags["7.10"].digest``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _NAME.match(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else part
    return out


def _tag(node: Node) -> str:
    """``str``, ``int``, ... for the core schema's tags; the full tag for any other."""
    tag = str(node.tag or "")
    return tag.removeprefix(_TAG)


def _scalar(node: ScalarNode) -> Any:
    value: str = node.value
    tag = _tag(node)
    try:
        if tag == "null":
            return None
        if tag == "bool":
            return value.lower() == "true"
        if tag == "int":
            digits = value.replace("_", "")
            sign = -1 if digits.startswith("-") else 1
            body = digits.lstrip("+-")
            if body[:2] in ("0o", "0x", "0b"):
                return sign * int(body, 0)
            return int(digits)
        if tag == "float":
            lower = value.lower().replace("_", "")
            if lower.lstrip("+-") in (".inf", ".nan"):
                return float(lower.replace(".", ""))
            return float(lower)
    except ValueError:
        return value
    return value


class _Builder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.spans: dict[YamlPath, Span] = {}
        self.errors: list[PolicyError] = []

    def _error(self, node: Node, message: str, path: YamlPath) -> None:
        self.errors.append(
            PolicyError(
                self.path,
                message,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
                field=field_path(path) or None,
            )
        )

    def build(self, node: Node, path: YamlPath, key: Node | None = None, depth: int = 0) -> Any:
        raw = node.value if isinstance(node, ScalarNode) else None
        if isinstance(node, ScalarNode):
            tag: str | None = _tag(node)
        else:
            tag = "seq" if isinstance(node, SequenceNode) else "map"
        self.spans[path] = Span(
            node.start_mark.line + 1,
            node.start_mark.column + 1,
            key.start_mark.line + 1 if key is not None else None,
            key.start_mark.column + 1 if key is not None else None,
            raw,
            tag,
        )
        if depth > _MAX_DEPTH:
            self._error(node, f"nested more than {_MAX_DEPTH} levels (a recursive alias?)", path)
            return None
        if isinstance(node, ScalarNode):
            if tag not in ("str", "int", "float", "bool", "null", "timestamp"):
                self._error(node, f"unsupported YAML tag {str(node.tag)!r}: use plain values", path)
                return None
            return _scalar(node)
        if isinstance(node, SequenceNode):
            return [
                self.build(item, (*path, i), None, depth + 1) for i, item in enumerate(node.value)
            ]
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        self._error(
            node, "unsupported YAML node", path
        )  # pragma: no cover - composer makes no others
        return None

    def _mapping(self, node: MappingNode, path: YamlPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, Node] = {}
        merged: list[MappingNode] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and _tag(key_node) == "merge":
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if isinstance(source, MappingNode):
                        merged.append(source)
                    else:
                        self._error(value_node, "'<<' merges mappings only", path)
                continue
            if not isinstance(key_node, ScalarNode):
                self._error(key_node, "a key must be a plain scalar", path)
                continue
            name = str(key_node.value)
            if name in seen:
                first = seen[name].start_mark
                self._error(
                    key_node,
                    f"duplicate key {name!r} (first at line {first.line + 1}:{first.column + 1})",
                    (*path, name),
                )
                continue
            seen[name] = key_node
            out[name] = self.build(value_node, (*path, name), key_node, depth + 1)
        for source in merged:  # explicit keys win over merged ones, earlier merges over later
            for key_node, value_node in source.value:
                name = str(key_node.value)
                if isinstance(key_node, ScalarNode) and name not in out:
                    out[name] = self.build(value_node, (*path, name), key_node, depth + 1)
        return out


class YamlLimitError(ComposerError):
    """A document refused for its shape (alias expansion, nesting), not for its syntax."""


class BoundedComposer(Composer):
    """ruamel.yaml's composer, refusing alias bombs and recursive aliases at the alias itself.

    Every node composed counts once (``written``); every alias use counts the size its anchor
    would have once expanded (memoised per node, so counting is linear in the text).  When the
    expanded total exceeds ``ALIAS_BUDGET_FLOOR + ALIAS_BUDGET_RATIO * written``, or an alias
    points into its own, still open anchor, a :class:`YamlLimitError` marks the alias.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.written = 0
        self.expanded = 0
        self._sizes: dict[int, int] = {}
        self._open: list[str] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:
                self._count_alias(event, node)
            return super().compose_node(parent, index)
        self.written += 1
        if self.depth >= _MAX_NESTING:
            raise YamlLimitError(
                None, None, f"nested more than {_MAX_NESTING} levels deep", event.start_mark
            )
        anchor = getattr(event, "anchor", None)
        if anchor is None:
            return super().compose_node(parent, index)
        self._open.append(anchor)  # registered before its children: open until complete
        try:
            return super().compose_node(parent, index)
        finally:
            self._open.pop()

    def _count_alias(self, event: Any, node: Node) -> None:
        if event.anchor in self._open:
            raise YamlLimitError(
                None,
                None,
                f"alias *{event.anchor} is inside its own anchor (a recursive alias)",
                event.start_mark,
            )
        self.expanded += self._size(node)
        if self.expanded > ALIAS_BUDGET_FLOOR + ALIAS_BUDGET_RATIO * self.written:
            raise YamlLimitError(
                None,
                None,
                f"aliases expand to more than {ALIAS_BUDGET_FLOOR:,} values plus "
                f"{ALIAS_BUDGET_RATIO} times the values written (an alias bomb?) at "
                f"*{event.anchor}: write the values out, or nest fewer aliases",
                event.start_mark,
            )

    def _size(self, root: Node) -> int:
        """How many nodes ``root`` holds once every alias in it is expanded (capped, memoised)."""
        cap = ALIAS_BUDGET_FLOOR + ALIAS_BUDGET_RATIO * max(self.written, 1) + 1
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            if id(node) in self._sizes:
                continue
            children = _children(node)
            if done:
                total = 1 + sum(self._sizes.get(id(c), 1) for c in children)
                self._sizes[id(node)] = min(total, cap)
                continue
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in self._sizes)
        return self._sizes[id(root)]


_BRACKETS = re.compile(r"[\[\]{}]")


def check_flow_nesting(text: str) -> None:
    """Raise :class:`YamlLimitError` where ``[``/``{`` nesting passes the composer's limit.

    ruamel.yaml's scanner looks ahead over every open flow collection on a line before the
    composer sees the first one (quadratic: seconds for a 2 KB line of ``[``), so the limit is
    also checked on the raw text first, counting brackets (in quotes and comments too, which can
    only refuse a text nested that deep in brackets anyway).
    """
    depth = 0
    for m in _BRACKETS.finditer(text):
        if m[0] in "[{":
            depth += 1
            if depth > _MAX_NESTING:
                start = m.start()
                line = text.count("\n", 0, start)
                column = start - (text.rfind("\n", 0, start) + 1)
                raise YamlLimitError(
                    None,
                    None,
                    f"nested more than {_MAX_NESTING} levels deep",
                    StreamMark(None, start, line, column),
                )
        elif depth:
            depth -= 1


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def bounded_yaml(typ: str, *, pure: bool = False) -> YAML:
    """A ruamel.yaml instance whose composer is :class:`BoundedComposer`."""
    yaml = YAML(typ=typ, pure=pure)
    yaml.Composer = BoundedComposer
    return yaml


def read_yaml_file(path: Path) -> str:
    """The text of the policy or lock at ``path``: a drop-in for ``path.read_text("utf-8")``
    (it raises the same OSError and UnicodeDecodeError) that never blocks on a FIFO, never reads
    a device such as ``/dev/zero``, and reads at most :data:`MAX_YAML_CHARS` bytes: those are
    PolicyErrors naming the file."""
    label = str(path)
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else (
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
        )
        raise PolicyErrors([PolicyError(label, f"{what}: not read")])
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the stat above
            raise PolicyErrors([PolicyError(label, "not a regular file: not read")])
        data = bytearray()
        while len(data) <= MAX_YAML_CHARS:
            chunk = os.read(fd, min(1 << 20, MAX_YAML_CHARS + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_YAML_CHARS:
        raise PolicyErrors([
            PolicyError(label, f"the file is larger than {MAX_YAML_CHARS // 2**20} MiB: not read")
        ])
    return bytes(data).decode("utf-8")


def parse_yaml(text: str, *, path: str) -> Located:
    """Compose ``text`` and build located data; raise PolicyErrors for every syntax problem.

    A text longer than :data:`MAX_YAML_CHARS`, too deeply nested, or whose aliases expand past
    the budget of :class:`BoundedComposer` is refused with the position where it went wrong.
    """
    if len(text) > MAX_YAML_CHARS:
        raise PolicyErrors([
            PolicyError(
                path,
                f"the file is larger than {MAX_YAML_CHARS // 2**20} MiB: not read",
                line=1,
                column=1,
            )
        ])
    try:
        check_flow_nesting(text)
        node = bounded_yaml("rt").compose(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = e.problem or e.context or "invalid YAML"
        if e.context and e.problem and e.context_mark is not None:
            what += f" ({e.context} at line {e.context_mark.line + 1}:{e.context_mark.column + 1})"
        raise PolicyErrors(
            [
                PolicyError(
                    path,
                    f"YAML: {what}" if isinstance(e, YamlLimitError) else f"YAML syntax error: {what}",
                    line=mark.line + 1 if mark is not None else None,
                    column=mark.column + 1 if mark is not None else None,
                )
            ]
        ) from None
    if node is None:
        raise PolicyErrors([PolicyError(path, "the file is empty", line=1, column=1)])
    builder = _Builder(path)
    data = builder.build(node, ())
    if builder.errors:
        raise PolicyErrors(builder.errors)
    return Located(path, data, builder.spans)


_ENV = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|\$\{")


def expand_env(located: Located, env: Mapping[str, str], errors: list[PolicyError]) -> Located:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in string values (``$$`` is a literal ``$``).

    ``${VAR:-default}`` uses the default when VAR is unset or empty.  An unset variable without
    a default, or a malformed ``${``, is an error at the value's position.
    """

    def expand(value: Any, path: YamlPath) -> Any:
        if isinstance(value, dict):
            return {k: expand(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [expand(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "$" not in value:
            return value

        def one(m: re.Match[str]) -> str:
            if m[0] == "$$":
                return "$"
            name = m["name"]
            if name is None:
                errors.append(
                    located.error(
                        path,
                        "malformed '${': write ${NAME} or ${NAME:-default} ($$ for a literal $)",
                    )
                )
                return m[0]
            got = env.get(name)
            if m["default"] is not None:
                return got or m["default"]  # ${VAR:-default}: unset or empty takes the default
            if got is not None:
                return got
            errors.append(
                located.error(
                    path, f"environment variable {name} is not set (or write ${{{name}:-default}})"
                )
            )
            return m[0]

        return _ENV.sub(one, value)

    return Located(located.path, expand(located.data, ()), located.spans)


# ---- pydantic errors -> located PolicyErrors ------------------------------------------------


def _walk(data: Any, loc: Sequence[str | int]) -> tuple[YamlPath, bool]:
    """The data path a pydantic ``loc`` refers to, skipping union and validator markers."""
    path: list[str | int] = []
    cur = data
    on_key = False
    for seg in loc:
        if seg == "[key]":
            on_key = True
            continue
        found = (isinstance(cur, dict) and seg in cur) or (
            isinstance(cur, list) and isinstance(seg, int) and 0 <= seg < len(cur)
        )
        if found:
            path.append(seg)
            cur = cur[seg]
    return tuple(path), on_key


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation can hold (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[Any] = []
    for arg in typing.get_args(annotation) if origin is not None else ():
        out.extend(_unwrap(arg))
    return out


def _is_dict(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (dict, Mapping):
        return True
    return origin is not None and any(_is_dict(a) for a in typing.get_args(annotation))


def _model_at(model: type[BaseModel], path: YamlPath) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    skip_key = False
    for seg in path:
        if isinstance(seg, int) or current is None:
            continue
        if skip_key:  # a key of a dict field, not a field name
            skip_key = False
            continue
        info = current.model_fields.get(seg)
        if info is None:
            return None
        models = _unwrap(info.annotation)
        skip_key = _is_dict(info.annotation)
        current = models[0] if models else None
    return current


def hint_key(path: YamlPath) -> str:
    """The key of ``path`` in a hints table: entry fields relative to the entry (``tags.allow``),
    top-level fields under ``policy.`` (``policy.target.namespace``); list indexes dropped."""
    names = [p for p in path if isinstance(p, str)]
    if names and names[0] in ("images", "defaults") and len(names) > 1:
        return ".".join(names[1:])
    return ".".join(["policy", *names])


def _expected_options(ctx: Mapping[str, Any]) -> list[str]:
    return re.findall(r"'([^']*)'", str(ctx.get("expected", "")))


def _describe_input(span: Span) -> str:
    if span.raw is None:
        return "a list" if span.tag == "seq" else "a mapping"
    kind = {
        "int": "the number",
        "float": "the number",
        "bool": "the boolean",
        "null": "null",
        "timestamp": "the date",
    }
    what = kind.get(span.tag or "", "the string")
    return f"{what} {span.raw}" if span.tag != "null" else "null (an empty value)"


def _message(
    err: Mapping[str, Any],
    span: Span,
    model: type[BaseModel],
    path: YamlPath,
    hints: Mapping[str, str],
) -> str:
    kind = str(err["type"])
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    hint = hints.get(hint_key(path))
    tail = f"; allowed: {hint}" if hint else ""
    if kind == "missing":
        return f"required key is missing{tail}"
    if kind == "extra_forbidden":
        parent = _model_at(model, path[:-1])
        allowed = sorted(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.6)
        out = f"unknown key {path[-1]!r}"
        if close:
            out += f" (did you mean {close[0]!r}?)"
        if allowed:
            out += f"; allowed keys: {', '.join(allowed)}"
        return out
    if kind in ("literal_error", "enum"):
        options = _expected_options(ctx)
        got = err.get("input")
        close = difflib.get_close_matches(str(got), options, n=1, cutoff=0.6) if options else []
        out = f"expected one of {', '.join(options) or ctx.get('expected')}, got {_describe_input(span)}"
        return out + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "string_type":
        out = f"expected a string, got {_describe_input(span)}"
        if span.tag in ("int", "float", "bool", "timestamp"):
            return out + f' (quote it: "{span.raw}")'
        return out + tail
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {_describe_input(span)}{tail}"
    if kind == "bool_type":
        out = f"expected true or false, got {_describe_input(span)}"
        if span.raw and span.raw.lower() in ("yes", "no", "on", "off", "y", "n"):
            out += " (YAML 1.2 reads it as a string)"
        return out
    if kind == "list_type":
        return f"expected a list, got {_describe_input(span)}{tail}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of key: value, got {_describe_input(span)}{tail}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, got {_describe_input(span)}"
    if kind == "string_too_short":
        return "must not be empty"
    return f"{err['msg']}{tail}"


def validation_errors(
    located: Located,
    exc: ValidationError,
    model: type[BaseModel],
    *,
    hints: Mapping[str, str] | None = None,
) -> list[PolicyError]:
    """Turn each pydantic error into a PolicyError at its file:line:column with its field path.

    ``hints`` maps a field name to a description of what it allows, added to type errors.
    """
    out: list[PolicyError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path, on_key = _walk(located.data, loc)
        field = path
        if err["type"] == "missing" and loc and isinstance(loc[-1], str):
            field = (*path, loc[-1])
        span = located.span(path)
        message = _message(err, span, model, field, hints or {})
        error = located.error(path, message, at_key=on_key or err["type"] == "extra_forbidden")
        out.append(
            PolicyError(
                error.path,
                message,
                line=error.line,
                column=error.column,
                field=field_path(field) or None,
            )
        )
    return out
