"""Credentials: secret kept out of reprs; environment reading."""

from __future__ import annotations

import pytest

from imagevet.hub.credentials import (
    DEFAULT_HUB_URL,
    HubCredentials,
    SecretKind,
    hub_settings_from_env,
)


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        ("dckr_pat_abc", SecretKind.PAT),
        ("dckr_oat_abc", SecretKind.OAT),
        ("hunter2", SecretKind.PASSWORD),
    ],
)
def test_kind_and_no_secret_in_text(secret: str, kind: SecretKind) -> None:
    creds = HubCredentials("alice", secret)
    assert creds.kind is kind
    for text in (repr(creds), str(creds), f"{creds}"):
        assert secret not in text
        assert "alice" in text


def test_settings_from_env() -> None:
    assert hub_settings_from_env({}) == (DEFAULT_HUB_URL, None)
    url, creds = hub_settings_from_env(
        {
            "IMAGEVET_HUB_URL": "http://127.0.0.1:8080/",
            "DOCKER_HUB_USERNAME": "acme",
            "DOCKER_HUB_TOKEN": "dckr_oat_x",
        }
    )
    assert url == "http://127.0.0.1:8080"
    assert creds == HubCredentials("acme", "dckr_oat_x")
    assert hub_settings_from_env({"DOCKER_HUB_USERNAME": "alice"})[1] is None
