"""Docker Hub login credentials: an identifier and a secret that never shows in a repr or a message."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from imagevet.hub.scopes import OAT_PREFIX, PAT_PREFIX

__all__ = [
    "DEFAULT_HUB_URL",
    "ENV_HUB_URL",
    "ENV_TOKEN",
    "ENV_USERNAME",
    "HubCredentials",
    "SecretKind",
    "hub_settings_from_env",
]

DEFAULT_HUB_URL = "https://hub.docker.com"
ENV_HUB_URL = "IMAGEVET_HUB_URL"
ENV_USERNAME = "DOCKER_HUB_USERNAME"
ENV_TOKEN = "DOCKER_HUB_TOKEN"


class SecretKind(enum.StrEnum):
    """What the secret is, judged from its prefix."""

    PAT = "personal access token"
    OAT = "organization access token"
    PASSWORD = "password"


@dataclass(frozen=True, slots=True)
class HubCredentials:
    """``identifier`` is a username, or the org name for an organization access token.

    ``secret`` is a password, a PAT (``dckr_pat_…``) or an OAT (``dckr_oat_…``); it is kept out
    of ``repr`` and ``str``.
    """

    identifier: str
    secret: str = field(repr=False)

    @property
    def kind(self) -> SecretKind:
        if self.secret.startswith(OAT_PREFIX):
            return SecretKind.OAT
        if self.secret.startswith(PAT_PREFIX):
            return SecretKind.PAT
        return SecretKind.PASSWORD

    def __str__(self) -> str:
        return f"{self.identifier} ({self.kind})"


def hub_settings_from_env(env: Mapping[str, str]) -> tuple[str, HubCredentials | None]:
    """Read the Hub URL and credentials from ``env`` (the CLI passes ``os.environ``).

    ``IMAGEVET_HUB_URL`` (default https://hub.docker.com), ``DOCKER_HUB_USERNAME`` and
    ``DOCKER_HUB_TOKEN``; without both of the latter the client is anonymous.
    """
    url = env.get(ENV_HUB_URL, "").strip() or DEFAULT_HUB_URL
    username = env.get(ENV_USERNAME, "").strip()
    token = env.get(ENV_TOKEN, "").strip()
    creds = HubCredentials(username, token) if username and token else None
    return url.rstrip("/"), creds
