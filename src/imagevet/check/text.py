"""Text helpers shared by the finders: offsets to line and column, variable substitution."""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass

from imagevet.check.model import FindingKind, Location, Span
from imagevet.errors import InvalidReferenceError
from imagevet.reference import Reference

__all__ = [
    "Expansion",
    "LineIndex",
    "TEMPLATE_MARKERS",
    "expand_variables",
    "is_templated",
    "resolve_value",
]

TEMPLATE_MARKERS = ("{{", "}}")
"""Go/Helm and GitHub expressions: a value containing one is templated, never guessed."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LineIndex:
    """Turns character offsets of one text into 1-based lines and columns."""

    __slots__ = ("_starts", "_text", "path")

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self._text = text
        self._starts: list[int] | None = None

    def position(self, offset: int) -> tuple[int, int]:
        """The 1-based (line, column) of ``offset``; columns count characters (code points)."""
        text = self._text
        if self._starts is None and "\r" not in text:  # counted in C: no table for a few lookups
            start = text.rfind("\n", 0, offset) + 1
            return text.count("\n", 0, start) + 1, offset - start + 1
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer(r"\r\n|\n|\r", text)]
        line = bisect.bisect_right(self._starts, offset) - 1
        return line + 1, offset - self._starts[line] + 1

    def location(self, start: int, end: int) -> Location:
        """The location of ``[start, end)``; ``end_column`` is the column after the last character."""
        line, column = self.position(start)
        end_line, end_column = self.position(max(end, start))
        return Location(self.path, line, column, end_line, end_column, Span(start, end))


@dataclass(frozen=True, slots=True)
class Expansion:
    """The result of substituting variables: the value, and what could not be resolved."""

    value: str
    missing: tuple[str, ...] = ()
    used: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    """The missing variables written ``${VAR:?message}``/``${VAR?message}``: required, and unset."""

    @property
    def resolved(self) -> bool:
        return not self.missing


def expand_variables(
    text: str, variables: Mapping[str, str | None], *, escape: str = "\\"
) -> Expansion:
    """Substitute ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``,
    ``${VAR+word}``, ``${VAR:?msg}`` and ``${VAR?msg}`` as Dockerfiles and Compose do.

    ``variables`` maps a name to its value, or to None when it is declared without one (a
    build argument or environment variable the scan cannot know).  An unknown or valueless
    variable with no default is reported in ``missing``.  ``escape`` before ``$`` (``\\`` in
    Dockerfiles) or ``$$`` (pass ``escape="$"`` for Compose) is a literal dollar sign.
    """
    out: list[str] = []
    missing: list[str] = []
    used: list[str] = []
    required: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == escape and i + 1 < n and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "{":
            close = _matching_brace(text, i + 1)
            if close < 0:
                missing.append(text[i:])
                out.append(text[i:])
                break
            _substitute(text[i + 2 : close], variables, escape, out, missing, used, required)
            i = close + 1
            continue
        m = _NAME.match(text, i + 1)
        if not m:
            out.append(ch)
            i += 1
            continue
        name = m.group()
        used.append(name)
        value = variables.get(name)
        if value is None:
            missing.append(name)
        else:
            out.append(value)
        i = m.end()
    return Expansion(
        "".join(out), tuple(dict.fromkeys(missing)), tuple(dict.fromkeys(used)), tuple(dict.fromkeys(required))
    )


def _matching_brace(text: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _substitute(
    inner: str,
    variables: Mapping[str, str | None],
    escape: str,
    out: list[str],
    missing: list[str],
    used: list[str],
    required: list[str],
) -> None:
    m = _NAME.match(inner)
    if not m:
        missing.append("${" + inner + "}")
        return
    name = m.group()
    used.append(name)
    rest = inner[m.end() :]
    value = variables.get(name)
    if not rest:
        if value is None:
            missing.append(name)
        else:
            out.append(value)
        return
    colon = rest.startswith(":")
    op = rest[1:2] if colon else rest[:1]
    word = rest[2:] if colon else rest[1:]
    is_set = value is not None and (value != "" or not colon)
    if op == "-":
        if is_set:
            out.append(value or "")
            return
        sub = expand_variables(word, variables, escape=escape)
        out.append(sub.value)
        missing.extend(sub.missing)
        used.extend(sub.used)
        required.extend(sub.required)
    elif op == "+":
        if value is None:  # unknown, or declared without a value: set at build time, if ever
            missing.append(name)
        elif is_set:
            sub = expand_variables(word, variables, escape=escape)
            out.append(sub.value)
            missing.extend(sub.missing)
            used.extend(sub.used)
            required.extend(sub.required)
    elif op == "?":
        if is_set:
            out.append(value or "")
        else:
            missing.append(name)
            required.append(name)
    else:  # ${VAR#pattern} and friends: not evaluated
        missing.append("${" + inner + "}")


def is_templated(value: str) -> bool:
    """Whether ``value`` holds a Go/Helm template or a GitHub expression."""
    return any(marker in value for marker in TEMPLATE_MARKERS)


def resolve_value(value: str, missing: tuple[str, ...] = ()) -> tuple[FindingKind, Reference | None, str]:
    """Decide what an image value is: a reference, unresolved (template or variables), or invalid.

    Returns the kind, the parsed reference (for REFERENCE) and a detail sentence.
    """
    if is_templated(value):
        return FindingKind.UNRESOLVED, None, "templated value: the scan does not render templates"
    if missing:
        names = ", ".join(missing)
        return FindingKind.UNRESOLVED, None, f"depends on {names}, which has no default here"
    try:
        return FindingKind.REFERENCE, Reference.parse(value), ""
    except InvalidReferenceError as e:
        return FindingKind.INVALID, None, e.reason
