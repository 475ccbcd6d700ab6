"""Tag versions: a numeric core, an optional prerelease and a variant suffix; and version ranges.

Container tags are not PEP 440 or SemVer: ``packaging`` rejects ``1.25.3-alpine`` and SemVer reads
``-alpine`` as a prerelease that sorts before ``1.25.3``.  So a tag is split the way Renovate's
docker versioning does it::

    [v] core [prerelease] [variant]
    v   1.25.3              -alpine         core (1, 25, 3), variant "-alpine"
        1.26.0  -rc1        -alpine         prerelease rc 1 of 1.26.0, variant "-alpine"
        3.13.0  a2                          prerelease a 2 (PEP 440 style, no separator)
        7.2.4               -debian-12-r1   variant "-debian-12-r1"

* The core is 1 to 4 dot-separated numbers, optionally after ``v``.
* A prerelease follows the core, with or without a separator (``-``, ``.``, ``_``): one of
  ``alpha``, ``beta``, ``rc``, ``pre``, ``preview``, ``dev``, ``snapshot``, ``nightly``,
  ``canary``, ``ea``, or ``a``/``b``/``m`` followed by a number (``-alpine`` is not ``a``);
  then optional numbers (``-rc.2``, ``beta3``).  Case is ignored.
* Whatever follows is the variant suffix; it must start with ``-``, ``_`` or ``+``.
  Anything else (``8u302``, ``1.2.3.4.5``, ``latest``, ``sha-1a2b``) is not a version.

Tags are only compared inside a *family*: the same ``v`` prefix, the same number of core parts and
the same variant.  ``1.27.3-alpine`` and ``1.27.2-alpine`` are one family; ``1.27-alpine`` (a
floating tag) is another, and so is ``1.27.3``.  Inside a family a release sorts after its
prereleases, and prereleases sort dev < alpha < beta < pre/preview < rc.

Ranges compare the numeric core only (missing parts are 0), so ``>=1.3`` admits ``1.3.0-rc1``
when prereleases are allowed, and ``<2`` never admits ``2.0.0-rc1``.  Syntax (npm-like)::

    >=1.2 <2          comparators joined by spaces (or commas) must all hold
    ^1.2              >=1.2.0 <2.0.0   (^0.2 is >=0.2 <0.3, ^0.0.3 is >=0.0.3 <0.0.4)
    ~1.2              >=1.2.0 <1.3.0   (~1 is >=1 <2)
    1.2  1.2.x  1.2.*  >=1.2.0 <1.3.0  (a partial version is a wildcard)
    1.2.3  =1.2.3     exactly 1.2.3;   !=1.2.5 excludes one version
    A || B            either range
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["InvalidRangeError", "TagVersion", "VersionRange"]

MAX_PARTS = 4

_CORE = re.compile(r"^(?P<v>[vV]?)(?P<core>\d+(?:\.\d+){0,3})(?P<rest>.*)\Z", re.ASCII)
_PRE = re.compile(
    r"^[-._]?(?P<word>alpha|beta|rc|preview|pre|dev|snapshot|nightly|canary|ea|a|b|m)"
    r"(?P<num>(?:[-._]?\d+)*)(?=$|[-_+])",
    re.ASCII | re.IGNORECASE,
)
_PRE_RANK = {
    "dev": 0, "snapshot": 0, "nightly": 0, "canary": 0,
    "alpha": 1, "a": 1, "ea": 1, "m": 1,
    "beta": 2, "b": 2,
    "pre": 3, "preview": 3,
    "rc": 4,
}  # fmt: skip
_NEEDS_NUMBER = frozenset({"a", "b", "m"})


class InvalidRangeError(ValueError):
    """A version range that does not parse; the message says what is wrong and what is allowed."""


@dataclass(frozen=True, slots=True)
class TagVersion:
    """A tag read as a version: ``TagVersion.parse("1.25.3-alpine")``; ``None`` if it is not one."""

    tag: str
    prefix: str
    core: tuple[int, ...]
    prerelease: tuple[int, tuple[int, ...]] | None
    variant: str

    @classmethod
    def parse(cls, tag: str) -> TagVersion | None:
        """Split ``tag`` into core, prerelease and variant; ``None`` when it is not a version."""
        m = _CORE.fullmatch(tag)
        if m is None:
            return None
        core = tuple(int(p) for p in m["core"].split("."))
        rest = m["rest"]
        prerelease: tuple[int, tuple[int, ...]] | None = None
        pre = _PRE.match(rest)
        if pre is not None:
            word = pre["word"].lower()
            numbers = tuple(int(n) for n in re.findall(r"\d+", pre["num"]))
            if word not in _NEEDS_NUMBER or numbers:
                prerelease = (_PRE_RANK[word], numbers)
                rest = rest[pre.end() :]
        if rest and rest[0] not in "-_+":
            return None
        return cls(tag, m["v"], core, prerelease, rest)

    @property
    def family(self) -> tuple[str, int, str]:
        """Tags comparable with this one share it: ``(prefix, number of core parts, variant)``."""
        return (self.prefix, len(self.core), self.variant)

    @property
    def is_prerelease(self) -> bool:
        return self.prerelease is not None

    @property
    def padded(self) -> tuple[int, ...]:
        """The core padded with zeros to four parts, as ranges compare it."""
        return self.core + (0,) * (MAX_PARTS - len(self.core))

    def sort_key(self) -> tuple[tuple[int, ...], int, int, tuple[int, ...], str]:
        """Order inside a family: core, then prereleases before the release, then the tag text."""
        if self.prerelease is None:
            return (self.core, 1, 0, (), self.tag)
        rank, numbers = self.prerelease
        return (self.core, 0, rank, numbers, self.tag)


_Bound = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Comparator:
    op: str  # one of < <= > >= = != and "!prefix" (v does not start with version)
    version: _Bound

    def holds(self, v: _Bound) -> bool:
        if self.op == "!prefix":
            return v[: len(self.version)] != self.version
        if self.op == "<":
            return v < self.version
        if self.op == "<=":
            return v <= self.version
        if self.op == ">":
            return v > self.version
        if self.op == ">=":
            return v >= self.version
        if self.op == "=":
            return v == self.version
        return v != self.version


_TOKEN = re.compile(r"^(?P<op>\^|~|>=|<=|>|<|==|=|!=)?\s*(?P<ver>[vV]?[0-9xX*]+(?:\.[0-9xX*]+)*)\Z")
_ALLOWED = "allowed: comparators such as >=1.2 <2, ^1.2, ~1.2, 1.2.x, !=1.2.5, joined with spaces; || between alternatives"


def _pad(parts: list[int]) -> _Bound:
    return tuple(parts + [0] * (MAX_PARTS - len(parts)))


def _bump(parts: list[int], index: int) -> _Bound:
    """The version just above every version starting with ``parts[: index + 1]``."""
    head = parts[: index + 1]
    head[-1] += 1
    return _pad(head)


def _comparators(token: str, text: str) -> list[_Comparator]:
    m = _TOKEN.fullmatch(token)
    if m is None:
        raise InvalidRangeError(f"invalid range {text!r}: cannot read {token!r}; {_ALLOWED}")
    op = m["op"] or ""
    raw = m["ver"].lstrip("vV").split(".")
    if len(raw) > MAX_PARTS:
        raise InvalidRangeError(
            f"invalid range {text!r}: {token!r} has more than {MAX_PARTS} parts"
        )
    wild = [p in ("x", "X", "*") for p in raw]
    if any(wild) and not all(wild[wild.index(True) :]):
        raise InvalidRangeError(
            f"invalid range {text!r}: {token!r}: a wildcard must end the version"
        )
    parts = [int(p) for p, w in zip(raw, wild, strict=True) if not w]
    if any(wild) and op not in ("", "="):
        raise InvalidRangeError(
            f"invalid range {text!r}: {token!r}: wildcards only without an operator"
        )
    if not parts:  # "*" or "x": any version
        return [_Comparator(">=", _pad([0]))]
    partial = len(raw) < 3 or any(wild)
    if op == "^":
        first = next((i for i, p in enumerate(parts) if p != 0), len(parts) - 1)
        return [_Comparator(">=", _pad(parts)), _Comparator("<", _bump(parts, first))]
    if op == "~":
        index = 0 if len(parts) == 1 else 1
        return [_Comparator(">=", _pad(parts)), _Comparator("<", _bump(parts, index))]
    if partial:  # a partial version stands for every version it starts
        last = len(parts) - 1
        if op in ("", "=", "=="):
            return [_Comparator(">=", _pad(parts)), _Comparator("<", _bump(parts, last))]
        if op == ">":
            return [_Comparator(">=", _bump(parts, last))]
        if op == "<=":
            return [_Comparator("<", _bump(parts, last))]
        if op == "!=":
            return [_Comparator("!prefix", tuple(parts))]
    return [_Comparator("=" if op in ("", "==") else op, _pad(parts))]


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A parsed range: alternatives (``||``), each a list of comparators that must all hold."""

    text: str
    alternatives: tuple[tuple[_Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse ``text`` (see the module docstring); raise InvalidRangeError saying why not."""
        if not text.strip():
            raise InvalidRangeError(f"empty range; {_ALLOWED}")
        alternatives: list[tuple[_Comparator, ...]] = []
        for alt in text.split("||"):
            # "> = 1.2" is not allowed but ">= 1.2" is: glue an operator to the version after it
            glued = re.sub(r"(\^|~|>=|<=|==|!=|>|<|=)\s+", r"\1", alt.replace(",", " "))
            tokens = glued.split()
            if not tokens:
                raise InvalidRangeError(f"invalid range {text!r}: empty alternative around '||'")
            comparators: list[_Comparator] = []
            for token in tokens:
                comparators.extend(_comparators(token, text))
            alternatives.append(tuple(comparators))
        return cls(text, tuple(alternatives))

    def contains(self, version: TagVersion) -> bool:
        """Whether the numeric core of ``version`` satisfies the range."""
        v = version.padded
        return any(all(c.holds(v) for c in alt) for alt in self.alternatives)

    def __str__(self) -> str:
        return self.text
