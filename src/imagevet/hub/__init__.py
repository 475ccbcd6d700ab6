"""Docker Hub: the management API client, org repositories, image categories and IAM settings.

Modules: ``client`` (HubClient: login, JWT renewal, rate limits, pagination; it sends through
the registry client's HTTP stack, :mod:`imagevet.registry.transport` and
:mod:`imagevet.registry.retry`, so both clients share one transport seam, one retry policy and
one way of turning answers into typed errors), ``credentials``, ``scopes`` (token kinds and
scopes), ``legacy`` (the ``/v2/repositories/...`` routes: slashed, personal access tokens only),
``teams`` (team name -> id), ``repositories`` (HubRepositoryManager), ``overview`` (the
provenance README), ``categories`` (IAM categories from the catalog badge), ``settings`` (IAM
settings, token probing), ``doctor`` (settings and policy checked together) and ``tags`` (tag
digests for cheap change detection).  Everything
called is listed in ``shared/dockerhub-api.md``; ``docs/dockerhub.md`` says which token scopes
each call needs.
"""

from __future__ import annotations

from imagevet.hub.categories import CatalogClassifier
from imagevet.hub.client import HubClient, HubResponse
from imagevet.hub.credentials import (
    DEFAULT_HUB_URL,
    HubCredentials,
    SecretKind,
    hub_settings_from_env,
)
from imagevet.hub.doctor import DoctorReport, EntryCheck, Finding, Level, diagnose
from imagevet.hub.legacy import LegacyRepositoryApi
from imagevet.hub.overview import fit, render_overview, short_description
from imagevet.hub.repositories import HubRepositoryManager, RepositoryState
from imagevet.hub.settings import (
    Ability,
    AbilityCheck,
    CheckStatus,
    TokenProbe,
    probe_token,
    read_access_settings,
)
from imagevet.hub.tags import HubTag, get_tag, list_tags
from imagevet.hub.teams import TeamDirectory

__all__ = [
    "Ability",
    "AbilityCheck",
    "CatalogClassifier",
    "CheckStatus",
    "DEFAULT_HUB_URL",
    "DoctorReport",
    "EntryCheck",
    "Finding",
    "HubClient",
    "HubCredentials",
    "HubRepositoryManager",
    "HubResponse",
    "HubTag",
    "LegacyRepositoryApi",
    "Level",
    "RepositoryState",
    "SecretKind",
    "TeamDirectory",
    "TokenProbe",
    "diagnose",
    "fit",
    "get_tag",
    "hub_settings_from_env",
    "list_tags",
    "probe_token",
    "read_access_settings",
    "render_overview",
    "short_description",
]
