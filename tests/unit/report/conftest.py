"""A small policy, its lock and a state directory, built the way imagevet writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.engine.state import FileStateStore, HeldUpdate
from imagevet.lock import Lock, LockedImage, LockEntry
from imagevet.policy import Policy, parse_policy
from imagevet.reference import Reference

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)

POLICY = """\
version: 1
target:
  registry: registry.example.com
  namespace: acme
images:
  - source: docker.io/bitnami/redis
    name: redis
    tags:
      tags: ["7.4.1", "7.4.0", "latest", "7.10.0-rc1"]
    approval:
      approved_by: alice@example.com
      reason: cache for the web tier
      ticket: SEC-101
      approved_on: 2026-05-01
      expires: 2026-12-10
  - source: docker.io/mailhog/mailhog
    name: mailhog
    mode: follow
    platforms: [linux/amd64]
    tags:
      tags: [v1.0.1]
    approval:
      approved_by: bob@example.com
      expires: 2026-11-01
"""


def digest(seed: str) -> Digest:
    return Digest.of(seed.encode())


INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
WHEN = datetime(2026, 11, 1, 8, 0, 0, tzinfo=UTC)


def index_image(seed: str, *, referrers: int = 0) -> LockedImage:
    return LockedImage(
        digest(seed), INDEX, WHEN, platforms=("linux/amd64", "linux/arm64"),
        manifests=(("linux/amd64", digest(seed + "-amd64")), ("linux/arm64", digest(seed + "-arm64"))),
        referrers=tuple(digest(f"{seed}-ref{i}") for i in range(referrers)),
    )


def small_lock() -> Lock:
    redis = LockEntry(
        Reference.parse("docker.io/bitnami/redis"), Reference.parse("registry.example.com/acme/redis"),
        tags={
            "7.4.1": index_image("redis-7.4.1", referrers=1),
            "7.4.0": LockedImage(digest("redis-7.4.0"), MANIFEST, WHEN, platforms=("linux/amd64",)),
            "latest": index_image("redis-7.4.1", referrers=1),
            "7.10.0-rc1": LockedImage(digest("redis-rc"), MANIFEST, WHEN),
        },
    )
    mailhog = LockEntry(
        Reference.parse("docker.io/mailhog/mailhog"), Reference.parse("registry.example.com/acme/mailhog"),
        tags={"v1.0.1": index_image("mailhog-1")},
    )
    return Lock((redis, mailhog))


SUMMARY = {
    "version": 1,
    "ok": False,
    "now": "2026-11-30T09:00:00Z",
    "seconds": 1.5,
    "counts": {"noop": 3, "failed": 1, "hold": 1},
    "requests": {},
    "warnings": [],
    "problems": [],
    "actions": [
        {"status": "done", "message": "", "kind": "noop", "entry": "redis", "tag": "7.4.1"},
        {"status": "done", "message": "", "kind": "noop", "entry": "redis", "tag": "latest"},
        {"status": "done", "message": "", "kind": "noop", "entry": "redis", "tag": "7.10.0-rc1"},
        {"status": "reported", "message": "", "kind": "hold", "entry": "redis", "tag": "7.4.0",
         "reason": "upstream moved the tag (pinned)", "wanted": str(digest("redis-7.4.0")),
         "current": str(digest("redis-7.4.0")), "upstream": str(digest("redis-7.4.0-new"))},
        {"status": "failed", "message": "cannot connect to registry.example.com", "kind": "copy",
         "entry": "mailhog", "tag": "v1.0.1"},
    ],
}


@dataclass
class Setup:
    policy: Policy
    lock: Lock
    state: FileStateStore


def make_setup(tmp_path: Path, policy_text: str = POLICY, lock: Lock | None = None) -> Setup:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "imagevet.yaml"
    path.write_text(policy_text)
    policy = parse_policy(policy_text, path=path, env={})
    state = FileStateStore(tmp_path / ".imagevet")
    return Setup(policy, small_lock() if lock is None else lock, state)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = make_setup(tmp_path)
    s.state.write_run_summary(SUMMARY)
    s.state.hold(HeldUpdate("redis", "7.4.0", str(digest("redis-7.4.0-new")),
                            "upstream moved the tag (pinned)", datetime(2026, 11, 29, 8, 0, tzinfo=UTC)))
    return s


HUGE = "A" * 1_000_000
HOSTILE_POLICY = f"""\
version: 1
target:
  registry: registry.example.com
  namespace: acme
images:
  - source: docker.io/bitnami/redis
    name: "<script>alert(1)</script> | `x` ../../etc/passwd \\e[31mred\\nnext"
    description: "[click](https://evil.example) <img src=x onerror=alert(1)> *b* \\u202egnp"
    tags:
      tags: ["7.4.1"]
    approval:
      approved_by: "mallory\\e[2J@x"
      reason: "{HUGE}"
      ticket: "SEC|1`<b>"
"""
