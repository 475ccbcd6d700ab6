"""``doctor``'s checks of an org: IAM settings, token abilities, and policy entries against IAM.

Findings, most serious first:

* error: the token cannot log in, or cannot read teams (``sync`` resolves team names);
* warning: IAM is disabled (nothing is enforced, so mirroring changes no one's access); an entry
  mirrors an image whose category IAM already allows (the mirror is not needed for access); the
  settings or the private repositories cannot be read;
* info: what cannot be verified without a change, and categories the catalog could not confirm.

Policy entries come in as plain ``(entry name, source reference)`` pairs, so this module does
not depend on how the policy file is read.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imagevet.category import AccessSettings, Category, Classification, is_allowed
from imagevet.hub.categories import CatalogClassifier
from imagevet.hub.settings import (
    Ability,
    AbilityCheck,
    CheckStatus,
    probe_token,
)

if TYPE_CHECKING:
    from imagevet.hub.client import HubClient
    from imagevet.reference import Reference

__all__ = ["DoctorReport", "EntryCheck", "Finding", "Level", "diagnose"]

_ERROR_IF_MISSING = {Ability.LOGIN, Ability.READ_TEAMS}


class Level(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    message: str


@dataclass(frozen=True, slots=True)
class EntryCheck:
    """One policy entry: its source's category and whether IAM already lets members pull it."""

    entry: str
    classification: Classification
    allowed: bool | None  # None: the settings are unknown


@dataclass(frozen=True, slots=True)
class DoctorReport:
    org: str
    identity: str | None
    settings: AccessSettings | None
    abilities: list[AbilityCheck]
    entries: list[EntryCheck] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No error-level finding."""
        return all(f.level is not Level.ERROR for f in self.findings)


def _ability_findings(checks: Sequence[AbilityCheck]) -> list[Finding]:
    out = []
    for check in checks:
        if check.status is CheckStatus.MISSING:
            level = Level.ERROR if check.ability in _ERROR_IF_MISSING else Level.WARNING
            out.append(Finding(level, f"the token cannot {check.ability}: {check.detail}"))
        elif check.status is CheckStatus.UNKNOWN:
            out.append(
                Finding(
                    Level.INFO, f"cannot verify that the token can {check.ability}: {check.detail}"
                )
            )
    return out


def _entry_findings(entries: Sequence[EntryCheck], *, enforced: bool) -> list[Finding]:
    out = []
    for e in entries:
        c = e.classification
        if not c.verified:
            out.append(
                Finding(
                    Level.INFO,
                    f"entry {e.entry!r}: the category of {c.reference} "
                    "could not be confirmed in the Hub catalog",
                )
            )
        elif (
            enforced
            and e.allowed
            and c.category not in (Category.ORGANIZATION, Category.OTHER_REGISTRY)
        ):
            out.append(
                Finding(
                    Level.WARNING,
                    f"entry {e.entry!r} mirrors {c.reference} ({c.category.label}), which Image Access "
                    "Management already allows: the mirror is not needed for access",
                )
            )
    return out


async def diagnose(
    client: HubClient,
    org: str,
    *,
    sources: Sequence[tuple[str, Reference]] = (),
    classifier: CatalogClassifier | None = None,
) -> DoctorReport:
    """Check ``org``'s IAM settings, the client's token and each ``(entry, source)`` pair."""
    probe = await probe_token(client, org)
    abilities, settings = probe.checks, probe.settings
    findings: list[Finding] = []
    if settings is not None and not settings.enabled:
        findings.append(
            Finding(
                Level.WARNING,
                f"Image Access Management is disabled for {org}: nothing is enforced, members may "
                "pull any image whether mirrored or not",
            )
        )
    classifier = classifier or CatalogClassifier(client, org=org)
    classified = await classifier.classify([ref for _, ref in sources])
    entries = [
        EntryCheck(entry, c, None if settings is None else is_allowed(c.category, settings))
        for (entry, _), c in zip(sources, classified, strict=True)
    ]
    enforced = settings is not None and settings.enabled
    findings += _ability_findings(abilities) + _entry_findings(entries, enforced=enforced)
    order = list(Level)
    findings.sort(key=lambda f: order.index(f.level))
    identity = str(client.credentials) if client.credentials is not None else None
    return DoctorReport(org, identity, settings, abilities, entries, findings)
