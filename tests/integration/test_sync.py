"""validate / lock / plan / sync as a user runs them, against real registries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagevet.ledger import append_events, verify_ledger
from imagevet.lock import read_lock
from tests.support.images import make_image, make_multiarch
from tests.support.pusher import fetch_image, get_manifest_bytes, list_tags, push_image
from tests.support.registry_process import RunningRegistry


def imagevet(*args: str, policy: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args, "--policy", str(policy)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


def write_policy(tmp: Path, target: str, entries: str, defaults: str = "") -> Path:
    path = tmp / "imagevet.yaml"
    path.write_text(
        "version: 1\n"
        f"target:\n  registry: {target}\n  namespace: acme\n"
        "defaults:\n"
        "  approval:\n    approved_by: security@acme.example\n    expires: 2099-12-31\n"
        f"{defaults}"
        "images:\n" + entries
    )
    return path


async def seed(registry: Any, repo: str, tags: dict[str, Any]) -> None:
    for tag, image in tags.items():
        await push_image(registry, repo, image, tag)


@pytest.fixture
def target(registry_factory: Any) -> RunningRegistry:
    return registry_factory(auth="none")


async def test_lock_sync_and_a_cheap_noop(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    fault_proxy: Any,
) -> None:
    redis = {t: make_multiarch(seed=f"redis-{t}") for t in ("7.2.4", "7.2.5", "7.4.0", "7.4.1-rc1", "latest")}
    mailhog = {"v1.0.1": make_image(seed="mailhog"), "v1.0.0": make_image(seed="mailhog0")}
    await seed(plain_registry, f"{unique_repo}/redis", redis)
    await seed(plain_registry, f"{unique_repo}/mailhog", mailhog)
    source = fault_proxy(plain_registry)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {source.host}/{unique_repo}/redis\n"
        "    tags:\n      range: '>=7.2 <8'\n      keep: 2\n      deny: ['7\\.2\\.4']\n"
        f"  - source: {source.host}/{unique_repo}/mailhog\n"
        "    tags:\n      tags: [v1.0.1]\n"
    ))
    assert imagevet("validate", policy=policy).returncode == 0

    locked = imagevet("lock", policy=policy)
    assert locked.returncode == 0, locked.stderr
    assert "+ 7.2.5" in locked.stdout and "+ 7.4.0" in locked.stdout and "+ v1.0.1" in locked.stdout
    assert "7.4.1-rc1" not in locked.stdout and "7.2.4" not in locked.stdout
    lock_text = (tmp_path / "imagevet.lock").read_text()
    assert str(redis["7.4.0"].digest) in lock_text
    assert source.count(method="GET", path_contains="/blobs/") == 0

    again = imagevet("lock", "--check", policy=policy)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert (tmp_path / "imagevet.lock").read_text() == lock_text

    synced = imagevet("sync", policy=policy)
    assert synced.returncode == 0, synced.stderr
    assert "3 copy" in synced.stdout
    for tag in ("7.2.5", "7.4.0"):
        got = await fetch_image(target, "acme/redis", tag)
        assert got.top.data == redis[tag].top.data
        assert got.blobs == redis[tag].blobs
    assert await list_tags(target, "acme/mailhog") == ["v1.0.1"]

    source.clear()
    noop = imagevet("plan", "--detailed-exitcode", policy=policy)
    assert noop.returncode == 0, noop.stdout + noop.stderr
    assert "nothing to do" in noop.stdout
    rerun = imagevet("sync", "--json", policy=policy)
    assert rerun.returncode == 0
    summary = json.loads(rerun.stdout)
    assert summary["counts"] == {"noop": 3}
    assert source.count(method="GET", path_contains="/manifests/") == 0
    assert source.count(method="GET", path_contains="/blobs/") == 0

    last = json.loads((tmp_path / ".imagevet" / "last-sync.json").read_text())
    assert last["counts"] == {"noop": 3}
    check = verify_ledger(tmp_path / ".imagevet" / "ledger.jsonl")
    assert check.ok and check.records >= 5  # 2 runs + 3 copies


async def test_pinned_holds_a_moved_tag_and_follow_updates_with_a_backup(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    old, new = make_image(seed="move-old"), make_image(seed="move-new")
    await seed(plain_registry, f"{unique_repo}/pinned", {"1.0": old})
    await seed(plain_registry, f"{unique_repo}/follow", {"1.0": old})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/pinned\n    tags:\n      tags: ['1.0']\n"
        f"  - source: {plain_registry.host}/{unique_repo}/follow\n    mode: follow\n"
        "    tags:\n      tags: ['1.0']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0

    await seed(plain_registry, f"{unique_repo}/pinned", {"1.0": new})  # upstream re-points the tag
    await seed(plain_registry, f"{unique_repo}/follow", {"1.0": new})
    moved = imagevet("lock", "--check", "--json", policy=policy)
    assert moved.returncode == 3
    assert len(json.loads(moved.stdout)["diff"]["repointed"]) == 2

    planned = json.loads(imagevet("plan", "--json", policy=policy).stdout)
    kinds = {(a["target"].split("/")[-1], a["kind"]) for a in planned["actions"]}
    assert ("pinned:1.0", "hold") in kinds and ("follow:1.0", "update") in kinds

    synced = imagevet("sync", "--json", policy=policy)
    assert synced.returncode == 0, synced.stderr
    body, _, _ = await get_manifest_bytes(target, "acme/pinned", "1.0")
    assert body == old.top.data  # held: the target keeps the vetted digest
    body, _, _ = await get_manifest_bytes(target, "acme/follow", "1.0")
    assert body == new.top.data
    backup = next(t for t in await list_tags(target, "acme/follow") if t != "1.0")
    assert backup == f"1.0-backup-{old.digest.hex[:12]}"
    body, _, _ = await get_manifest_bytes(target, "acme/follow", backup)
    assert body == old.top.data
    # the lock now records what the follow entry mirrors; the pinned entry keeps its vetted digest
    lock = read_lock(tmp_path / "imagevet.lock")
    by_target = {e.target.repository: e.tags["1.0"].digest for e in lock.entries}
    assert by_target == {"acme/follow": new.digest, "acme/pinned": old.digest}
    still = json.loads(imagevet("lock", "--check", "--json", policy=policy).stdout)
    assert [c["target"].rsplit("/", 1)[1] for c in still["diff"]["repointed"]] == ["pinned"]


async def test_expired_approval_holds_new_digests(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    await seed(plain_registry, f"{unique_repo}/old", {"1": make_image(seed="expired")})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/old\n"
        "    tags:\n      tags: ['1']\n"
        "    approval:\n      approved_by: someone\n      expires: 2020-01-01\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    out = imagevet("sync", "--json", policy=policy)
    assert out.returncode == 0
    summary = json.loads(out.stdout)
    assert summary["counts"] == {"hold": 1}
    assert any("expired" in w for w in summary["warnings"])
    assert await list_tags(target, "acme/old") == []


async def test_platform_subset_rewrites_the_index_once(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    image = make_multiarch(seed="subset-sync", platforms=("linux/amd64", "linux/arm64", "linux/s390x"))
    await seed(plain_registry, f"{unique_repo}/app", {"2.0": image})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n"
        "    platforms: [linux/amd64, linux/arm64]\n    tags:\n      tags: ['2.0']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    planned = imagevet("plan", "--json", policy=policy)
    copy = next(a for a in json.loads(planned.stdout)["actions"] if a["kind"] == "copy")
    assert copy["rewrites_index"] is True
    assert imagevet("sync", policy=policy).returncode == 0
    got = await fetch_image(target, "acme/app", "2.0")
    assert got.top.digest != image.digest
    assert sorted(str(d.platform) for d in got.top.children()) == ["linux/amd64", "linux/arm64"]
    second = imagevet("sync", "--json", policy=policy)
    assert json.loads(second.stdout)["counts"] == {"noop": 1}


async def test_prune_is_reported_and_done_only_when_asked(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    await seed(plain_registry, f"{unique_repo}/p", {"1": make_image(seed="keep"), "2": make_image(seed="gone")})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/p\n    tags:\n      tags: ['1', '2']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    policy.write_text(policy.read_text().replace("tags: ['1', '2']", "tags: ['1']"))
    assert imagevet("lock", policy=policy).returncode == 0
    reported = json.loads(imagevet("sync", "--json", policy=policy).stdout)
    assert reported["counts"] == {"noop": 1, "prune": 1}
    assert sorted(await list_tags(target, "acme/p")) == ["1", "2"]
    pruned = imagevet("sync", "--prune", "--json", policy=policy)
    assert pruned.returncode == 0, pruned.stderr
    prune = next(a for a in json.loads(pruned.stdout)["actions"] if a["kind"] == "prune")
    assert prune["status"] == "done" and prune["message"] == "deleted"
    assert await list_tags(target, "acme/p") == ["1"]


async def test_prune_never_deletes_what_this_run_pushed(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    a, b = make_image(seed="prune-a"), make_image(seed="prune-b")
    await seed(plain_registry, f"{unique_repo}/q", {"1": a, "2": b})
    await push_image(target, "acme/q", a, "stray")  # an old tag at the target, same digest as "1"
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/q\n    tags:\n      tags: ['1']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    out = imagevet("sync", "--prune", "--json", policy=policy)
    assert out.returncode == 0, out.stderr
    prune = next(a for a in json.loads(out.stdout)["actions"] if a["kind"] == "prune")
    assert prune["tag"] == "stray"
    assert prune["message"] == "not deleted: another tag still points at the same manifest"
    body, _, _ = await get_manifest_bytes(target, "acme/q", "1")
    assert body == a.top.data


async def test_one_failing_source_does_not_stop_the_others(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    fault_proxy: Any,
) -> None:
    await seed(plain_registry, f"{unique_repo}/good", {"1": make_image(seed="good")})
    await seed(plain_registry, f"{unique_repo}/bad", {"1": make_image(seed="bad", layer_sizes=(5000,))})
    proxy = fault_proxy(plain_registry)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {proxy.host}/{unique_repo}/good\n    tags:\n      tags: ['1']\n"
        f"  - source: {proxy.host}/{unique_repo}/bad\n    tags:\n      tags: ['1']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    proxy.fail(times=None, status=500, path_contains=f"{unique_repo}/bad/blobs/")
    out = imagevet("sync", policy=policy)
    assert out.returncode == 1
    assert "failed" in out.stderr and "bad" in out.stderr and "500" in out.stderr
    assert "1 copy" in out.stdout and "1 failed" in out.stdout
    assert await list_tags(target, "acme/good") == ["1"]
    assert await list_tags(target, "acme/bad") == []  # no tag on a partial image


async def test_pull_budget_defers_instead_of_hitting_429(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    fault_proxy: Any,
) -> None:
    tags = {f"1.{i}": make_multiarch(seed=f"budget-{i}") for i in range(3)}
    await seed(plain_registry, f"{unique_repo}/b", tags)
    hub = fault_proxy(plain_registry)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {hub.host}/{unique_repo}/b\n    tags:\n      allow: ['1\\.\\d+']\n"
    ))
    hub.rate_limit(remaining=100, limit=100)
    assert imagevet("lock", policy=policy).returncode == 0
    assert hub.ratelimit is not None and hub.ratelimit.remaining == 97  # one GET per new index
    hub.rate_limit(remaining=4, limit=100)  # each copy of a 2-platform index costs 3 pulls
    out = imagevet("sync", "--json", policy=policy)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["counts"].get("copy") == 1 and summary["counts"].get("defer") == 2
    assert hub.count(status=429) == 0
    assert len(await list_tags(target, "acme/b")) == 1


HEAD = "version: 1\ntarget:\n  registry: r.example\n  namespace: acme\nimages:\n"
BAD_POLICIES = [
    ("version: 1\ntarget: {registry: r.example, namespace: acme\nimages: []\n",
     "imagevet.yaml:3:7: YAML syntax error"),
    (HEAD + "  - source: a/b\n    tags: {allow: ['(']}\n    approval: {approved_by: x}\n",
     "imagevet.yaml:7:20: images[0].tags.allow[0]: invalid regular expression '('"),
    (HEAD + "  - source: a/b\n    colour: red\n    tags: {tags: ['1']}\n    approval: {approved_by: x}\n",
     "imagevet.yaml:7:5: images[0].colour: unknown key 'colour'"),
    (HEAD + "  - {source: a/b, tags: {tags: ['1']}, approval: {approved_by: x}}\n"
     "  - {source: c/b, tags: {tags: ['1']}, approval: {approved_by: x}}\n",
     "imagevet.yaml:7:14: images[1].source: duplicate target r.example/acme/b"),
    (HEAD + "  - source: a/b\n    tags: {range: '>=1 <<2'}\n    approval: {approved_by: x}\n",
     "imagevet.yaml:7:19: images[0].tags.range: invalid range '>=1 <<2'"),
    (HEAD + "  - source: a/b\n    tags: {keep: two, tags: ['1']}\n    approval: {approved_by: x}\n",
     "imagevet.yaml:7:18: images[0].tags.keep: expected a whole number"),
]


@pytest.mark.parametrize(("text", "where"), BAD_POLICIES)
def test_malformed_policy_exits_2_with_its_location_and_writes_nothing(
    tmp_path: Path, text: str, where: str
) -> None:
    policy = tmp_path / "imagevet.yaml"
    policy.write_text(text)
    for command in ("validate", "lock", "plan", "sync"):
        out = imagevet(command, policy=policy)
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert where in out.stderr.replace(str(tmp_path) + "/", ""), out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imagevet.yaml"]


# ---- two entries on one source; the mirror never depends on the ledger ----------------------


def _plan_lines(out: subprocess.CompletedProcess[str]) -> list[tuple[str, str, str]]:
    planned = json.loads(out.stdout)
    return sorted((a["entry"], a["kind"], a["target"]) for a in planned["actions"])


async def test_two_entries_on_one_source_each_mirror_their_own_tags(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    fault_proxy: Any,
) -> None:
    images = {
        "v1": make_multiarch(seed="one-source-v1", platforms=("linux/amd64", "linux/arm64")),
        "v2": make_multiarch(seed="one-source-v2", platforms=("linux/amd64", "linux/arm64")),
        "v3": make_image(seed="one-source-v3"),
    }
    await seed(plain_registry, f"{unique_repo}/app", images)
    proxy = fault_proxy(plain_registry)
    src = f"{proxy.host}/{unique_repo}/app"
    policy = write_policy(tmp_path, target.host, (
        f"  - name: app-a\n    source: {src}\n    target: app-a\n    tags:\n      tags: [v1]\n"
        f"  - name: app-b\n    source: {src}\n    target: app-b\n    mode: follow\n"
        "    platforms: [linux/arm64]\n    tags:\n      tags: [v2]\n"
        f"  - name: app-c\n    source: {src}\n    target: app-c\n    mode: follow\n"
        "    tags:\n      allow: ['v[23]']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    # lock too reads the shared source once: one listing, one HEAD per tag
    assert proxy.count(method="GET", path_contains="/tags/list") == 1
    assert proxy.count(method="HEAD", path_contains="/manifests/v2") == 1
    proxy.clear()
    plans = [imagevet("plan", "--json", policy=policy) for _ in range(4)]
    assert all(p.returncode == 0 for p in plans), plans[0].stderr
    first = _plan_lines(plans[0])
    assert all(_plan_lines(p) == first for p in plans[1:])  # the same policy plans the same
    assert [(e, k, t.rsplit("/", 1)[1]) for e, k, t in first] == [
        ("app-a", "copy", "app-a:v1"), ("app-b", "copy", "app-b:v2"),
        ("app-c", "copy", "app-c:v2"), ("app-c", "copy", "app-c:v3"),
    ]
    # the source is observed once per run however many entries share it
    assert proxy.count(method="GET", path_contains="/tags/list") == 4
    assert proxy.count(method="HEAD", path_contains="/manifests/v2") == 4

    synced = imagevet("sync", "--json", policy=policy)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert await list_tags(target, "acme/app-a") == ["v1"]
    assert await list_tags(target, "acme/app-b") == ["v2"]
    assert sorted(await list_tags(target, "acme/app-c")) == ["v2", "v3"]
    body, _, _ = await get_manifest_bytes(target, "acme/app-a", "v1")
    assert body == images["v1"].top.data
    subset = await fetch_image(target, "acme/app-b", "v2")
    assert [str(d.platform) for d in subset.top.children()] == ["linux/arm64"]
    for tag in ("v2", "v3"):
        body, _, _ = await get_manifest_bytes(target, "acme/app-c", tag)
        assert body == images[tag].top.data

    proxy.clear()
    again = imagevet("plan", "--json", "--detailed-exitcode", policy=policy)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {k for _, k, _ in _plan_lines(again)} == {"noop"}
    # the subset mirror was checked against the source index sync kept when it copied
    assert proxy.count(method="GET", path_contains="/manifests/") == 0
    # the lock of each follow entry records its own tags only
    lock = read_lock(tmp_path / "imagevet.lock")
    by_target = {e.target.repository: sorted(e.tags) for e in lock.entries}
    assert by_target == {"acme/app-a": ["v1"], "acme/app-b": ["v2"], "acme/app-c": ["v2", "v3"]}


async def test_a_forged_ledger_record_never_keeps_an_intruder_in_a_subset_mirror(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    image = make_multiarch(seed="forged-subset", platforms=("linux/amd64", "linux/arm64", "linux/s390x"))
    await seed(plain_registry, f"{unique_repo}/app", {"2.0": image})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n"
        "    platforms: [linux/amd64, linux/arm64]\n    tags:\n      tags: ['2.0']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    mirrored = await fetch_image(target, "acme/app", "2.0")
    subset = mirrored.top.digest
    assert subset != image.digest

    # someone replaces the mirror's tag with their own image and appends a chain-valid ledger
    # record claiming it is the platform subset imagevet made from the source
    intruder = make_multiarch(seed="forged-intruder")
    await push_image(target, "acme/app", intruder, "2.0")
    ledger = tmp_path / ".imagevet" / "ledger.jsonl"
    append_events(ledger, [{"kind": "copy", "action": "copy", "status": "done", "copy": {
        "index_rewritten": True, "digest": str(intruder.digest), "source_digest": str(image.digest),
    }}])
    assert verify_ledger(ledger).ok

    planned = imagevet("plan", "--json", policy=policy)
    assert planned.returncode == 0, planned.stderr
    (action,) = json.loads(planned.stdout)["actions"]
    assert action["kind"] == "update" and action["old_digest"] == str(intruder.digest)
    assert str(subset)[:19] in action["note"] and "platform subset" in action["note"]
    synced = imagevet("sync", "--json", policy=policy)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    back = await fetch_image(target, "acme/app", "2.0")
    assert back.top.digest == subset
    again = json.loads(imagevet("sync", "--json", policy=policy).stdout)
    assert again["counts"] == {"noop": 1}


async def test_a_warm_subset_mirror_rerun_makes_no_manifest_get(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    fault_proxy: Any,
) -> None:
    image = make_multiarch(seed="warm-subset", platforms=("linux/amd64", "linux/arm64"))
    await seed(plain_registry, f"{unique_repo}/app", {"1": image})
    source = fault_proxy(plain_registry)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {source.host}/{unique_repo}/app\n"
        "    platforms: [linux/arm64]\n    tags:\n      tags: ['1']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    source.clear()
    rerun = json.loads(imagevet("sync", "--json", policy=policy).stdout)
    assert rerun["counts"] == {"noop": 1}
    assert source.count(method="GET", path_contains="/manifests/") == 0

    # a cache entry that does not hash to its name is a miss: one GET, then the right answer
    cached = tmp_path / ".imagevet" / "manifests" / "sha256" / image.digest.hex
    assert cached.read_bytes() == image.top.data
    cached.write_bytes(image.top.data.replace(b"arm64", b"amd64"))
    source.clear()
    rerun = json.loads(imagevet("sync", "--json", policy=policy).stdout)
    assert rerun["counts"] == {"noop": 1}
    assert source.count(method="GET", path_contains="/manifests/") == 1
    assert cached.read_bytes() == image.top.data


async def test_one_bad_target_listing_or_unreadable_target_stops_only_its_entry(
    plain_registry: RunningRegistry, fake_registry: Any, unique_repo: str, tmp_path: Path,
    fault_proxy: Any,
) -> None:
    images = {"1": make_image(seed="odd-target-1"), "2": make_image(seed="odd-target-2")}
    await seed(plain_registry, f"{unique_repo}/odd", {"1": images["1"]})
    await seed(plain_registry, f"{unique_repo}/fine", {"2": images["2"]})
    await seed(plain_registry, f"{unique_repo}/down", {"2": images["2"]})
    # the odd target already lists a tag no valid reference can name
    fake_registry.seed("acme/odd", images["1"], "1")
    fake_registry.tags["acme/odd"]["bad tag\x1b[31m"] = images["1"].digest
    proxy = fault_proxy(fake_registry)
    policy = write_policy(tmp_path, proxy.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/odd\n    tags:\n      tags: ['1']\n"
        f"  - source: {plain_registry.host}/{unique_repo}/fine\n    tags:\n      tags: ['2']\n"
        f"  - source: {plain_registry.host}/{unique_repo}/down\n    tags:\n      tags: ['2']\n"
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    proxy.fail(times=None, status=500, path_contains="/acme/down/tags/list")

    planned = imagevet("plan", "--json", policy=policy)
    assert planned.returncode == 1, planned.stdout + planned.stderr  # one entry could not be observed
    body = json.loads(planned.stdout)
    kinds = sorted((a["entry"].rsplit("/", 1)[1], a["kind"]) for a in body["actions"])
    assert kinds == [("fine", "copy"), ("odd", "noop")]
    assert any("bad tag" in w and "acme/odd" in w for w in body["warnings"]), body["warnings"]
    assert [p["entry"].rsplit("/", 1)[1] for p in body["problems"]] == ["down"]
    assert "500" in body["problems"][0]["message"]

    # the dry run says what plan says: which entry could not be observed, and why
    dry = imagevet("sync", "--dry-run", policy=policy)
    assert dry.returncode == 1
    assert "down" in dry.stderr and "500" in dry.stderr, dry.stderr
    dry_json = json.loads(imagevet("sync", "--dry-run", "--json", policy=policy).stdout)
    assert [p["entry"].rsplit("/", 1)[1] for p in dry_json["problems"]] == ["down"]

    synced = imagevet("sync", "--json", policy=policy)
    assert synced.returncode == 1
    summary = json.loads(synced.stdout)
    assert summary["counts"] == {"copy": 1, "noop": 1}
    assert fake_registry.tags["acme/fine"] == {"2": images["2"].digest}
    assert "acme/down" not in fake_registry.tags


def test_a_lock_that_cannot_be_written_is_an_error_and_the_ledger_still_gets_the_run(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A follow entry's lock update that fails (a read-only checkout, a full disk) used to end the
    run with a traceback before the ledger was written: the run's records were lost."""
    import asyncio
    import errno

    from typer.testing import CliRunner

    from imagevet.cli import app

    asyncio.run(seed(plain_registry, f"{unique_repo}/app", {"1": make_image(seed="lock-ro-old")}))
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    mode: follow\n    tags:\n      tags: ['1']\n"
    ))
    runner = CliRunner()
    assert runner.invoke(app, ["lock", "--policy", str(policy)]).exit_code == 0
    assert runner.invoke(app, ["sync", "--policy", str(policy)]).exit_code == 0
    asyncio.run(seed(plain_registry, f"{unique_repo}/app", {"1": make_image(seed="lock-ro-new")}))
    lock_before = (tmp_path / "imagevet.lock").read_text()
    records_before = len((tmp_path / ".imagevet" / "ledger.jsonl").read_text().splitlines())
    real_replace = os.replace

    def read_only_lock(src: Any, dst: Any, *args: Any, **kw: Any) -> None:
        if str(dst).endswith("imagevet.lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(dst))
        real_replace(src, dst, *args, **kw)

    monkeypatch.setattr(os, "replace", read_only_lock)
    result = runner.invoke(app, ["sync", "--policy", str(policy)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Read-only file system" in result.output and "imagevet.lock" in result.output
    assert (tmp_path / "imagevet.lock").read_text() == lock_before
    events = [json.loads(line)["event"] for line in (tmp_path / ".imagevet" / "ledger.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events[records_before:]] == ["run", "update"]  # the run is in the ledger
    assert verify_ledger(tmp_path / ".imagevet" / "ledger.jsonl").ok
    assert json.loads((tmp_path / ".imagevet" / "last-sync.json").read_text())["counts"] == {"update": 1}
