"""Held updates, ``imagevet status`` and ``imagevet approve`` as a user runs them, against real
registries: upstream moves under ``mode: pinned`` -> sync holds it -> status lists it -> approve
moves the lock (a reviewable diff, an audit event) -> sync copies it and releases the hold."""

from __future__ import annotations

import difflib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from imagevet.engine.resolve import resolve_lock
from imagevet.engine.run import run_sync
from imagevet.engine.state import FileStateStore
from imagevet.ledger import read_ledger
from imagevet.lock import Lock, read_lock, write_lock
from imagevet.policy import load_policy
from imagevet.policy.model import EntryKey
from imagevet.reference import Reference
from imagevet.registry import RegistryClient
from tests.integration.test_sync import imagevet, seed, write_policy
from tests.support.images import Image, make_image, make_multiarch
from tests.support.pusher import fetch_image, get_manifest_bytes
from tests.support.registry_process import RunningRegistry

ALICE = "Alice Approver <alice@acme.example>"


@pytest.fixture
def target(registry_factory: Any) -> RunningRegistry:
    return registry_factory(auth="none")


def state(tmp: Path) -> FileStateStore:
    return FileStateStore(tmp / ".imagevet")


def held(tmp: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(entry, tag) -> (digest, since) of every held update."""
    return {h.key: (h.digest, h.since.strftime("%Y-%m-%dT%H:%M:%SZ")) for h in state(tmp).held()}


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines a reviewer sees removed and added in the lock's diff."""
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    return removed, added


def platform_lines(image: Image) -> list[str]:
    """The ``manifests:`` lines of a two-platform index record in the lock."""
    amd, arm = image.manifests[0].digest, image.manifests[1].digest
    return ["        manifests:", f'          "linux/amd64": "{amd}"', f'          "linux/arm64": "{arm}"']


async def test_a_pinned_move_is_held_listed_approved_and_then_copied(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    fault_proxy: Any,
) -> None:
    old, new = make_multiarch(seed="approve-old"), make_multiarch(seed="approve-new")
    await seed(plain_registry, f"{unique_repo}/app", {"1.0": old, "0.9": make_image(seed="approve-09")})
    source = fault_proxy(plain_registry)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {source.host}/{unique_repo}/app\n    name: app\n"
        "    tags:\n      tags: ['0.9', '1.0', '1.1']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    clean = imagevet("status", policy=policy)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "status: nothing needs a person" in clean.stdout

    # upstream re-points 1.0 and adds 1.1: both held, the target keeps what the lock says
    new11 = make_image(seed="approve-11")
    await seed(plain_registry, f"{unique_repo}/app", {"1.0": new, "1.1": new11})
    source.rate_limit(40, enforce=False)
    first = imagevet("sync", policy=policy)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 hold" in first.stdout
    holds = held(tmp_path)
    assert {k: v[0] for k, v in holds.items()} == {("app", "1.0"): str(new.digest), ("app", "1.1"): str(new11.digest)}
    since = holds[("app", "1.0")][1]
    assert (await fetch_image(target, "acme/app", "1.0")).top.data == old.top.data
    summary = json.loads((tmp_path / ".imagevet" / "last-sync.json").read_text())
    assert summary["pull_budget"]["remaining"] == {source.host: 40} and summary["pull_budget"]["deferred"] == 0

    again = imagevet("sync", policy=policy)
    assert again.returncode == 0 and held(tmp_path) == holds  # the same since, however many runs

    # the source cannot be read: the entry fails, and loses none of its holds
    source.fail(None, 404, method="GET", path_contains="/tags/list", code="NAME_UNKNOWN")
    down = imagevet("sync", policy=policy)
    assert down.returncode == 1 and "app" in down.stderr
    assert held(tmp_path) == holds
    source.clear()

    status = imagevet("status", policy=policy)
    assert status.returncode == 3, status.stdout + status.stderr
    out = status.stdout
    assert "held under pinned" in out and "new upstream tags waiting for approval" in out
    assert f"locked    {old.digest}" in out and f"upstream  {new.digest}" in out
    assert f"upstream  {new11.digest}" in out and f"since     {since}" in out
    assert re.search(r"failing entries \(last run [0-9T:Z-]+\)\n  app \(", out), out
    assert "status: 3 items need a person" in out  # 1.0, 1.1, the failed run
    as_json = imagevet("status", "--json", policy=policy)
    assert as_json.returncode == 3
    doc = json.loads(as_json.stdout)
    assert doc["version"] == 1 and doc["attention"] == 3 and doc["approved"] == []
    assert doc["held"] == [{
        "entry": "app", "tag": "1.0", "source": f"{source.host}/{unique_repo}/app",
        "target": f"{target.host}/acme/app", "locked": str(old.digest), "upstream": str(new.digest),
        "since": since, "reason": doc["held"][0]["reason"],
    }]
    assert "upstream moved" in doc["held"][0]["reason"]
    assert [(h["tag"], h["locked"], h["upstream"]) for h in doc["new_tags"]] == [("1.1", None, str(new11.digest))]
    assert [f["entry"] for f in doc["failing"]] == ["app"] and doc["last_run"]["ok"] is False

    # approve 1.0: exactly its digest, platform manifests, resolved_at and approval lines move
    lock_path = tmp_path / "imagevet.lock"
    before = lock_path.read_text()
    approved = imagevet("approve", "app", "1.0", "--reason", "CVE-2026-1 fixed", "--by", ALICE, policy=policy)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert f"  ~ 1.0  sha256:{old.digest.hex[:12]} -> sha256:{new.digest.hex[:12]}  (re-pointed upstream)" in approved.stdout
    assert "0 added, 0 removed, 1 re-pointed" in approved.stdout
    after = lock_path.read_text()
    record = read_lock(lock_path).image(
        EntryKey(Reference.parse(f"{source.host}/{unique_repo}/app"), Reference.parse(f"{target.host}/acme/app")), "1.0")
    assert record is not None and record.approval is not None and record.digest == new.digest
    at = record.approval.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    removed, added = changed_lines(before, after)
    old_resolved = re.search(rf'"1.0":\n        digest: "{old.digest}"\n(?:        .*\n)*?        resolved_at: "(.*)"', before)
    assert old_resolved is not None
    assert removed == [f'        digest: "{old.digest}"', *platform_lines(old)[1:],
                       f'        resolved_at: "{old_resolved[1]}"']
    assert added == [f'        digest: "{new.digest}"', *platform_lines(new)[1:], f'        resolved_at: "{at}"',
                     "        approval:", f'          by: "{ALICE}"', '          reason: "CVE-2026-1 fixed"',
                     f'          at: "{at}"']

    events = [r["event"] for r in read_ledger(tmp_path / ".imagevet" / "ledger.jsonl") if r["event"]["kind"] == "approve"]
    assert events == [{
        "kind": "approve", "entry": "app", "source": f"{source.host}/{unique_repo}/app",
        "target": f"{target.host}/acme/app", "tag": "1.0", "old_digest": str(old.digest),
        "new_digest": str(new.digest), "by": ALICE, "reason": "CVE-2026-1 fixed", "at": at,
        "held_since": since,
    }]
    verified = imagevet("audit", "verify", policy=policy)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    waiting = imagevet("status", "--json", policy=policy)
    doc = json.loads(waiting.stdout)
    assert [h["tag"] for h in doc["approved"]] == ["1.0"] and [h["tag"] for h in doc["held"]] == []

    # the next sync copies the approved digest and releases its hold; 1.1 stays held
    synced = imagevet("sync", policy=policy)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    body, _, digest = await get_manifest_bytes(target, "acme/app", "1.0")
    assert body == new.top.data and digest == str(new.digest)
    assert list(held(tmp_path)) == [("app", "1.1")]
    assert lock_path.read_text() == after  # sync leaves a pinned entry's lock alone


async def test_approve_refuses_what_it_cannot_approve_and_changes_nothing(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    one, two, three = (make_image(seed=f"refuse-{n}") for n in (1, 2, 3))
    await seed(plain_registry, f"{unique_repo}/app", {"1": one})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    name: app\n    tags:\n      tags: ['1']\n"
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    name: live\n    mode: follow\n"
        "    target: live\n    tags:\n      tags: ['1']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    await seed(plain_registry, f"{unique_repo}/app", {"1": two})
    assert imagevet("sync", policy=policy).returncode == 0
    lock_path = tmp_path / "imagevet.lock"
    text = lock_path.read_text()

    def refused(*args: str, code: int, message: str, env: dict[str, str] | None = None) -> None:
        out = imagevet("approve", *args, "--by", "alice", policy=policy, env=env)
        assert out.returncode == code, out.stdout + out.stderr
        assert message in " ".join(out.stderr.split()), out.stderr
        assert lock_path.read_text() == text

    refused("nope", "--reason", "x", code=2, message="no policy entry called 'nope'")
    refused("app", "2", "--reason", "x", code=2,
            message="tag '2' is neither held nor a new upstream tag")
    refused("app", "bad tag", "--reason", "x", code=2, message="not a tag name: 'bad tag'")
    refused("live", "--reason", "x", code=2, message="live is mode: follow")
    refused("app", "--reason", "  ", code=2, message="approval reason: must not be empty")
    refused("app", "--reason", "x" * 4097, code=2, message="at most 4096")
    refused("app", "--reason", "x", "--digest", "sha256:beef", code=2, message="--digest")

    # upstream moved again since it was held: refused unless the new digest is named
    await seed(plain_registry, f"{unique_repo}/app", {"1": three})
    refused("app", "--reason", "x", code=1,
            message=f"was held at {two.digest}, but upstream now points it at {three.digest}")
    refused("app", "--reason", "x", "--digest", str(two.digest), code=1, message="not at the --digest given")
    ok = imagevet("approve", "app", "--reason", "x", "--by", "alice", "--digest", str(three.digest), policy=policy)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f'digest: "{three.digest}"' in lock_path.read_text()


async def test_approve_refuses_a_damaged_lock_entry_and_loses_nothing(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    await seed(plain_registry, f"{unique_repo}/app", {"1": make_image(seed="damaged-1")})
    await seed(plain_registry, f"{unique_repo}/other", {"1": make_image(seed="damaged-o")})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    name: app\n    tags:\n      tags: ['1']\n"
        f"  - source: {plain_registry.host}/{unique_repo}/other\n    name: other\n    tags:\n      tags: ['1']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    await seed(plain_registry, f"{unique_repo}/app", {"1": make_image(seed="damaged-2")})
    assert imagevet("sync", policy=policy).returncode == 0
    lock_path = tmp_path / "imagevet.lock"
    text = lock_path.read_text()
    damaged = text.replace('media_type: "application/vnd.oci.image.manifest.v1+json"', 'media_type: "bogus"', 1)
    assert damaged != text
    lock_path.write_text(damaged)
    before_held = held(tmp_path)

    out = imagevet("approve", "app", "--reason", "x", "--by", "alice", policy=policy)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "its lock records cannot be read, nothing was changed" in " ".join(out.stderr.split())
    assert "imagevet.lock:" in out.stderr  # the file:line:column of the problem
    assert lock_path.read_text() == damaged and held(tmp_path) == before_held

    status = imagevet("status", "--json", policy=policy)
    assert status.returncode == 3
    assert [(f["entry"], f["current"]) for f in json.loads(status.stdout)["failing"]][:1] == [("app", True)]


async def test_identity_comes_from_by_the_environment_or_git_or_is_refused(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    _isolated_docker_config: Path,
) -> None:
    await seed(plain_registry, f"{unique_repo}/app", {"1": make_image(seed="who-1")})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    name: app\n    tags:\n      tags: ['1']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    await seed(plain_registry, f"{unique_repo}/app", {"1": make_image(seed="who-2")})
    assert imagevet("sync", policy=policy).returncode == 0
    text = (tmp_path / "imagevet.lock").read_text()
    home = _isolated_docker_config
    nobody = {"IMAGEVET_APPROVER": "", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(home)}

    def approve(*args: str, env: dict[str, str]) -> Any:
        return imagevet("approve", "app", "--reason", "reviewed", "--dry-run", *args, policy=policy, env=env)

    refused = approve(env=nobody)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "who approves?" in refused.stderr and "IMAGEVET_APPROVER" in refused.stderr

    (home / ".gitconfig").write_text("[user]\n\tname = Gita Git\n\temail = gita@acme.example\n")
    from_git = approve(env=nobody)
    assert from_git.returncode == 0, from_git.stdout + from_git.stderr
    assert "approved by Gita Git <gita@acme.example>: reviewed" in from_git.stdout
    assert "not written (--dry-run)" in from_git.stdout

    from_env = approve(env={**nobody, "IMAGEVET_APPROVER": "Env Eve"})
    assert "approved by Env Eve: reviewed" in from_env.stdout
    from_flag = approve("--by", "Flag Fay", env={**nobody, "IMAGEVET_APPROVER": "Env Eve"})
    assert "approved by Flag Fay: reviewed" in from_flag.stdout
    assert (tmp_path / "imagevet.lock").read_text() == text  # dry runs write nothing
    assert not [r for r in read_ledger(tmp_path / ".imagevet" / "ledger.jsonl") if r["event"]["kind"] == "approve"]


async def test_hostile_reason_text_is_stored_exactly_and_printed_escaped(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    await seed(plain_registry, f"{unique_repo}/app", {"1": make_image(seed="hostile-1")})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    name: app\n    tags:\n      tags: ['1', '2']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    await seed(plain_registry, f"{unique_repo}/app", {"2": make_image(seed="hostile-2")})
    reason = "fixed\nimages: []\n\x1b[2J\x1b]0;owned\x07 [red]markup[/] \u202eevil " + "long " * 700
    by = "Mallory \x1b[31m<m@x>"
    out = imagevet("approve", "app", "2", "--reason", reason, policy=policy, env={"IMAGEVET_APPROVER": by})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout
    assert "\\x1b[2J\\x1b]0;owned\\x07 [red]markup[/] \\u202eevil" in out.stdout
    assert "Mallory \\x1b[31m<m@x>" in out.stdout
    assert "  + 2  sha256:" in out.stdout
    lock = read_lock(tmp_path / "imagevet.lock")
    record = lock.entries[0].tags["2"]
    assert record.approval is not None and record.approval.reason == reason and record.approval.by == by
    raw = (tmp_path / "imagevet.lock").read_text()
    assert raw.isascii() and "\x1b" not in raw and "\nimages: []" not in raw
    (event,) = [r["event"] for r in read_ledger(tmp_path / ".imagevet" / "ledger.jsonl") if r["event"]["kind"] == "approve"]
    assert event["reason"] == reason and event["by"] == by and event["old_digest"] is None
    assert imagevet("audit", "verify", policy=policy).returncode == 0

    status = imagevet("status", policy=policy)
    assert "\x1b" not in status.stdout


async def test_run_sync_reports_what_it_newly_held(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    """The library call a watch service makes: ``RunReport.newly_held`` once per update."""
    now = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
    old, new = make_image(seed="lib-old"), make_image(seed="lib-new")
    await seed(plain_registry, f"{unique_repo}/app", {"1": old})
    path = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    name: app\n    tags:\n      tags: ['1']\n"
    ))
    policy = load_policy(path, env={}, today=now.date())
    async with RegistryClient() as client:
        lock = (await resolve_lock(client, policy, Lock(), now=now)).lock
        write_lock(path.with_suffix(".lock"), lock)
        first = await run_sync(policy, lock, source=client, target=client, state=state(tmp_path), clock=lambda: now)
        assert first.ok and first.newly_held == ()
        await seed(plain_registry, f"{unique_repo}/app", {"1": new})
        moved = await run_sync(policy, lock, source=client, target=client, state=state(tmp_path), clock=lambda: now)
        later = await run_sync(policy, lock, source=client, target=client, state=state(tmp_path),
                               clock=lambda: now.replace(hour=11))
    assert [(h.entry, h.tag, h.digest, h.since) for h in moved.newly_held] == [("app", "1", str(new.digest), now)]
    assert moved.ok and moved.summary()["pull_budget"] == {"remaining": {}, "reserve": 0, "deferred": 0}
    assert later.newly_held == () and [(h.tag, h.since) for h in later.holds.kept] == [("1", now)]
    assert [(h.tag, h.since) for h in state(tmp_path).held()] == [("1", now)]
