"""Counters of every request the client sends, by method, kind, registry and status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

__all__ = ["KINDS", "RequestKind", "RequestRecord", "RequestStats"]

RequestKind = Literal["manifest", "blob", "upload", "tags", "referrers", "token", "ping"]
KINDS: tuple[RequestKind, ...] = (
    "manifest",
    "blob",
    "upload",
    "tags",
    "referrers",
    "token",
    "ping",
)


class RequestRecord(NamedTuple):
    """One request: ``status`` is 0 when no HTTP answer came (connection error, timeout)."""

    method: str
    kind: str
    registry: str
    status: int


@dataclass
class RequestStats:
    """Every request sent, in order; ``count()`` filters by method and kind."""

    records: list[RequestRecord] = field(default_factory=list)
    _counts: Counter[tuple[str, str]] = field(default_factory=Counter, repr=False)

    def record(self, method: str, kind: str, registry: str, status: int) -> None:
        self.records.append(RequestRecord(method, kind, registry, status))
        self._counts[(method, kind)] += 1

    def count(
        self, method: str | None = None, kind: str | None = None, *, registry: str | None = None
    ) -> int:
        """How many requests matched: ``count("HEAD", "manifest")``, ``count(kind="token")``."""
        if registry is not None:
            return sum(
                1
                for r in self.records
                if r.registry == registry
                and (method is None or r.method == method)
                and (kind is None or r.kind == kind)
            )
        return sum(
            n
            for (m, k), n in self._counts.items()
            if (method is None or m == method) and (kind is None or k == kind)
        )

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def clear(self) -> None:
        self.records.clear()
        self._counts.clear()

    def summary(self) -> dict[str, int]:
        """``{"HEAD manifest": 3, ...}`` for logs and reports."""
        return {f"{m} {k}": n for (m, k), n in sorted(self._counts.items())}
