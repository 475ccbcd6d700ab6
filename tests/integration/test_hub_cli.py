"""``imagevet classify`` and ``imagevet doctor`` against the fake Hub (CliRunner and a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagevet.cli import app
from imagevet.reference import Reference
from tests.support.fake_hub import FakeHub, fake_hub  # noqa: F401  (fixture)

runner = CliRunner()


@pytest.fixture
def hub_env(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:  # noqa: F811
    assert fake_hub.seed is not None
    monkeypatch.setenv("IMAGEVET_HUB_URL", fake_hub.url)
    monkeypatch.setenv("DOCKER_HUB_USERNAME", fake_hub.seed.username)
    monkeypatch.setenv("DOCKER_HUB_TOKEN", fake_hub.seed.pat)
    fake_hub.add_catalog_entry("bitnami/redis", badge="verified_publisher")
    fake_hub.add_catalog_entry("someone/tool", badge="none")
    return fake_hub


def _secrets(hub: FakeHub) -> list[str]:
    assert hub.seed is not None
    return [hub.seed.pat, hub.seed.oat, hub.seed.password, "eyJ"]


def test_classify_table(hub_env: FakeHub) -> None:
    result = runner.invoke(
        app, ["classify", "nginx", "bitnami/redis:7", "acme/app", "--org", "acme"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == [
        "docker.io/library/nginx  Docker Official Image",
        "docker.io/bitnami/redis  Verified Publisher",
        "docker.io/acme/app       Organization image",
    ]


def test_classify_json_and_unverified(hub_env: FakeHub) -> None:
    hub_env.catalog_status = 500
    result = runner.invoke(app, ["classify", "someone/tool:1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {
            "input": "someone/tool:1",
            "repository": "docker.io/someone/tool",
            "category": "community",
            "label": "Community image",
            "verified": False,
        }
    ]


def test_classify_bad_reference_is_a_usage_error(hub_env: FakeHub) -> None:
    result = runner.invoke(app, ["classify", "Not A Ref"])
    assert result.exit_code == 2
    assert hub_env.requests == []


def test_doctor_warns_when_iam_is_disabled(hub_env: FakeHub) -> None:
    result = runner.invoke(app, ["doctor", "--org", "acme"])
    assert result.exit_code == 0, result.output
    assert "Image Access Management: disabled" in result.output
    assert "nothing is enforced" in result.output
    assert "cannot verify that the token can create repositories" in result.output
    for secret in _secrets(hub_env):
        assert secret not in result.output


def test_doctor_json_with_oat_defaults_org(
    hub_env: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hub_env.seed is not None
    monkeypatch.setenv("DOCKER_HUB_USERNAME", "acme")
    monkeypatch.setenv("DOCKER_HUB_TOKEN", hub_env.seed.oat)
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["org"] == "acme"
    assert report["identity"] == "acme (organization access token)"
    assert report["settings"] is None
    abilities = {a["ability"]: a["status"] for a in report["abilities"]}
    assert abilities["read IAM settings"] == "missing"
    assert any("use an org owner's PAT" in f["message"] for f in report["findings"])
    for secret in _secrets(hub_env):
        assert secret not in result.output


def test_doctor_fails_on_bad_token(hub_env: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HUB_TOKEN", "dckr_pat_not-the-right-one")
    result = runner.invoke(app, ["doctor", "--org", "acme"])
    assert result.exit_code == 1
    assert "the token cannot log in" in result.output
    assert "dckr_pat_not-the-right-one" not in result.output


def test_doctor_without_org_is_a_usage_error(hub_env: FakeHub) -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 2


@dataclass
class _Entry:
    name: str
    source: str


def test_doctor_policy_entries_against_iam(
    hub_env: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub_env.set_settings("acme", enabled=True, allow_official=True, allow_verified=False)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "version: 1\ntarget: {registry: docker.io, namespace: acme}\n"
        "defaults:\n  approval: {approved_by: sec@acme.example}\n  tags: {tags: ['1']}\n"
        "images:\n"
        "  - {name: nginx, source: nginx, target: nginx-mirror}\n"
        "  - {name: redis, source: bitnami/redis}\n"
        "  - {name: tool, source: someone/tool}\n"
    )
    result = runner.invoke(app, ["doctor", "--org", "acme", "--policy", str(policy_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(e["entry"], e["category"], e["allowed_by_iam"]) for e in report["entries"]] == [
        ("nginx", "official", True),
        ("redis", "verified_publisher", False),
        ("tool", "community", False),
    ]
    warnings = [f["message"] for f in report["findings"] if f["level"] == "warning"]
    assert warnings == [
        "entry 'nginx' mirrors docker.io/library/nginx (Docker Official Image), which Image "
        "Access Management already allows: the mirror is not needed for access"
    ]
    assert Reference.parse("nginx").familiar == "nginx"


def test_no_secret_in_debug_output_of_a_real_process(hub_env: FakeHub) -> None:
    env = dict(os.environ)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from imagevet.cli import main; main()",
            "--debug",
            "doctor",
            "--org",
            "acme",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "POST" in proc.stderr  # the debug log did run
    for secret in _secrets(hub_env):
        assert secret not in proc.stdout
        assert secret not in proc.stderr
