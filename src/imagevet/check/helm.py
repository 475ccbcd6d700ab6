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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

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
    load_pruned,
    merge_duplicates,
    scalar_image,
    scalar_text,
)

__all__ = [
    "ChartBuild",
    "TagDefault",
    "find_in_helm_template",
    "find_in_helm_values",
    "read_app_version",
    "read_chart_build",
    "with_subchart",
]

_MAP_KEYS = ("registry", "repository", "tag", "digest", "sha")
_APP_VERSION = re.compile(r"^appVersion:[ \t]*[\"']?([^\"'\s#]+)", re.MULTILINE)
_TEMPLATE_IMAGE = re.compile(r"^[ \t]*(?:-[ \t]+)?image:[ \t]*(\S(?:.*?\S)?)[ \t]*(?:[ \t]#.*)?$", re.MULTILINE)
_MAY_MATTER = re.compile(r"image", re.IGNORECASE)
"""A values block with no line mentioning ``image`` (keys ``image``, ``*Image``, ``images``,
``imageRegistry``) holds nothing the scan reads: it is not composed."""
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_APP_VERSION_USE = re.compile(r"\.Chart\.AppVersion\b")
_V_PREFIX = re.compile(r"""printf\s+["`]v%s["`]|print\s+["`]v["`]\s+\$?\.Chart\.AppVersion|["`]v["`]\s*\$?\.Chart\.AppVersion""")
_VALUES_TAG = re.compile(r"\.Values\.([A-Za-z0-9_.]+?)\.tag\b")
_ASSIGN = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*:?=")
_CONDITION = re.compile(r"\s*-?\s*(?:if|else\s+if|with)\b")
_END = re.compile(r"\s*-?\s*end\b")
_SHA_HEX = re.compile(r"@sha256:\{\{")
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\b")


def read_app_version(chart_yaml: str) -> str | None:
    """The ``appVersion`` of a ``Chart.yaml`` text, read without a YAML parse."""
    m = _APP_VERSION.search(chart_yaml)
    return m.group(1) if m else None


@dataclass(frozen=True, slots=True)
class TagDefault:
    """How a chart's templates default an image tag to ``.Chart.AppVersion``: with ``prefix``
    (``v`` for ``printf "v%s" .Chart.AppVersion``), written at ``where`` (``templates/x.tpl:12``)."""

    prefix: str
    where: str
    app_version: str | None = None
    """The appVersion ``.Chart.AppVersion`` is there: a subchart's own, or None for the chart's."""


@dataclass(frozen=True, slots=True)
class ChartBuild:
    """What a chart says about how it builds image references, read from ``Chart.yaml`` and the
    text of its templates (never rendered).

    ``tag_defaults`` maps a values path (``image``, ``kubeRBACProxy.image``) whose ``.tag`` a
    template defaults to ``.Chart.AppVersion`` to how it does; ``tags_used`` are the paths whose
    ``.tag`` the templates use at all; ``convention`` is the one way every template that defaults
    a tag to ``.Chart.AppVersion`` does it (None when none does, or they differ).
    ``templates_read`` says the chart's templates were there to read.
    """

    app_version: str | None = None
    tag_defaults: Mapping[str, TagDefault] = field(default_factory=dict)
    tags_used: frozenset[str] = frozenset()
    convention: TagDefault | None = None
    templates_read: bool = False
    sha_hex: bool = False
    """A template writes ``@sha256:{{ ... }}``: an empty ``digest``/``sha`` value takes the hex
    part only (a written value keeps its own form)."""


def read_chart_build(app_version: str | None, templates: Mapping[str, str]) -> ChartBuild:
    """Read how a chart builds its image tags from its templates (``path in the chart -> text``).

    Every ``{{ ... }}`` action that uses ``.Chart.AppVersion`` is a tag default: ``v``-prefixed
    when it reads ``printf "v%s" .Chart.AppVersion`` (or ``print "v" .Chart.AppVersion``); it
    applies to each ``.Values.<path>.tag`` in the same action, and to those of any action using a
    variable it assigns (``{{- $tag := printf "v%s" .Chart.AppVersion }}`` ...
    ``{{ .Values.image.tag | default $tag }}``), and to the paths an ``if``/``with`` action
    just tested (``{{ if .Values.image.tag }}{{ .Values.image.tag }}{{ else }}{{ print "v"
    .Chart.AppVersion }}{{ end }}``).
    """
    defaults: dict[str, TagDefault] = {}
    sha_hex = False
    variables: dict[str, TagDefault] = {}
    used: set[str] = set()
    seen: list[TagDefault] = []
    actions: list[tuple[str, str]] = []
    for path in sorted(templates):
        text = templates[path]
        if "{{" not in text:
            continue
        sha_hex = sha_hex or bool(_SHA_HEX.search(text))
        pending: list[str] = []  # paths an ``if``/``with`` just tested: ``else`` may default them
        for m in _ACTION.finditer(text):
            body = m.group(1)
            paths = _VALUES_TAG.findall(body)
            used.update(paths)
            if not _APP_VERSION_USE.search(body):
                if paths and "$" in body:
                    actions.append((body, path))
                if paths and _CONDITION.match(body):
                    pending = paths
                elif _END.match(body):
                    pending = []
                continue
            line = text.count("\n", 0, m.start(1) + body.find(".Chart.AppVersion")) + 1
            default = TagDefault("v" if _V_PREFIX.search(body) else "", f"{path}:{line}")
            seen.append(default)
            for p in (*paths, *pending):
                defaults.setdefault(p, default)
            pending = []
            for name in _ASSIGN.findall(body):
                variables.setdefault(name, default)
    for body, _ in actions:
        for name in _VARIABLE.findall(body):
            if name in variables:
                for p in _VALUES_TAG.findall(body):
                    defaults.setdefault(p, variables[name])
    prefixes = {d.prefix for d in seen}
    convention = seen[0] if len(prefixes) == 1 else None
    return ChartBuild(app_version, defaults, frozenset(used), convention, templates_read=True, sha_hex=sha_hex)


def with_subchart(build: ChartBuild, name: str, sub: ChartBuild) -> ChartBuild:
    """``build`` with what the subchart ``name`` (under ``charts/``) says about its tags: a
    subchart reads the parent's values under ``name.``, and its ``.Chart.AppVersion`` is its own."""
    defaults = dict(build.tag_defaults)
    for path, d in sub.tag_defaults.items():
        defaults.setdefault(f"{name}.{path}", TagDefault(d.prefix, f"charts/{name}/{d.where}", sub.app_version))
    used = build.tags_used | {f"{name}.{p}" for p in sub.tags_used}
    return ChartBuild(build.app_version, defaults, frozenset(used), build.convention,
                      build.templates_read, build.sha_hex or sub.sha_hex)


def _is_image_key(key: str) -> bool:
    return key == "image" or key.endswith("Image")


def _global_registry(docs: Sequence[Node]) -> tuple[str, str] | None:
    """``global.imageRegistry`` of a values file, with where it is written, when it is set."""
    for doc in docs:
        node = get(get(doc, "global"), "imageRegistry")
        value = scalar_text(node)
        if value and node is not None and not is_templated(value):
            return value, f"line {node.start_mark.line + 1}"
    return None


def find_in_helm_values(
    text: str,
    path: str,
    *,
    app_version: str | None = None,
    chart: ChartBuild | None = None,
) -> list[FoundImage]:
    """Find every image of a Helm values file, strings and maps, with exact positions.

    A map (under an ``image``/``*Image`` key, at any depth below it: ``image: {busybox: {...}}``)
    is joined as ``registry/repository:tag@digest`` (``sha`` is a digest key); ``global.imageRegistry``
    set in the file replaces every map's registry.  A map without a tag takes ``chart``'s
    ``appVersion`` the way its templates build it (see :func:`read_chart_build`); every map is
    marked as inferred, with what it was inferred from.  ``app_version`` alone (no ``chart``) is a
    chart whose templates were not read.
    """
    index = LineIndex(path, text)
    docs = load_pruned(text, index, SourceKind.HELM_VALUES, keep=_MAY_MATTER)
    if docs.error is not None:
        return [docs.error]
    build = chart if chart is not None else ChartBuild(app_version)
    name = PurePosixPath(path).name
    registry_override = _global_registry(docs.nodes)
    found: list[FoundImage] = []
    visited: set[int] = set()

    def walk(node: Node, where: str, under_image: bool) -> None:
        if id(node) in visited:
            return
        visited.add(id(node))
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{where}[{i}]", under_image)
            return
        if not isinstance(node, MappingNode):
            return
        for key, value in items(node):
            context = f"{where}.{key}" if where else key
            image_key = _is_image_key(key)
            if image_key and isinstance(value, ScalarNode):
                f = scalar_image(value, text=text, index=index, source=SourceKind.HELM_VALUES, context=context)
                if f is not None:
                    found.append(f)
            elif (image_key or under_image) and isinstance(value, MappingNode) and get(value, "repository"):
                found.append(_image_map(value, text, index, context, build, name, registry_override))
            else:
                walk(value, context, under_image or image_key)

    for doc in docs.nodes:
        walk(doc, "", False)
    return merge_duplicates(found)


def _tag_default(build: ChartBuild, context: str, has_digest: bool) -> tuple[str, str] | str:
    """The tag a tagless map gets and what from, or (a plain ``str``) why it has none."""
    known = build.tag_defaults.get(context)
    version = known.app_version if known is not None and known.where.startswith("charts/") else build.app_version
    if version is None:
        return "no tag, and no Chart.yaml appVersion beside it: the chart picks one (.Chart.AppVersion)"
    if known is not None:
        shown = f"{known.prefix}{version}"
        return shown, f"Chart.yaml appVersion {version}, " + (
            f"v-prefixed as {known.where} builds it" if known.prefix else f"as {known.where} builds it")
    if context in build.tags_used:
        return (f"no tag: the chart's templates build {context}.tag without .Chart.AppVersion; "
                "check `helm template` output")
    convention = build.convention
    if convention is not None:
        shown = f"{convention.prefix}{version}"
        return shown, f"Chart.yaml appVersion {version}, " + (
            f"v-prefixed as the chart's templates default tags ({convention.where})" if convention.prefix
            else f"as the chart's templates default tags ({convention.where})")
    if has_digest:
        return "no tag"
    return version, f"Chart.yaml appVersion {version} (as `.tag | default .Chart.AppVersion` would)"


def _image_map(
    node: MappingNode,
    text: str,
    index: LineIndex,
    context: str,
    build: ChartBuild,
    file_name: str,
    registry_override: tuple[str, str] | None,
) -> FoundImage:
    fields: dict[str, Node | None] = {k: get(node, k) for k in _MAP_KEYS}
    sha = fields.pop("sha")
    sha_key = sha is not None and (fields["digest"] is None or (
        not scalar_text(fields["digest"]) and bool(scalar_text(sha))))
    if sha_key:
        fields["digest"] = sha
    values = {k: (scalar_text(n) or "") for k, n in fields.items()}
    repo_node = fields["repository"]
    assert repo_node is not None
    span, _ = content_span(repo_node, text) if isinstance(repo_node, ScalarNode) else (
        Span(repo_node.start_mark.index, repo_node.start_mark.index),
        False,
    )
    registry, repository, tag, digest = (values[k] for k in ("registry", "repository", "tag", "digest"))
    written = ["sha" if k == "digest" and sha_key else k for k in fields if values[k]]
    inferred = f"{file_name} {context} ({', '.join(written)})"
    fix_blocked = ""
    if registry_override is not None:
        registry = registry_override[0]
        inferred += f", global.imageRegistry {registry} ({registry_override[1]})"
        fix_blocked = "global.imageRegistry overrides its registry; edit the values by hand"
    digest_hex = build.sha_hex if not digest else ":" not in digest
    if digest and ":" not in digest:
        digest = f"sha256:{digest}"
    detail = ""
    unresolved_why = ""
    if not tag and not any(is_templated(v) for v in values.values()):
        default = _tag_default(build, context, bool(digest))
        if isinstance(default, tuple):
            tag, source = default
            inferred += f" and {source}"
            fix_blocked = fix_blocked or (
                f"its tag comes from Chart.yaml appVersion ({tag}); set {context}.tag and a digest "
                "in the values by hand")
        elif not digest:
            unresolved_why = default
    value = f"{registry}/{repository}" if registry else repository
    value += f":{tag}" if tag else ""
    value += f"@{digest}" if digest else ""
    if any(is_templated(v) for v in values.values()):
        kind, ref, why = resolve_value(next(v for v in values.values() if is_templated(v)))
        inferred = ""
    elif unresolved_why:
        kind, ref, why = FindingKind.UNRESOLVED, None, unresolved_why
        inferred = ""
    else:
        kind, ref, why = resolve_value(value)
    fix: FixTarget | None = None
    note = ""
    if kind is FindingKind.REFERENCE:
        if fix_blocked:
            note = fix_blocked
        else:
            fix, note = _map_fix(fields, text, digest_hex=digest_hex)
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
        inferred=inferred if kind is FindingKind.REFERENCE else "",
    )


def _map_fix(fields: dict[str, Node | None], text: str, *, digest_hex: bool) -> tuple[FixTarget | None, str]:
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
        digest_hex=digest_hex,
    ), ""


def find_in_helm_template(text: str, path: str) -> list[FoundImage]:
    """Find literal ``image:`` lines in a chart template; templated ones are unresolved."""
    if "image:" not in text:
        return []
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
