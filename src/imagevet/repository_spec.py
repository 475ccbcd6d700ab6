"""What a target repository should look like (privacy, descriptions, teams) and the seam that makes it so.

Plain OCI registries create a repository on first push and have no settings, so they need no
manager.  Docker Hub organizations do: ``imagevet.hub.repositories`` implements
:class:`RepositoryManager` and ``sync`` calls it before pushing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["RepoChange", "RepoChangeKind", "RepoSpec", "RepositoryManager", "TeamPermission"]


class TeamPermission(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """The desired state of one target repository ``namespace/name``."""

    namespace: str
    name: str
    private: bool = True
    description: str = ""
    full_description: str = ""
    teams: Mapping[str, TeamPermission] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"{self.namespace}/{self.name}"


class RepoChangeKind(enum.StrEnum):
    CREATE = "create"
    PRIVACY = "privacy"
    DESCRIPTION = "description"
    TEAM = "team"


@dataclass(frozen=True, slots=True)
class RepoChange:
    """One change a repository needs, e.g. ``RepoChange(TEAM, "grant developers read")``."""

    kind: RepoChangeKind
    detail: str
    team: str | None = None


class RepositoryManager(Protocol):
    """Brings target repositories in line with their :class:`RepoSpec`."""

    async def diff(self, spec: RepoSpec) -> Sequence[RepoChange]:
        """Return what must change for ``spec`` to hold (empty when it already does)."""
        ...

    async def apply(self, spec: RepoSpec, changes: Sequence[RepoChange]) -> None:
        """Carry out ``changes`` (as returned by :meth:`diff`); idempotent."""
        ...
