"""Docker Hub: the management API client, org repositories, image categories and IAM settings.

Modules: ``client`` (HubClient: login, JWT renewal, rate limits, pagination), ``credentials``,
``scopes`` (token kinds and scopes), ``legacy`` (the routes only Docker's own clients use),
``repositories`` (HubRepositoryManager), ``overview`` (the provenance README), ``categories``
(IAM categories from the catalog badge), ``settings`` (IAM settings, token probing), ``tags``.
Everything called is listed in ``shared/dockerhub-api.md``.
"""

from __future__ import annotations

from imagevet.hub.client import HubClient, HubResponse
from imagevet.hub.credentials import (
    DEFAULT_HUB_URL,
    HubCredentials,
    SecretKind,
    hub_settings_from_env,
)
from imagevet.hub.legacy import LegacyRepositoryApi
from imagevet.hub.overview import fit, render_overview, short_description
from imagevet.hub.repositories import HubRepositoryManager, RepositoryState
from imagevet.hub.teams import TeamDirectory

__all__ = [
    "DEFAULT_HUB_URL",
    "HubClient",
    "HubCredentials",
    "HubRepositoryManager",
    "HubResponse",
    "LegacyRepositoryApi",
    "RepositoryState",
    "SecretKind",
    "TeamDirectory",
    "fit",
    "hub_settings_from_env",
    "render_overview",
    "short_description",
]
