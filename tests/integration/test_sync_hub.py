"""A full ``imagevet sync`` into a Docker Hub organization, end to end.

The fake Hub (tests/support/fake_hub.py, following shared/dockerhub-api.md) is the management
API *and* the token service of a real token-auth ``docker-registry``: the sync logs in to the Hub,
creates the org repository with its privacy and descriptions, grants the team, gets a registry
token from the Hub, pushes byte for byte, and writes the provenance overview.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.fake_hub import HubRegistry
from tests.support.images import make_multiarch
from tests.support.pusher import fetch_image, push_image
from tests.support.registry_process import RunningRegistry


def test_sync_into_a_hub_org_creates_configures_pushes_and_documents(
    fake_hub_registry: HubRegistry, plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    hub, registry = fake_hub_registry.hub, fake_hub_registry.registry
    assert hub.seed is not None
    image = make_multiarch(seed="hub-e2e")
    asyncio.run(push_image(plain_registry, f"{unique_repo}/redis", image, "7.4.1"))
    policy = tmp_path / "imagevet.yaml"
    policy.write_text(
        "version: 1\n"
        f"target:\n  registry: {registry.host}\n  namespace: acme\n"
        "defaults:\n  private: true\n  teams: {developers: read}\n"
        "  approval: {approved_by: security@acme.example, ticket: SEC-7, expires: 2099-01-01}\n"
        "images:\n"
        f"  - source: {plain_registry.host}/{unique_repo}/redis\n    tags: {{tags: ['7.4.1']}}\n"
    )
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({registry.host: {"username": hub.seed.username, "password": hub.seed.pat}}))
    env = {
        **os.environ,
        "IMAGEVET_HUB_URL": hub.url,
        "DOCKER_HUB_USERNAME": hub.seed.username,
        "DOCKER_HUB_TOKEN": hub.seed.pat,
        "IMAGEVET_AUTH_FILE": str(auth),
    }

    def imagevet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "imagevet.cli", *args, "--policy", str(policy)],
                              capture_output=True, text=True, timeout=120, env=env)

    assert imagevet("lock").returncode == 0
    planned = imagevet("plan", "--json")
    assert planned.returncode == 0, planned.stderr
    kinds = [a["kind"] for a in json.loads(planned.stdout)["actions"]]
    assert kinds == ["create-repo", "copy"]

    synced = imagevet("--debug", "sync")
    assert synced.returncode == 0, synced.stderr
    repo = hub.repository("acme", "redis")
    assert repo is not None
    assert repo["is_private"] is True
    wanted = f"Vetted mirror of {plain_registry.host}/{unique_repo}/redis"
    assert repo["description"] == (wanted if len(wanted) <= 100 else wanted[:99] + "…")
    assert "7.4.1" in repo["full_description"] and str(image.digest) in repo["full_description"]
    assert "SEC-7" in repo["full_description"]
    assert hub.team_permission("acme", "redis", "developers") == "read"
    copied = asyncio.run(fetch_image(registry, "acme/redis", "7.4.1"))
    assert copied.top.data == image.top.data and copied.blobs == image.blobs
    assert hub.violations == []

    again = imagevet("sync", "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["counts"] == {"noop": 1}  # repository in line, image there

    for secret in (hub.seed.pat, hub.seed.password):
        assert secret not in synced.stdout + synced.stderr + again.stdout + again.stderr
