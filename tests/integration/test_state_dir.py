"""``IMAGEVET_STATE_DIR``: run state kept apart from the policy, as a deployment does (the policy
and lock on a read-only mount, the ledger on a volume of its own)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from imagevet.cli import app
from tests.support.images import make_multiarch
from tests.support.pusher import push_image_sync
from tests.support.registry_process import RunningRegistry

runner = CliRunner()


def test_sync_and_audit_keep_their_state_where_imagevet_state_dir_says(
    plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = make_multiarch(seed="state-dir")
    push_image_sync(plain_registry, unique_repo, image, "1.0")
    config = tmp_path / "config"
    config.mkdir()
    policy = config / "imagevet.yaml"
    policy.write_text(
        "version: 1\n"
        f"target: {{layout: {tmp_path / 'mirror'}, namespace: acme}}\n"
        "images:\n"
        f"  - source: {plain_registry.host}/{unique_repo}\n"
        "    mode: follow\n"
        "    tags: {tags: ['1.0']}\n"
        "    approval: {approved_by: alice, expires: 2099-12-31}\n"
    )
    # follow mode writes the lock: give it one, then make the policy's directory read-only
    assert runner.invoke(app, ["lock", "-p", str(policy)]).exit_code == 0
    config.chmod(stat.S_IRUSR | stat.S_IXUSR)
    state = tmp_path / "state"
    monkeypatch.setenv("IMAGEVET_STATE_DIR", str(state))
    monkeypatch.delenv("IMAGEVET_HUB_URL", raising=False)
    try:
        out = runner.invoke(app, ["sync", "-p", str(policy), "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["counts"] == {"copy": 1}
        assert not (config / ".imagevet").exists()
        records = [json.loads(line) for line in (state / "ledger.jsonl").read_text().splitlines()]
        assert any(r["event"].get("digest") == str(image.digest) for r in records), records
        assert json.loads((state / "last-sync.json").read_text())["counts"] == {"copy": 1}
        verified = runner.invoke(app, ["audit", "verify", "-p", str(policy)])
        assert verified.exit_code == 0, verified.output
        assert str(state / "ledger.jsonl") in verified.output
    finally:
        config.chmod(stat.S_IRWXU)


def test_without_the_variable_state_stays_beside_the_policy(tmp_path: Path, monkeypatch: Any) -> None:
    from imagevet.cli._policy import state_store
    from imagevet.policy import load_policy

    policy = tmp_path / "imagevet.yaml"
    policy.write_text("version: 1\ntarget: {layout: mirror, namespace: acme}\nimages: []\n")
    monkeypatch.delenv("IMAGEVET_STATE_DIR", raising=False)
    assert state_store(load_policy(policy, env={})).location == str(tmp_path / ".imagevet")
    monkeypatch.setenv("IMAGEVET_STATE_DIR", "")
    assert state_store(load_policy(policy, env={})).location == str(tmp_path / ".imagevet")
    monkeypatch.setenv("IMAGEVET_STATE_DIR", "relative/state")
    assert state_store(load_policy(policy, env={})).location == os.path.join("relative", "state")


def test_the_run_lock_is_taken_in_imagevet_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs never overlap on one state directory, wherever IMAGEVET_STATE_DIR puts it; the
    policy's own directory (read-only here) is never written."""
    from imagevet.engine.runlock import acquire_run_lock

    config = tmp_path / "config"
    config.mkdir()
    policy = config / "imagevet.yaml"
    policy.write_text("version: 1\ntarget: {layout: mirror, namespace: acme}\nimages: []\n")
    config.chmod(stat.S_IRUSR | stat.S_IXUSR)
    state = tmp_path / "state"
    monkeypatch.setenv("IMAGEVET_STATE_DIR", str(state))
    try:
        held = acquire_run_lock(state, command="watch")
        try:
            out = runner.invoke(app, ["sync", "-p", str(policy)])
            assert out.exit_code == 1, out.output
            assert "another imagevet run holds" in out.output and "(watch)" in out.output
        finally:
            held.release()
        out = runner.invoke(app, ["sync", "-p", str(policy)])
        assert out.exit_code == 0, out.output
        assert not (config / ".imagevet").exists()
    finally:
        config.chmod(stat.S_IRWXU)
