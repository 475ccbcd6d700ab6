"""``--fix``: turn fixable verdicts into text edits at exact offsets, and apply them.

Nothing is re-serialised: each edit replaces the characters of one span (a Dockerfile token, an
ARG default, a YAML scalar inside its quotes), so comments, indentation, quoting, anchors and line
endings outside the spans stay byte for byte.  Two different edits of overlapping spans are a
conflict: neither is applied and both verdicts are reported as skipped.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from imagevet.check.files import write_confined
from imagevet.check.judge import Verdict
from imagevet.check.model import HelmImageMap, KustomizeImage, ReplaceSpan, Span
from imagevet.reference import DOCKER_HUB, Reference

__all__ = [
    "Edit",
    "FileFix",
    "FixPlan",
    "apply_edits",
    "diff_name",
    "edits_for",
    "plan_fixes",
    "unified_diff",
    "write_fixes",
]


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace ``old`` at ``span`` of the file ``path`` by ``new``; ``line``/``column`` locate it."""

    path: str
    span: Span
    old: str
    new: str
    line: int
    column: int
    rule: str
    via: str = ""


@dataclass(frozen=True, slots=True)
class FileFix:
    """One file's edits, with its text before and after; ``tree`` is the directory the write is
    confined to (None: the file's own directory)."""

    path: str
    file: Path
    original: str
    fixed: str
    edits: tuple[Edit, ...]
    tree: Path | None = None

    def diff(self) -> str:
        """The change as a unified diff (``a/path`` -> ``b/path``) that ``git apply`` and
        ``patch -p1`` accept: lines are split at ``\\n`` only (a CR, form feed or U+2028 is part
        of its line, as those tools see it), and a last line without a newline is followed by
        ``\\ No newline at end of file``, so the next file's header starts on its own line."""
        return unified_diff(self.path, self.original, self.fixed)


NO_NEWLINE = "\\ No newline at end of file\n"


def _lines(text: str) -> list[str]:
    """``text`` split after each ``\\n``, the way diff and patch count lines."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


_C_ESCAPES = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def diff_name(name: str) -> str:
    """``name`` as a diff header shows it: as is when it is plain printable ASCII without a space,
    else C-quoted the way git writes it (``"a/my dir/caf\\303\\251"``), which ``git apply`` and
    ``patch`` both read back (a bare space would end the name for ``patch``; a newline would
    start a forged header)."""
    if all("!" <= c <= "~" and c not in '"\\' for c in name):
        return name
    out: list[str] = []
    for c in name:
        if c in _C_ESCAPES:
            out.append(_C_ESCAPES[c])
        elif " " <= c <= "~":
            out.append(c)
        else:
            out.extend(f"\\{b:03o}" for b in c.encode("utf-8", "surrogateescape"))
    return '"' + "".join(out) + '"'


def unified_diff(path: str, original: str, fixed: str) -> str:
    """A unified diff of one file from ``original`` to ``fixed``, shown as ``a/path`` and
    ``b/path``; empty when they are equal."""
    out: list[str] = []
    for line in difflib.unified_diff(
        _lines(original), _lines(fixed), fromfile=diff_name(f"a/{path}"), tofile=diff_name(f"b/{path}")
    ):
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n" + NO_NEWLINE)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class FixPlan:
    """What ``--fix`` changes, and the fixable-looking verdicts it leaves alone (with why)."""

    files: tuple[FileFix, ...]
    skipped: tuple[tuple[Verdict, str], ...]

    @property
    def edits(self) -> list[Edit]:
        return [e for f in self.files for e in f.edits]

    def diff(self) -> str:
        """Every file's change as one patch (``git apply``, ``patch -p1``, run where the paths are
        shown from).  A file reached twice (through an in-tree link) is in it once, under the
        path that is the file itself when one is: a patch through a link is refused."""
        chosen: dict[Path, FileFix] = {}
        for f in self.files:
            real = Path(os.path.realpath(f.file))
            if real not in chosen or Path(os.path.abspath(f.path)) == real:
                chosen[real] = f
        shown = {id(f) for f in chosen.values()}
        return "".join(f.diff() for f in self.files if id(f) in shown)


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def _edit(path: str, text: str, span: Span, new: str, rule: str, via: str = "") -> Edit:
    line, column = _line_col(text, span.start)
    return Edit(path, span, text[span.start : span.end], new, line, column, rule, via)


def _map_edits(
    path: str, text: str, target: HelmImageMap, new: Reference, rule: str
) -> list[Edit]:
    assert new.tag is not None and new.digest is not None
    out: list[Edit] = []
    if target.registry is not None:
        out.append(_edit(path, text, target.registry, new.registry, rule, "registry"))
        repository = new.repository
    else:
        repository = new.repository if new.registry == DOCKER_HUB else new.name
    out.append(_edit(path, text, target.repository, repository, rule, "repository"))
    if target.digest is not None:
        digest = new.digest.hex if target.digest_hex else str(new.digest)
        out.append(_edit(path, text, target.tag, new.tag, rule, "tag"))
        out.append(_edit(path, text, target.digest, digest, rule, "digest"))
    else:
        out.append(_edit(path, text, target.tag, f"{new.tag}@{new.digest}", rule, "tag"))
    return out


def _kustomize_edits(
    path: str, text: str, target: KustomizeImage, new: Reference, rule: str
) -> list[Edit]:
    """Set ``newName``, ``newTag`` and ``digest`` of a Kustomize ``images:`` entry: edited where
    written, the missing ones added after the entry's last key, as the entry writes its keys."""
    assert new.tag is not None and new.digest is not None
    out: list[Edit] = []
    added: list[str] = []
    for key, span, value in (
        ("newName", target.new_name, new.name),
        ("newTag", target.new_tag, new.tag),
        ("digest", target.digest, str(new.digest)),
    ):
        if span is not None:
            out.append(_edit(path, text, span, value, rule, key))
        else:
            added.append(f"{target.indent}{key}: {value}")
    if added:
        at = Span(target.insert_at, target.insert_at)
        out.append(_edit(path, text, at, "".join(added), rule, ", ".join(
            a.split(":", 1)[0].strip(", \r\n") for a in added) + " (added)"))
    return out


def edits_for(verdict: Verdict, text: str) -> list[Edit]:
    """The edits that rewrite ``verdict``'s reference to its replacement; [] when not fixable."""
    fix, new, rule = verdict.found.fix, verdict.replacement, verdict.rule
    if fix is None or new is None or rule is None:
        return []
    path = verdict.found.path
    if isinstance(fix, ReplaceSpan):
        edits = [_edit(path, text, fix.span, str(new), rule.id, fix.via)]
    elif isinstance(fix, KustomizeImage):
        edits = _kustomize_edits(path, text, fix, new, rule.id)
    else:
        edits = _map_edits(path, text, fix, new, rule.id)
    return [e for e in edits if e.old != e.new]


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping edits to ``text``; each must still find its ``old`` text."""
    out = text
    for e in sorted(edits, key=lambda e: e.span.start, reverse=True):
        if out[e.span.start : e.span.end] != e.old:
            raise ValueError(f"{e.path}:{e.line}:{e.column}: expected {e.old!r} before editing")
        out = out[: e.span.start] + e.new + out[e.span.end :]
    return out


def plan_fixes(
    verdicts: Iterable[Verdict],
    texts: Mapping[str, tuple[Path, str]],
    *,
    trees: Mapping[str, Path] | None = None,
) -> FixPlan:
    """Plan the edits for every fixable verdict; ``texts`` maps a shown path to (file, text),
    ``trees`` a shown path to the scanned tree its write is confined to."""
    per_file: dict[str, list[tuple[Verdict, list[Edit]]]] = {}
    skipped: list[tuple[Verdict, str]] = []
    for v in verdicts:
        if v.replacement is None:
            continue
        if v.found.fix is None:
            skipped.append((v, v.found.fix_note or "not auto-fixable"))
            continue
        _, text = texts[v.found.path]
        per_file.setdefault(v.found.path, []).append((v, edits_for(v, text)))
    files: list[FileFix] = []
    for path in sorted(per_file):
        file, text = texts[path]
        accepted = _without_conflicts(per_file[path], skipped)
        if accepted:
            tree = (trees or {}).get(path)
            files.append(
                FileFix(path, file, text, apply_edits(text, accepted), tuple(accepted), tree)
            )
    return FixPlan(tuple(files), tuple(skipped))


def _without_conflicts(
    planned: list[tuple[Verdict, list[Edit]]], skipped: list[tuple[Verdict, str]]
) -> list[Edit]:
    """Drop duplicate edits; drop both sides of overlapping, different edits."""
    unique: dict[tuple[int, int], Edit] = {}
    bad: set[tuple[int, int]] = set()
    for _, edits in planned:
        for e in edits:
            key = (e.span.start, e.span.end)
            if key in unique and unique[key].new != e.new:
                bad.add(key)
            unique.setdefault(key, e)
    spans = sorted(unique)
    for a, b in zip(spans, spans[1:], strict=False):
        if b[0] < a[1]:
            bad.update((a, b))
    rejected: set[int] = set()
    changed = bool(bad)
    while changed:  # a verdict with one bad edit loses all of them, which may spread
        changed = False
        for i, (_, edits) in enumerate(planned):
            keys = {(e.span.start, e.span.end) for e in edits}
            if i not in rejected and keys & bad:
                rejected.add(i)
                bad |= keys
                changed = True
    for i in sorted(rejected):
        skipped.append((planned[i][0], "conflicts with another fix of the same text"))
    accepted = [e for key, e in unique.items() if key not in bad]
    return sorted(accepted, key=lambda e: e.span.start)


def write_fixes(plan: FixPlan) -> None:
    """Write every fixed file back (UTF-8, line endings as read), by atomic replace of the real
    file, confined to its tree (see :func:`imagevet.check.files.write_confined`): never through a
    link out of the tree.  A file reached twice (through an in-tree link) is written once."""
    written: set[Path] = set()
    for f in plan.files:
        real = Path(os.path.realpath(f.file))
        if real in written:
            continue
        tree = f.tree or Path(os.path.realpath(f.file.parent))
        written.add(write_confined(f.file, tree, f.fixed.encode("utf-8")))
