"""Notifications after real syncs: a pinned entry whose upstream tag moves, against real
registries, with a local webhook receiver on 127.0.0.1 (``engine.run_sync`` + ``notify_run``
as ``watch`` calls them, and ``imagevet sync`` as a user runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from imagevet.engine.resolve import resolve_lock
from imagevet.engine.run import run_sync
from imagevet.engine.state import FileStateStore
from imagevet.lock import Lock, read_lock, write_lock
from imagevet.notify import notify_run
from imagevet.policy import Policy, load_policy
from imagevet.registry import RegistryClient
from tests.support.images import make_image
from tests.support.pusher import push_image
from tests.support.registry_process import RunningRegistry
from tests.unit.notify.receiver import Receiver

NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
TOKEN_PATH = "/services/T0AAAAAAA/B0BBBBBBB/integrationsecret0123456789"
HMAC_KEY = "integration-hmac-key-5f0e"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def write_policy(tmp: Path, target: str, source: str, notify: str) -> Path:
    path = tmp / "imagevet.yaml"
    path.write_text(
        "version: 1\n"
        f"target:\n  registry: {target}\n  namespace: acme\n"
        "defaults:\n  approval:\n    approved_by: security@acme.example\n    expires: 2099-12-31\n"
        f"images:\n  - source: {source}\n    mode: pinned\n    tags:\n      tags: ['1.0']\n"
        + notify
    )
    return path


async def lock_now(path: Path, policy: Policy) -> Lock:
    async with RegistryClient() as client:
        resolution = await resolve_lock(client, policy, Lock(), now=NOW)
    assert not resolution.problems
    write_lock(path.with_suffix(".lock"), resolution.lock)
    return read_lock(path.with_suffix(".lock"))


async def test_a_moved_pinned_tag_is_one_held_update_over_three_cycles(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path,
    receiver: Receiver,
) -> None:
    target = registry_factory(auth="none")
    first, moved = make_image(seed="notify-first"), make_image(seed="notify-moved")
    await push_image(plain_registry, f"{unique_repo}/app", first, "1.0")
    path = write_policy(tmp_path, target.host, f"{plain_registry.host}/{unique_repo}/app",
                        "notify:\n  - type: webhook\n    url_env: HOOK_URL\n  - type: slack\n    url_env: SLACK_URL\n")
    policy = load_policy(path, env={}, today=date(2026, 11, 30))
    lock = await lock_now(path, policy)
    state = FileStateStore(tmp_path / ".imagevet")
    env = {"HOOK_URL": receiver.url("/hook"), "SLACK_URL": receiver.url(TOKEN_PATH)}

    async def cycle() -> Any:
        async with RegistryClient() as client:
            report = await run_sync(policy, lock, source=client, target=client, state=state, clock=lambda: NOW)
        return report, await notify_run(report, policy, state, now=NOW, env=env)

    report, out = await cycle()
    assert report.ok and report.counts() == {"copy": 1} and out.deliveries == ()  # nothing to tell

    await push_image(plain_registry, f"{unique_repo}/app", moved, "1.0")  # upstream re-points 1.0
    for _ in range(3):
        report, out = await cycle()
        assert report.ok and report.counts() == {"hold": 1}
    hooks, slacks = receiver.to("/hook"), receiver.to(TOKEN_PATH)
    assert len(hooks) == 1 and len(slacks) == 1  # once, however many cycles pass
    body = hooks[0].json()
    assert body["kind"] == "held-update" and body["tag"] == "1.0"
    assert body["entry"] == f"{plain_registry.host}/{unique_repo}/app"
    assert body["digests"] == {"wanted": str(first.digest), "current": str(first.digest),
                               "upstream": str(moved.digest)}
    assert body["target"] == f"{target.host}/acme/app:1.0"
    assert body["source"] == f"{plain_registry.host}/{unique_repo}/app:1.0"
    assert slacks[0].json()["text"].startswith("imagevet: Update held: ")

    # approved (the lock takes the new digest): the next cycle copies it and tells nobody
    lock = await lock_now(path, policy)
    report, out = await cycle()
    assert report.counts() == {"update": 1} and out.deliveries == () and out.forgotten == 2
    assert len(receiver.requests) == 2


def imagevet(*args: str, policy: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args, "--policy", str(policy)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )


async def test_imagevet_sync_notifies_warns_on_a_failing_target_and_keeps_secrets(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path,
    receiver: Receiver,
) -> None:
    target = registry_factory(auth="none")
    await push_image(plain_registry, f"{unique_repo}/app", make_image(seed="cli-first"), "1.0")
    path = write_policy(tmp_path, target.host, f"{plain_registry.host}/{unique_repo}/app", (
        "notify:\n"
        "  - type: webhook\n    url_env: HOOK_URL\n    secret_env: HOOK_KEY\n"
        "  - type: slack\n    url_env: SLACK_URL\n"
    ))
    env = {"HOOK_URL": receiver.url("/hook?token=querysecret4242"), "HOOK_KEY": HMAC_KEY,
           "SLACK_URL": receiver.url(TOKEN_PATH)}
    assert imagevet("lock", policy=path, env=env).returncode == 0
    assert imagevet("sync", policy=path, env=env).returncode == 0
    assert receiver.requests == []
    await push_image(plain_registry, f"{unique_repo}/app", make_image(seed="cli-moved"), "1.0")

    receiver.script(TOKEN_PATH, [(500, {}, f"no such hook {TOKEN_PATH}")])
    skipped = imagevet("sync", "--no-notify", policy=path, env=env)
    assert skipped.returncode == 0 and receiver.requests == []

    synced = imagevet("sync", policy=path, env=env)
    assert synced.returncode == 0, synced.stderr  # images synced: a failed notification only warns
    port = receiver.port
    assert f"notified HOOK_URL (127.0.0.1:{port}): held-update" in synced.stdout
    assert f"warning: notification to SLACK_URL (127.0.0.1:{port}) failed: held-update" in synced.stderr
    assert "HTTP 500: no such hook ***" in synced.stderr and "retried next run" in synced.stderr
    assert len(receiver.to("/hook")) == 1 and receiver.to("/hook")[0].query == "token=querysecret4242"

    receiver.script(TOKEN_PATH, [200])
    again = imagevet("sync", policy=path, env=env)
    assert again.returncode == 0
    assert f"notified SLACK_URL (127.0.0.1:{port}): held-update" in again.stdout
    assert "HOOK_URL" not in again.stdout  # sent before: not again
    assert len(receiver.to("/hook")) == 1

    shown = [synced.stdout, synced.stderr, again.stdout, again.stderr, path.with_suffix(".lock").read_text()]
    shown += [p.read_text() for p in (tmp_path / ".imagevet").rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", "")]
    for secret in ("integrationsecret0123456789", "querysecret4242", HMAC_KEY, "B0BBBBBBB"):
        assert not any(secret in text for text in shown), secret


def test_a_policy_with_a_literal_webhook_url_is_refused(tmp_path: Path) -> None:
    url = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/literalsecret0123456789"
    path = write_policy(tmp_path, "registry.example.com", "docker.io/library/redis",
                        f"notify:\n  - type: slack\n    url_env: SLACK_URL\n  - type: slack\n    url: {url}\n")
    done = imagevet("sync", policy=path, env={})
    assert done.returncode == 2
    assert f"{path}:18:10: notify[1].url: this value looks like a Slack incoming-webhook URL" in done.stderr
    assert "literalsecret" not in done.stdout + done.stderr
