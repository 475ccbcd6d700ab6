"""select_tags: tables of rules against tag lists, and properties that hold for any input."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagevet.digest import Digest
from imagevet.policy import TagRules, TagVersion, VersionRange, missing_tags, select_tags

REDIS = [
    "latest", "7", "7.2", "7.2.3", "7.2.4", "7.2.5", "7.2.5-debian-12-r0", "7.2.5-debian-12-r1",
    "7.4.0-rc1", "7.4.0", "7.4.1", "7.4", "6.2.14", "6.2", "8.0.0-rc2", "sha-1a2b3c",
]  # fmt: skip
NGINX = [
    "1.27.3", "1.27.2", "1.27.1", "1.27.3-alpine", "1.27.2-alpine", "1.27-alpine", "1.27",
    "1.28.0-rc1-alpine", "mainline", "stable", "stable-alpine", "1.26.2", "1.26.2-alpine",
]  # fmt: skip


def rules(
    *,
    allow: Sequence[str] = (),
    deny: Sequence[str] = (),
    range: str | None = None,
    keep: int | None = None,
    prereleases: bool = False,
    tags: Sequence[str] = (),
) -> TagRules:
    return TagRules(
        allow=tuple(re.compile(p) for p in allow),
        deny=tuple(re.compile(p) for p in deny),
        range=VersionRange.parse(range) if range is not None else None,
        keep=keep,
        prereleases=prereleases,
        tags=tuple(tags),
    )


TABLE: list[tuple[str, list[str], TagRules, list[str]]] = [
    ("explicit only", REDIS, rules(tags=["7.2", "latest", "9.9"]), ["7.2", "latest"]),
    ("allow is anchored", REDIS, rules(allow=[r"7\.2"]), ["7.2"]),
    ("allow patch versions", REDIS, rules(allow=[r"7\.2\.\d+"]), ["7.2.3", "7.2.4", "7.2.5"]),
    ("allow several", REDIS, rules(allow=[r"6\..*", "latest"]), ["6.2", "6.2.14", "latest"]),
    ("deny", REDIS, rules(allow=[r"7\.2\..*"], deny=[r".*-debian-.*"]), ["7.2.3", "7.2.4", "7.2.5"]),
    ("prereleases dropped by default", REDIS, rules(allow=[r"7\.4\..*"]), ["7.4.0", "7.4.1"]),
    ("prereleases kept", REDIS, rules(allow=[r"7\.4\..*"], prereleases=True), ["7.4.0", "7.4.0-rc1", "7.4.1"]),
    ("range: versions only, per family", REDIS, rules(range=">=7.2 <8"),
     ["7.2", "7.2.3", "7.2.4", "7.2.5", "7.2.5-debian-12-r0", "7.2.5-debian-12-r1", "7.4", "7.4.0", "7.4.1"]),
    ("range excludes non-versions even when allowed", REDIS, rules(allow=[".*"], range="^7"),
     ["7", "7.2", "7.2.3", "7.2.4", "7.2.5", "7.2.5-debian-12-r0", "7.2.5-debian-12-r1", "7.4", "7.4.0", "7.4.1"]),
    ("range with prereleases", REDIS, rules(range="^8", prereleases=True), ["8.0.0-rc2"]),
    ("range compares the core: <8 never admits 8.0.0-rc2", REDIS, rules(range="<8", allow=[r"8.*"], prereleases=True), []),
    ("keep 2 per family", REDIS, rules(allow=[r"7\..*"], deny=[".*-debian-.*"], keep=2), ["7.2", "7.4", "7.4.0", "7.4.1"]),
    ("keep 1 with explicit extra", REDIS, rules(allow=[r"7\.\d+\.\d+"], keep=1, tags=["6.2"]), ["6.2", "7.4.1"]),
    ("keep per variant family", REDIS, rules(allow=[r"7\.2\.\d+(-.*)?"], keep=1), ["7.2.5", "7.2.5-debian-12-r0", "7.2.5-debian-12-r1"]),
    ("keep drops non-versions", NGINX, rules(allow=[".*"], keep=1), ["1.27", "1.27-alpine", "1.27.3", "1.27.3-alpine"]),
    ("keep with prereleases counts them", NGINX, rules(allow=[r".*-alpine"], keep=1, prereleases=True), ["1.27-alpine", "1.28.0-rc1-alpine"]),
    ("suffix family by allow", NGINX, rules(allow=[r"\d+\.\d+\.\d+-alpine"], keep=2), ["1.27.2-alpine", "1.27.3-alpine"]),
    ("non-versions by allow", NGINX, rules(allow=["stable.*", "mainline"]), ["mainline", "stable", "stable-alpine"]),
    ("explicit tag ignores deny", NGINX, rules(allow=["stable.*"], deny=["stable"], tags=["stable"]), ["stable", "stable-alpine"]),
    ("explicit prerelease kept", NGINX, rules(tags=["1.28.0-rc1-alpine"]), ["1.28.0-rc1-alpine"]),
    ("keep alone selects versions of every family", ["1.0", "1.1", "x"], rules(keep=1), ["1.1"]),
    ("no selecting rule: nothing", NGINX, rules(deny=["x"]), []),
    ("v prefix is its own family", ["v1.0.0", "v1.0.1", "1.0.2"], rules(range=">=1", keep=1), ["1.0.2", "v1.0.1"]),
    ("duplicates in input", ["1.0", "1.0", "1.1"], rules(allow=[".*"]), ["1.0", "1.1"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tags", "r", "expected"), [(t, r, e) for _, t, r, e in TABLE], ids=[t[0] for t in TABLE]
)
def test_select_tags(tags: list[str], r: TagRules, expected: list[str]) -> None:
    assert select_tags(tags, r) == expected
    assert select_tags(reversed(tags), r) == expected


def test_digests_are_not_tags() -> None:
    r = TagRules(digests=(Digest.of(b"x"),))
    assert select_tags(["latest"], r) == []


def test_missing_tags() -> None:
    assert missing_tags(["a", "b"], rules(tags=["b", "c", "c", "a0"])) == ["a0", "c"]


# ---- properties ------------------------------------------------------------------------------

_part = st.integers(min_value=0, max_value=30).map(str)
_core = st.lists(_part, min_size=1, max_size=4).map(".".join)
_suffix = st.sampled_from(
    ["", "-alpine", "-slim", "-rc1", "-beta.2", "-rc1-alpine", "-debian-12-r1"]
)
_version_tag = st.builds(lambda v, c, s: v + c + s, st.sampled_from(["", "v"]), _core, _suffix)
_other_tag = st.sampled_from(["latest", "stable", "edge", "bookworm", "sha-abc123", "nightly"])
_tags = st.lists(st.one_of(_version_tag, _other_tag), max_size=40)
_rules = st.builds(
    rules,
    allow=st.sampled_from([[".*"], [r"\d.*"], [r"1\..*", "latest"], [r".*-alpine"]]),
    deny=st.sampled_from([[], [".*-slim"], ["latest"]]),
    keep=st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
    prereleases=st.booleans(),
    tags=st.sampled_from([[], ["latest"], ["1.0", "nope"]]),
)
_ranges = st.sampled_from([None, ">=1 <10", "^2", "~1.2", "1.x || >=20"])


@given(_tags, _rules, _ranges)
def test_selection_is_a_sorted_subset_and_deterministic(
    tags: list[str], r: TagRules, range_: str | None
) -> None:
    if range_ is not None:
        r = rules(
            allow=[p.pattern for p in r.allow], deny=[p.pattern for p in r.deny], keep=r.keep,
            prereleases=r.prereleases, tags=list(r.tags), range=range_,
        )  # fmt: skip
    out = select_tags(tags, r)
    assert set(out) <= set(tags)
    assert out == sorted(set(out))
    assert select_tags(list(reversed(tags)), r) == out
    assert select_tags(tags + tags, r) == out


@given(_tags, _rules)
def test_keep_n_per_family(tags: list[str], r: TagRules) -> None:
    out = set(select_tags(tags, r)) - set(r.tags)
    if r.keep is None:
        return
    families = Counter(v.family for t in out if (v := TagVersion.parse(t)) is not None)
    assert all(n <= r.keep for n in families.values())
    assert all(TagVersion.parse(t) is not None for t in out)  # keep never selects non-versions


@given(_tags, _rules)
def test_rules_are_respected(tags: list[str], r: TagRules) -> None:
    for tag in select_tags(tags, r):
        if tag in r.tags:
            continue
        assert any(p.fullmatch(tag) for p in r.allow)
        assert not any(p.fullmatch(tag) for p in r.deny)
        v = TagVersion.parse(tag)
        if not r.prereleases:
            assert v is None or not v.is_prerelease


@given(_tags, _rules)
def test_kept_tags_are_the_newest(tags: list[str], r: TagRules) -> None:
    if r.keep is None:
        return
    out = set(select_tags(tags, r))
    candidates = [v for t in set(tags) if (v := TagVersion.parse(t)) is not None and t not in r.tags
                  and any(p.fullmatch(t) for p in r.allow) and not any(p.fullmatch(t) for p in r.deny)
                  and (r.prereleases or not v.is_prerelease)]  # fmt: skip
    for v in candidates:
        if v.tag in out:
            continue
        newer_kept = [
            w
            for w in candidates
            if w.family == v.family and w.tag in out and w.sort_key() > v.sort_key()
        ]
        assert len(newer_kept) == r.keep, v.tag


# ---- a tag with a trailing newline (or any text outside the tag grammar) is never selected ----


@pytest.mark.parametrize(
    "case",
    [
        rules(range=">=7"),
        rules(keep=3),
        rules(deny=[r"7\.3"], range=">=7"),
        rules(allow=[r"7\.\d+$"]),
        rules(allow=[r"^7\.\d+$"], deny=[r"7\.3"]),
        rules(tags=["7.3\n"]),
    ],
    ids=["range", "keep", "deny", "allow-dollar", "allow-anchored", "explicit"],
)
def test_a_tag_with_a_trailing_newline_is_never_selected(case: TagRules) -> None:
    upstream = ["7.2", "7.2\n", "7.3\n", "7.9\n", "7.9 ", "7.10\r\n"]
    assert all("\n" not in t and " " not in t for t in select_tags(upstream, case))


def test_a_version_is_the_whole_tag() -> None:
    assert TagVersion.parse("7.2\n") is None
    assert TagVersion.parse("7.2") is not None


def test_policy_refuses_an_explicit_tag_with_a_newline() -> None:
    from imagevet.policy import PolicyErrors, parse_policy

    text = (
        "version: 1\ntarget: {namespace: acme}\n"
        "defaults: {approval: {approved_by: a@b.c, approved_on: 2026-01-01, ticket: X}}\n"
        'images:\n  - source: bitnami/redis\n    tags: {tags: ["7.9\\n"]}\n'
    )
    with pytest.raises(PolicyErrors) as info:
        parse_policy(text, path="p.yaml", env={})
    assert info.value.line == 6 and "invalid tag" in str(info.value)


@given(st.text(min_size=1, max_size=12))
def test_only_grammar_tags_are_ever_selected(tag: str) -> None:
    for case in (rules(keep=5), rules(allow=[".*"]), rules(tags=[tag])):
        for got in select_tags([tag], case):
            assert re.fullmatch(r"[\w][\w.-]{0,127}", got, re.ASCII), repr(got)
