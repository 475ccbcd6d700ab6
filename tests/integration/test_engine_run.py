"""``engine.run.run_sync``: a whole sync as a library call, against real registries, no CLI.

Each test builds what the CLI would build from the environment (a registry client, the state
store, the Docker Hub manager) by hand, calls the engine, and checks what a user notices: the
report, the digests in the target, the ledger, the run summary and the lock.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from imagevet.engine.resolve import resolve_lock
from imagevet.engine.run import RunOptions, RunReport, plan_run, run_sync
from imagevet.engine.state import FileStateStore
from imagevet.hub import HubClient, HubCredentials, HubRepositoryManager
from imagevet.lock import Lock, read_lock, write_lock
from imagevet.plan import ActionKind
from imagevet.policy import Policy, load_policy
from imagevet.registry import Credential, RegistryClient, StaticCredentials
from tests.support.fake_hub import HubRegistry
from tests.support.images import make_image, make_multiarch
from tests.support.pusher import fetch_image, get_manifest_bytes, list_tags, push_image
from tests.support.registry_process import RunningRegistry

NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)


def _clock() -> datetime:
    return NOW


def write_policy(tmp: Path, target: str, entries: str) -> Policy:
    path = tmp / "imagevet.yaml"
    path.write_text(
        "version: 1\n"
        f"target:\n  registry: {target}\n  namespace: acme\n"
        "defaults:\n"
        "  approval:\n    approved_by: security@acme.example\n    expires: 2099-12-31\n"
        "images:\n" + entries
    )
    return load_policy(path, env={}, today=date(2026, 11, 30))


async def locked(client: RegistryClient, policy: Policy) -> Lock:
    """What ``imagevet lock`` writes: resolved upstream, written next to the policy."""
    resolution = await resolve_lock(client, policy, Lock(), now=NOW)
    assert not resolution.problems
    write_lock(policy.path.with_suffix(".lock"), resolution.lock)
    return read_lock(policy.path.with_suffix(".lock"))


def ledger_kinds(state: FileStateStore) -> list[tuple[str, str]]:
    return [(r["event"]["kind"], r["event"].get("status", "")) for r in state.ledger.records()]


async def test_a_sync_copies_records_everything_and_a_rerun_is_a_noop(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    target = registry_factory(auth="none")
    redis = {t: make_multiarch(seed=f"engine-redis-{t}") for t in ("7.2", "7.4")}
    for tag, image in redis.items():
        await push_image(plain_registry, f"{unique_repo}/redis", image, tag)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/redis\n    tags:\n      tags: ['7.2', '7.4']\n"
    ))
    state = FileStateStore(tmp_path / ".imagevet")
    async with RegistryClient() as client:
        lock = await locked(client, policy)
        report = await run_sync(policy, lock, source=client, target=client, state=state, clock=_clock,
                                lock_path=policy.path.with_suffix(".lock"))
    assert isinstance(report, RunReport)
    assert report.ok and report.records_written and not report.errors
    assert report.counts() == {"copy": 2}
    assert [o.status for o in report.outcomes] == ["done", "done"]
    assert report.bytes_copied > 0 and report.requests["PUT manifest"] >= 2
    assert not report.lock_changed and not report.lock_written  # pinned: the lock is what was vetted
    for tag, image in redis.items():
        got = await fetch_image(target, "acme/redis", tag)
        assert got.top.data == image.top.data and got.blobs == image.blobs
    assert state.read_run_summary() == report.summary()
    assert report.summary()["now"] == "2026-11-30T10:00:00Z"
    assert ledger_kinds(state) == [("run", ""), ("copy", "done"), ("copy", "done")]
    assert report.recorded is not None and report.recorded.seq == 3 and state.ledger.verify().ok

    async with RegistryClient() as client:
        again = await run_sync(policy, lock, source=client, target=client, state=state, clock=_clock)
    assert again.ok and again.counts() == {"noop": 2}
    assert not any(k.startswith("GET manifest") or k.startswith("GET blob") for k in again.requests)
    assert ledger_kinds(state)[3:] == [("run", "")]  # a no-op is one run record
    assert state.read_run_summary() == again.summary()


async def test_a_dry_run_changes_and_records_nothing(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    target = registry_factory(auth="none")
    await push_image(plain_registry, f"{unique_repo}/app", make_image(seed="engine-dry"), "1")
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    mode: follow\n    tags:\n      tags: ['1']\n"
    ))
    state = FileStateStore(tmp_path / ".imagevet")
    async with RegistryClient() as client:
        lock = await locked(client, policy)
        lock_text = policy.path.with_suffix(".lock").read_text()
        report = await run_sync(policy, lock, source=client, target=client, state=state, clock=_clock,
                                options=RunOptions(dry_run=True),
                                lock_path=policy.path.with_suffix(".lock"))
        planned = await plan_run(policy, lock, source=client, target=client, state=state, now=NOW)
    assert report.dry_run and report.ok and report.outcomes == ()
    assert [a.kind for a in report.plan.actions] == [ActionKind.COPY]
    assert [a.kind for a in planned.plan.actions] == [ActionKind.COPY]  # what `imagevet plan` shows
    assert report.recorded is None and report.lock is lock
    assert await list_tags(target, "acme/app") == []
    assert not (tmp_path / ".imagevet").exists()  # no summary, no ledger, no cache
    assert policy.path.with_suffix(".lock").read_text() == lock_text


async def test_a_failing_image_leaves_the_others_outcome_alone(
    plain_registry: RunningRegistry, registry_factory: Any, fault_proxy: Any, unique_repo: str,
    tmp_path: Path,
) -> None:
    target = registry_factory(auth="none")
    good, bad = make_image(seed="engine-good"), make_image(seed="engine-bad")
    await push_image(plain_registry, f"{unique_repo}/good", good, "1")
    await push_image(plain_registry, f"{unique_repo}/bad", bad, "1")
    source = fault_proxy(plain_registry)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {source.host}/{unique_repo}/good\n    tags:\n      tags: ['1']\n"
        f"  - source: {source.host}/{unique_repo}/bad\n    tags:\n      tags: ['1']\n"
    ))
    state = FileStateStore(tmp_path / ".imagevet")
    async with RegistryClient() as client:
        lock = await locked(client, policy)
        source.fail(None, 404, method="GET", path_contains=f"{unique_repo}/bad/blobs/", code="BLOB_UNKNOWN")
        report = await run_sync(policy, lock, source=client, target=client, state=state, clock=_clock)
    assert not report.ok and report.records_written  # the failure is recorded, not lost
    by_target = {o.action.target.repository: o for o in report.outcomes}
    assert by_target["acme/good"].status == "done"
    assert by_target["acme/bad"].status == "failed" and "BLOB_UNKNOWN" in by_target["acme/bad"].message
    got = await fetch_image(target, "acme/good", "1")
    assert got.top.data == good.top.data and got.blobs == good.blobs
    assert await list_tags(target, "acme/bad") == []  # no tag on a partial image
    assert sorted(ledger_kinds(state)) == [("copy", "done"), ("copy", "failed"), ("run", "")]
    summary = state.read_run_summary()
    assert summary is not None and summary["ok"] is False and summary["counts"] == {"copy": 1, "failed": 1}


async def test_a_follow_entry_updates_with_a_backup_and_its_lock_is_brought_along(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    target = registry_factory(auth="none")
    old, new = make_image(seed="engine-follow-old"), make_image(seed="engine-follow-new")
    await push_image(plain_registry, f"{unique_repo}/follow", old, "1.0")
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/follow\n    mode: follow\n    tags:\n      tags: ['1.0']\n"
    ))
    lock_path = policy.path.with_suffix(".lock")
    state = FileStateStore(tmp_path / ".imagevet")
    async with RegistryClient() as client:
        lock = await locked(client, policy)
        first = await run_sync(policy, lock, source=client, target=client, state=state, clock=_clock, lock_path=lock_path)
        assert first.ok and first.counts() == {"copy": 1}
        await push_image(plain_registry, f"{unique_repo}/follow", new, "1.0")  # upstream re-points
        report = await run_sync(policy, read_lock(lock_path), source=client, target=client, state=state, clock=_clock,
                                lock_path=lock_path)
    assert report.ok and report.counts() == {"update": 1}
    assert report.lock_changed and report.lock_written
    (entry,) = report.lock.entries
    assert entry.tags["1.0"].digest == new.digest
    assert read_lock(lock_path).entries[0].tags["1.0"].digest == new.digest  # the file too
    body, _, _ = await get_manifest_bytes(target, "acme/follow", "1.0")
    assert body == new.top.data
    backup = f"1.0-backup-{old.digest.hex[:12]}"
    body, _, _ = await get_manifest_bytes(target, "acme/follow", backup)
    assert body == old.top.data
    events = [r["event"] for r in state.ledger.records()]
    update = next(e for e in events if e["kind"] == "update")
    assert update["status"] == "done" and update["digest"] == str(new.digest)


async def test_a_summary_that_cannot_be_written_still_leaves_lock_and_ledger(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    target = registry_factory(auth="none")
    await push_image(plain_registry, f"{unique_repo}/app", make_image(seed="engine-summary"), "1")
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    tags:\n      tags: ['1']\n"
    ))
    state = FileStateStore(tmp_path / ".imagevet")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / ".imagevet").mkdir()
    (tmp_path / ".imagevet" / "last-sync.json").symlink_to(tmp_path / "elsewhere" / "x.json")
    async with RegistryClient() as client:
        lock = await locked(client, policy)
        report = await run_sync(policy, lock, source=client, target=client, state=state, clock=_clock)
    assert report.counts() == {"copy": 1} and report.sync.ok
    assert not report.summary_written and report.summary_error is not None
    assert "symbolic link" in report.summary_error
    assert not report.ok and not report.records_written
    assert report.recorded is not None and ledger_kinds(state) == [("run", ""), ("copy", "done")]
    assert list((tmp_path / "elsewhere").iterdir()) == []


async def test_a_sync_into_a_hub_org_creates_the_repository_through_the_manager(
    fake_hub_registry: HubRegistry, plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    hub, registry = fake_hub_registry.hub, fake_hub_registry.registry
    assert hub.seed is not None
    image = make_multiarch(seed="engine-hub")
    await push_image(plain_registry, f"{unique_repo}/redis", image, "7.4.1")
    policy = write_policy(tmp_path, registry.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/redis\n    tags:\n      tags: ['7.4.1']\n"
        "    private: true\n"
    ))
    state = FileStateStore(tmp_path / ".imagevet")
    credentials = StaticCredentials({registry.host: Credential(hub.seed.username, hub.seed.pat)})
    async with RegistryClient(credentials=credentials) as client, \
            HubClient(hub.url, HubCredentials(hub.seed.username, hub.seed.pat)) as hub_client:
        lock = await locked(client, policy)
        manager = HubRepositoryManager(hub_client)
        report = await run_sync(policy, lock, source=client, target=client, state=state, manager=manager, clock=_clock)
        again = await run_sync(policy, lock, source=client, target=client, state=state, manager=manager, clock=_clock)
    assert report.ok and report.counts() == {"create-repo": 1, "copy": 1}
    repo = hub.repository("acme", "redis")
    assert repo is not None and repo["is_private"] is True
    assert str(image.digest) in repo["full_description"]  # the provenance overview
    copied = await fetch_image(registry, "acme/redis", "7.4.1")
    assert copied.top.data == image.top.data and copied.blobs == image.blobs
    assert again.ok and again.counts() == {"noop": 1}
    assert [k for k, _ in ledger_kinds(state)] == ["run", "create-repo", "copy", "run"]
    assert hub.violations == []
    assert json.dumps(report.summary()).find(hub.seed.pat) == -1


async def test_a_follow_entry_records_what_imagevet_lock_would_record(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    """A follow entry's lock record made from the copy (no extra request) is the record
    ``imagevet lock`` makes: platforms and each platform manifest's digest (what ``check`` vets
    a platform pin by), so the next ``imagevet lock`` has nothing to complete."""
    target = registry_factory(auth="none")
    image = make_multiarch(seed="engine-follow-platforms", platforms=("linux/amd64", "linux/arm64"))
    await push_image(plain_registry, f"{unique_repo}/platforms", image, "2.0")
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/platforms\n    mode: follow\n    tags:\n      tags: ['2.0']\n"
    ))
    state = FileStateStore(tmp_path / ".imagevet")
    async with RegistryClient() as client:
        report = await run_sync(policy, Lock(), source=client, target=client, state=state, clock=_clock)
        resolution = await resolve_lock(client, policy, Lock(), now=NOW)
    assert report.ok and report.counts() == {"copy": 1}
    (record,) = report.lock.entries
    (want,) = resolution.lock.entries
    assert record.tags["2.0"].by_platform == {
        "linux/amd64": image.manifests[0].digest, "linux/arm64": image.manifests[1].digest
    }
    assert record.tags["2.0"].same_content(want.tags["2.0"])
