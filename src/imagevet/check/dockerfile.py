"""Find image references in a Dockerfile: ``FROM``, ``COPY --from`` and ``RUN --mount=from=``.

Follows the Dockerfile reference (docs.docker.com/reference/dockerfile/):

* parser directives at the top (``# escape=``` changes the line-continuation character);
* instructions are case-insensitive; comment and empty lines inside a continuation are dropped;
* heredoc bodies (``RUN <<EOF ... EOF``) are skipped;
* ``ARG`` before the first ``FROM`` is global and only ``FROM`` sees it; an ``ARG NAME`` inside a
  stage brings the global default in for that stage's ``COPY --from`` and ``RUN --mount``;
* ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` take the ARG defaults; a variable with no default
  (it would come from ``--build-arg``) makes the reference *unresolved*;
* ``FROM name`` naming an earlier stage, ``COPY --from`` naming any stage or a stage index, and
  ``scratch`` are not images.

``--fix`` support: a literal reference is rewritten in place.  A reference that is exactly one
global ARG (``FROM ${BASE}``) whose default is literal, where every image position using that ARG
uses it whole, is fixed by rewriting the ARG default; any other ARG-built reference is not
auto-fixable (the report says so).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from imagevet.check.model import FindingKind, FixTarget, FoundImage, ReplaceSpan, SourceKind, Span
from imagevet.check.text import LineIndex, expand_variables, resolve_value

__all__ = [
    "find_in_dockerfile",
]

_DIRECTIVE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_WHOLE_VAR = re.compile(r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$")
_PHYSICAL = re.compile(r"([^\r\n]*)(\r\n|\n|\r|$)")
_NOT_IMAGES = frozenset({"scratch"})


@dataclass(slots=True)
class _Logical:
    """One instruction with its continuation lines joined, and the offset of every character."""

    chars: str
    offsets: list[int]

    def span(self, start: int, end: int) -> Span | None:
        """The original span of ``chars[start:end]``, or None when it crosses a line break."""
        first, last = self.offsets[start], self.offsets[end - 1]
        if last - first != end - start - 1:
            return None
        return Span(first, last + 1)


@dataclass(slots=True)
class _Token:
    text: str
    start: int
    end: int


@dataclass(slots=True)
class _Arg:
    name: str
    has_default: bool
    value: str | None  # None: no default, or one that depends on an unknown variable
    span: Span | None  # of the default's characters, inside quotes
    literal: bool


@dataclass(slots=True)
class _Candidate:
    text: str
    start: int
    end: int
    logical: _Logical
    context: str
    scope: Mapping[str, str | None]
    is_from: bool
    stages_before: frozenset[str] = field(default_factory=frozenset)


def _physical_lines(text: str) -> list[tuple[str, int]]:
    lines: list[tuple[str, int]] = []
    for m in _PHYSICAL.finditer(text):
        if m.start() == len(text) and not m.group(1):
            break
        lines.append((m.group(1), m.start()))
        if not m.group(2):
            break
    return lines


def _directive_escape(lines: list[tuple[str, int]]) -> tuple[str, int]:
    """The escape character from the parser directives, and the index of the first other line."""
    escape = "\\"
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i][0])
        if not m:
            break
        if m.group(1).lower() == "escape" and m.group(2) in ("\\", "`"):
            escape = m.group(2)
        i += 1
    return escape, i


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _instructions(
    lines: list[tuple[str, int]], escape: str, i: int
) -> Iterator[tuple[str, _Logical, list[_Token]]]:
    while i < len(lines):
        if _is_blank_or_comment(lines[i][0]):
            i += 1
            continue
        chars: list[str] = []
        offsets: list[int] = []
        while i < len(lines):
            content, start = lines[i]
            body = content.rstrip()
            continued = body.endswith(escape)
            piece = body[:-1] if continued else content
            chars.append(piece)
            offsets.extend(range(start, start + len(piece)))
            i += 1
            if not continued:
                break
            chars.append(" ")
            offsets.append(start + len(body) - 1)
            while i < len(lines) and _is_blank_or_comment(lines[i][0]):
                i += 1
        logical = _Logical("".join(chars), offsets)
        tokens = _tokenize(logical.chars, escape)
        if not tokens:
            continue
        keyword = tokens[0].text.upper()
        if keyword in ("RUN", "COPY", "ADD"):
            for m in _HEREDOC.finditer(logical.chars):
                strip, delimiter = m.group(1) == "-", m.group(3)
                while i < len(lines):
                    line = lines[i][0].strip() if strip else lines[i][0]
                    i += 1
                    if line == delimiter:
                        break
        yield keyword, logical, tokens[1:]


def _tokenize(chars: str, escape: str) -> list[_Token]:
    """Split on white space, keeping quoted parts together (quotes stay in the token)."""
    tokens: list[_Token] = []
    i, n = 0, len(chars)
    while i < n:
        while i < n and chars[i].isspace():
            i += 1
        if i >= n:
            break
        start, quote = i, ""
        while i < n and (quote or not chars[i].isspace()):
            ch = chars[i]
            if ch == escape and i + 1 < n:
                i += 2
                continue
            if quote and ch == quote:
                quote = ""
            elif not quote and ch in "\"'":
                quote = ch
            i += 1
        tokens.append(_Token(chars[start:i], start, i))
    return tokens


def _parse_args(
    tokens: list[_Token], logical: _Logical, scope: Mapping[str, str | None], escape: str
) -> list[_Arg]:
    """Read the declarations of ``ARG NAME[=default] ...``; defaults may use earlier ARGs."""
    out: list[_Arg] = []
    for tok in tokens:
        name, eq, raw = tok.text.partition("=")
        if not eq:
            out.append(_Arg(name, False, None, None, False))
            continue
        inner_start = tok.start + len(name) + 1
        inner_end = tok.end
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            raw, inner_start, inner_end = raw[1:-1], inner_start + 1, inner_end - 1
        value = expand_variables(raw, scope, escape=escape)
        span = logical.span(inner_start, inner_end) if inner_end > inner_start else None
        out.append(_Arg(name, True, value.value if value.resolved else None, span, "$" not in raw))
    return out


def _image_candidates(
    text: str,
) -> tuple[list[_Candidate], dict[str, _Arg], set[str]]:
    lines = _physical_lines(text)
    escape, first = _directive_escape(lines)
    global_scope: dict[str, str | None] = {}
    global_args: dict[str, _Arg] = {}
    stage_scope: dict[str, str | None] | None = None
    stages: list[str] = []
    candidates: list[_Candidate] = []
    for keyword, logical, tokens in _instructions(lines, escape, first):
        if keyword == "ARG":
            scope = global_scope if stage_scope is None else stage_scope
            for arg in _parse_args(tokens, logical, scope, escape):
                if stage_scope is None:
                    global_args[arg.name] = arg
                    global_scope[arg.name] = arg.value
                elif arg.has_default:
                    stage_scope[arg.name] = arg.value
                else:  # ARG NAME in a stage: the global default, if any
                    stage_scope[arg.name] = global_scope.get(arg.name)
        elif keyword == "FROM":
            stage_scope = {}
            rest = [t for t in tokens if not t.text.startswith("--")]
            if not rest:
                continue
            image = rest[0]
            stage = rest[2].text.lower() if len(rest) >= 3 and rest[1].text.lower() == "as" else ""
            context = f"FROM (stage {stage})" if stage else "FROM"
            candidates.append(
                _Candidate(image.text, image.start, image.end, logical, context, global_scope,
                           True, frozenset(stages))
            )
            stages.append(stage or str(len(stages)))
        elif keyword == "COPY":
            scope = dict(stage_scope or {})
            for tok in tokens:
                if tok.text.startswith("--from="):
                    candidates.append(
                        _Candidate(tok.text[7:], tok.start + 7, tok.end, logical, "COPY --from",
                                   scope, False)
                    )
        elif keyword == "RUN":
            scope = dict(stage_scope or {})
            for tok in tokens:
                if tok.text.startswith("--mount="):
                    candidates.extend(_mount_from(tok, logical, scope))
    return candidates, global_args, set(stages)


def _mount_from(tok: _Token, logical: _Logical, scope: Mapping[str, str | None]) -> Iterator[_Candidate]:
    pos = tok.start + len("--mount=")
    for part in tok.text[len("--mount=") :].split(","):
        key, eq, value = part.partition("=")
        if eq and key.strip().lower() == "from" and value:
            start = pos + len(key) + 1
            yield _Candidate(value, start, start + len(value), logical, "RUN --mount from", scope, False)
        pos += len(part) + 1


def find_in_dockerfile(text: str, path: str) -> list[FoundImage]:
    """Find every image a Dockerfile pulls, with exact positions; see the module docstring."""
    index = LineIndex(path, text)
    candidates, global_args, all_stages = _image_candidates(text)
    whole_uses: Counter[str] = Counter()
    any_uses: Counter[str] = Counter()
    for c in candidates:
        m = _WHOLE_VAR.match(c.text)
        if m:
            whole_uses[m.group(1) or m.group(2)] += 1
        for name in expand_variables(c.text, {}).used:
            any_uses[name] += 1
    found: list[FoundImage] = []
    for c in candidates:
        expansion = expand_variables(c.text, c.scope)
        value = expansion.value
        if expansion.resolved:
            lowered = value.lower()
            if lowered in _NOT_IMAGES:
                continue
            if c.is_from and lowered in c.stages_before:
                continue
            if not c.is_from and (lowered in all_stages or lowered.isdigit()):
                continue
        kind, ref, detail = resolve_value(value, expansion.missing)
        if expansion.used and kind is not FindingKind.UNRESOLVED:
            detail = f"from ARG {', '.join(expansion.used)}"
        span = c.logical.span(c.start, c.end)
        if span is None:
            span = Span(c.logical.offsets[c.start], c.logical.offsets[c.end - 1] + 1)
            fix: FixTarget | None = None
            note = "the reference is split over a line continuation; edit it by hand"
        else:
            fix, note = _fix_target(c, span, global_args, whole_uses, any_uses)
        found.append(
            FoundImage(
                kind=kind,
                source=SourceKind.DOCKERFILE,
                location=index.location(span.start, span.end),
                text=text[span.start : span.end],
                value=value,
                context=c.context,
                reference=ref,
                detail=detail,
                fix=fix,
                fix_note=note,
            )
        )
    return found


def _fix_target(
    c: _Candidate,
    span: Span,
    global_args: Mapping[str, _Arg],
    whole_uses: Counter[str],
    any_uses: Counter[str],
) -> tuple[FixTarget | None, str]:
    if "$" not in c.text:
        return ReplaceSpan(span), ""
    m = _WHOLE_VAR.match(c.text)
    if c.is_from and m:
        name = m.group(1) or m.group(2)
        arg = global_args.get(name)
        if arg is not None and arg.literal and arg.span is not None:
            if whole_uses[name] == any_uses[name]:
                return ReplaceSpan(arg.span, via=f"ARG {name}"), ""
            return None, f"ARG {name} is also used inside other image references; edit it by hand"
    return None, "built from ARG values; change the ARG defaults (or the line) by hand"
