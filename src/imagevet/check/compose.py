"""Find image references in Compose files: ``services.<name>.image``.

Anchors, aliases and ``<<`` merges (typically from ``x-`` extension fields) are followed; the
position reported is where the value is written, and a value shared by several services is
reported once, naming them all.  Variables are interpolated as Compose does, from the ``.env``
file beside the compose file (the caller reads it: :func:`parse_dotenv`) and the defaults written
in the value (``${TAG}``, ``$TAG``, ``${TAG:-1.2}``, ``${TAG-1.2}``, ``$$`` for a dollar sign), never
from the process environment; a variable with neither is unresolved, a required one
(``${TAG:?message}``) left unset is a note.  An interpolated reference is marked as inferred and is
not auto-fixable.  A service with a ``build`` section is skipped: its ``image`` names what is
built, not something pulled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ruamel.yaml.nodes import MappingNode

from imagevet.check.model import FoundImage, SourceKind
from imagevet.check.text import LineIndex, expand_variables
from imagevet.check.yamlnodes import get, items, load_documents, merge_duplicates, scalar_image

__all__ = [
    "find_in_compose",
    "parse_dotenv",
]

_DOTENV_LINE = re.compile(r"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*(.*?)[ \t]*$")
_DOUBLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "\\$"}


def parse_dotenv(text: str) -> dict[str, str]:
    """The variables of a Compose ``.env`` file: ``NAME=value`` lines (``export`` allowed),
    ``#`` comments, ``'single'`` quotes literal, ``"double"`` quotes with escapes; unquoted and
    double-quoted values interpolate the variables defined above them.  Other lines are ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _DOTENV_LINE.match(line)
        if not m:
            continue
        name, raw = m.groups()
        if raw.startswith("'"):
            end = raw.find("'", 1)
            out[name] = raw[1:end] if end > 0 else raw[1:]
            continue
        if raw.startswith('"'):
            chars: list[str] = []
            i = 1
            while i < len(raw) and raw[i] != '"':
                if raw[i] == "\\" and i + 1 < len(raw):
                    chars.append(_DOUBLE_ESCAPES.get(raw[i + 1], "\\" + raw[i + 1]))
                    i += 2
                    continue
                chars.append(raw[i])
                i += 1
            raw = "".join(chars)
        else:
            comment = re.search(r"[ \t]#", raw)
            raw = raw[: comment.start()].rstrip() if comment else raw
        out[name] = expand_variables(raw, out, escape="\\").value if "$" in raw else raw
    return out


def find_in_compose(
    text: str, path: str, *, env: Mapping[str, str] | None = None, env_name: str = ".env"
) -> list[FoundImage]:
    """Find every ``services.*.image`` of a Compose file, with exact positions; ``env`` holds the
    variables of its ``.env`` file (shown as ``env_name``)."""
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
                variables=env or {},
                variables_from=env_name,
            )
            if f is not None:
                found.append(f)
    return merge_duplicates(found)
