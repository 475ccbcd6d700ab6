"""Tag versions (core, prerelease, variant, family) and version ranges."""

from __future__ import annotations

import pytest

from imagevet.policy.versions import InvalidRangeError, TagVersion, VersionRange

PARSE = [
    # tag, core, prerelease?, variant, family
    ("1.25.3", (1, 25, 3), False, "", ("", 3, "")),
    ("1.25.3-alpine", (1, 25, 3), False, "-alpine", ("", 3, "-alpine")),
    ("1.25-alpine", (1, 25), False, "-alpine", ("", 2, "-alpine")),
    ("v1.0.1", (1, 0, 1), False, "", ("v", 3, "")),
    ("1.26.0-rc1-alpine", (1, 26, 0), True, "-alpine", ("", 3, "-alpine")),
    ("1.26.0-rc.2", (1, 26, 0), True, "", ("", 3, "")),
    ("3.13.0a2", (3, 13, 0), True, "", ("", 3, "")),
    ("2.0.0-beta", (2, 0, 0), True, "", ("", 3, "")),
    ("2.0.0-BETA3", (2, 0, 0), True, "", ("", 3, "")),
    ("1.0-alpha.2-slim", (1, 0), True, "-slim", ("", 2, "-slim")),
    ("1.2.3-dev", (1, 2, 3), True, "", ("", 3, "")),
    ("1.2.3-pre", (1, 2, 3), True, "", ("", 3, "")),
    ("1.2.3-preview1", (1, 2, 3), True, "", ("", 3, "")),
    ("1.2.3-SNAPSHOT", (1, 2, 3), True, "", ("", 3, "")),
    ("7.2.4-debian-12-r1", (7, 2, 4), False, "-debian-12-r1", ("", 3, "-debian-12-r1")),
    ("1.2.3-alpine3.19", (1, 2, 3), False, "-alpine3.19", ("", 3, "-alpine3.19")),
    (
        "1.2.3-a",
        (1, 2, 3),
        False,
        "-a",
        ("", 3, "-a"),
    ),  # a single letter is a prerelease only with a number
    ("1.2.3-b2", (1, 2, 3), True, "", ("", 3, "")),
    ("1.2.3.4", (1, 2, 3, 4), False, "", ("", 4, "")),
    ("8", (8,), False, "", ("", 1, "")),
    ("8-chromium", (8,), False, "-chromium", ("", 1, "-chromium")),
    ("20240101", (20240101,), False, "", ("", 1, "")),
    ("1.2.3_build7", (1, 2, 3), False, "_build7", ("", 3, "_build7")),
    ("1.2.3+meta", (1, 2, 3), False, "+meta", ("", 3, "+meta")),
]


@pytest.mark.parametrize(
    ("tag", "core", "pre", "variant", "family"), PARSE, ids=[p[0] for p in PARSE]
)
def test_parse(
    tag: str, core: tuple[int, ...], pre: bool, variant: str, family: tuple[str, int, str]
) -> None:
    v = TagVersion.parse(tag)
    assert v is not None
    assert (v.core, v.is_prerelease, v.variant, v.family) == (core, pre, variant, family)


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "bookworm",
        "sha-1a2b3c",
        "8u302",
        "1.2.3.4.5",
        "1.2.3alpine",
        "v",
        "edge",
        "1.2.",
        ".1",
    ],
)
def test_not_a_version(tag: str) -> None:
    assert TagVersion.parse(tag) is None


def test_order_within_a_family() -> None:
    tags = [
        "1.2.10",
        "1.2.9",
        "1.2.10-rc1",
        "1.2.10-beta2",
        "1.2.10-alpha",
        "1.2.10-beta10",
        "1.3.0-dev",
        "1.2.2",
    ]
    versions = [TagVersion.parse(t) for t in tags]
    ordered = sorted((v for v in versions if v is not None), key=TagVersion.sort_key)
    assert [v.tag for v in ordered] == [
        "1.2.2", "1.2.9", "1.2.10-alpha", "1.2.10-beta2", "1.2.10-beta10", "1.2.10-rc1", "1.2.10", "1.3.0-dev",
    ]  # fmt: skip


RANGES = [
    # range, inside, outside
    (">=1.2 <2", ["1.2", "1.2.0", "1.9.9", "1.25.3-alpine"], ["1.1.9", "2", "2.0.0", "2.0.0-rc1"]),
    (">=1.2, <2", ["1.5"], ["2.1"]),
    (">= 1.2 < 2", ["1.5"], ["2.1"]),
    ("^1.2", ["1.2.0", "1.99"], ["1.1", "2.0"]),
    ("^0.2", ["0.2.0", "0.2.9"], ["0.3.0", "0.1.9"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
    ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0", "1.1"]),
    ("~1", ["1.0", "1.9"], ["2.0", "0.9"]),
    ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
    ("1.2", ["1.2.0", "1.2.7"], ["1.3.0", "1.1.9"]),
    ("1.2.x", ["1.2.0", "1.2.7"], ["1.3.0"]),
    ("1.*", ["1.0", "1.9.9"], ["2.0"]),
    ("*", ["0.0.1", "99"], []),
    ("1.2.3", ["1.2.3", "v1.2.3", "1.2.3-alpine"], ["1.2.4", "1.2"]),
    ("=1.2.3", ["1.2.3"], ["1.2.4"]),
    ("!=1.2.5 >=1.2 <1.3", ["1.2.4", "1.2.6"], ["1.2.5", "1.3.0"]),
    ("!=7.0", ["7.1.0", "6.9"], ["7.0.0", "7.0.5"]),
    (">1.2", ["1.3.0"], ["1.2.9", "1.2.0"]),
    (">1.2.3", ["1.2.4"], ["1.2.3"]),
    ("<=1.2", ["1.2.9", "1.0"], ["1.3.0"]),
    ("<1.2", ["1.1.9"], ["1.2.0"]),
    ("^1.2 || ^3", ["1.5", "3.0", "3.9"], ["2.0", "4.0"]),
]


@pytest.mark.parametrize(("text", "inside", "outside"), RANGES, ids=[r[0] for r in RANGES])
def test_range_contains(text: str, inside: list[str], outside: list[str]) -> None:
    r = VersionRange.parse(text)
    for tag in inside:
        v = TagVersion.parse(tag)
        assert v is not None and r.contains(v), tag
    for tag in outside:
        v = TagVersion.parse(tag)
        assert v is not None and not r.contains(v), tag


BAD_RANGES = [
    ("", "empty range"),
    ("   ", "empty range"),
    (">=", "cannot read '>='"),
    ("abc", "cannot read 'abc'"),
    (">=1.2 <<2", "cannot read '<<2'"),
    ("1.x.3", "a wildcard must end the version"),
    (">1.x", "wildcards only without an operator"),
    ("1.2.3.4.5", "more than 4 parts"),
    (">=1.2 ||", "empty alternative around '||'"),
    ("=> 1.2", "cannot read"),
    ("1.2-alpine", "cannot read '1.2-alpine'"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RANGES, ids=[b[0] or "empty" for b in BAD_RANGES])
def test_bad_range(text: str, message: str) -> None:
    with pytest.raises(InvalidRangeError, match=None) as info:
        VersionRange.parse(text)
    assert message in str(info.value)
    assert (
        "allowed" in str(info.value)
        or "wildcard" in str(info.value)
        or "parts" in str(info.value)
        or "alternative" in str(info.value)
    )
