"""Tag selection: which upstream tags an entry's :class:`TagRules` mirror.

The rules run in this order (ocync's pipeline, with dregsy's ``keep``)::

    allow (any pattern matches the whole tag)
    -> deny (no pattern matches the whole tag)
    -> when range or keep is set: version tags only (see imagevet.policy.versions)
    -> prereleases dropped unless prereleases: true
    -> range (numeric core inside the range)
    -> keep: the newest N of each family (same v prefix, same number of parts, same variant)
    -> plus every explicit tag in ``tags`` that exists upstream (no other rule applies to them)

Tags that are not versions (``latest``, ``bookworm``, ``sha-1a2b3c``) have no order: ``range``
and ``keep`` never select them.  They are mirrored when ``allow`` matches them and neither
``range`` nor ``keep`` is set, or when they are named in ``tags``.

The pipeline runs only when ``allow``, ``range`` or ``keep`` is set (then a missing ``allow`` lets
every tag through its first step); with none of them only the explicit ``tags`` are selected.
The result is sorted by tag text, so it is deterministic whatever the input order.

Every regex decides on the whole tag (``re.fullmatch``), and an upstream tag outside the tag
grammar (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``: a trailing newline, a space, a control
character) is never selected by any rule, explicit ``tags`` included: ``$`` would have let
``7.2\n`` through a pattern and past a ``deny``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from imagevet.policy.model import TagRules
from imagevet.policy.versions import TagVersion
from imagevet.reference import is_valid_tag

__all__ = ["missing_tags", "select_tags"]


def _patterns_pass(tag: str, rules: TagRules) -> bool:
    if rules.allow and not any(p.fullmatch(tag) for p in rules.allow):
        return False
    return not any(p.fullmatch(tag) for p in rules.deny)


def select_tags(tags: Iterable[str], rules: TagRules) -> list[str]:
    """Apply ``rules`` to the upstream ``tags``; return the selected tags, sorted, without duplicates."""
    unique = {t for t in tags if is_valid_tag(t)}
    selected: set[str] = set()
    if rules.allow or rules.orders_versions:
        passed = [t for t in unique if _patterns_pass(t, rules)]
        if rules.orders_versions:
            selected.update(_newest(passed, rules))
        else:
            selected.update(t for t in passed if rules.prereleases or not _is_prerelease(t))
    selected.update(t for t in rules.tags if t in unique)
    return sorted(selected)


def _newest(passed: Iterable[str], rules: TagRules) -> list[str]:
    """Version tags in range, prereleases per the rules, the newest ``keep`` of each family."""
    families: dict[tuple[str, int, str], list[TagVersion]] = defaultdict(list)
    for tag in passed:
        version = TagVersion.parse(tag)
        if version is None or (version.is_prerelease and not rules.prereleases):
            continue
        if rules.range is not None and not rules.range.contains(version):
            continue
        families[version.family].append(version)
    out: list[str] = []
    for members in families.values():
        members.sort(key=TagVersion.sort_key, reverse=True)
        out.extend(v.tag for v in (members if rules.keep is None else members[: rules.keep]))
    return out


def _is_prerelease(tag: str) -> bool:
    version = TagVersion.parse(tag)
    return version is not None and version.is_prerelease


def missing_tags(tags: Iterable[str], rules: TagRules) -> list[str]:
    """The explicit ``tags`` of ``rules`` that are not among the upstream ``tags``, sorted."""
    unique = {t for t in tags if is_valid_tag(t)}
    return sorted(t for t in set(rules.tags) if t not in unique)
