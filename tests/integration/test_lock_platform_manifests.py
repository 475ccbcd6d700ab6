"""`imagevet lock` records the digest of each platform manifest of an index (from the GET it
already makes for a new digest), and completes a lock written before it did: one manifest GET
per such digest, once; `--check` makes none and does not count it as a change."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from imagevet.digest import Digest
from imagevet.lock import read_lock
from imagevet.policy.model import EntryKey
from imagevet.reference import Reference
from tests.integration.test_sync import imagevet, seed, write_policy
from tests.support.fault_proxy import FaultProxy
from tests.support.images import Image, make_image, make_multiarch
from tests.support.registry_process import RunningRegistry


def children_of(index: Image) -> dict[str, Digest]:
    """Independently of imagevet: platform -> digest of each manifest the index lists."""
    doc = json.loads(index.top.data)
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}": Digest.parse(m["digest"])
        for m in doc["manifests"]
    }


def manifest_gets(proxy: FaultProxy, repo: str) -> list[str]:
    return sorted(r.path.rsplit("/", 1)[-1] for r in proxy.find("GET", f"{repo}/manifests/"))


def strip_manifests(text: str) -> str:
    """The lock as an imagevet without ``manifests`` wrote it."""
    return re.sub(r'^        manifests:\n(?:          ".*\n)+', "", text, flags=re.M)


async def test_lock_records_platform_manifests_and_completes_an_old_lock_once(
    plain_registry: RunningRegistry, registry_factory: Any, fault_proxy: Any, unique_repo: str,
    tmp_path: Path,
) -> None:
    target: RunningRegistry = registry_factory(auth="none")
    multi = make_multiarch(seed="pm-multi", platforms=("linux/amd64", "linux/arm64"))
    single = make_image(seed="pm-single")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1.0": multi, "1.0.1": multi, "1.1": single})
    proxy: FaultProxy = fault_proxy(plain_registry)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {proxy.host}/{repo}\n    name: app\n    tags:\n      tags: ['1.0', '1.0.1', '1.1']\n"
    ))
    lock_path = tmp_path / "imagevet.lock"
    key = EntryKey(Reference.parse(f"{proxy.host}/{repo}"), Reference.parse(f"{target.host}/acme/app"))

    first = imagevet("lock", policy=policy)
    assert first.returncode == 0, first.stdout + first.stderr
    # one GET per new digest, the one that already read the platforms: nothing more
    assert manifest_gets(proxy, repo) == sorted([str(multi.digest), str(single.digest)])
    locked = read_lock(lock_path)
    for tag in ("1.0", "1.0.1"):
        record = locked.image(key, tag)
        assert record is not None and record.by_platform == children_of(multi)
    plain = locked.image(key, "1.1")
    assert plain is not None and plain.manifests == () and not plain.lacks_manifests
    written = lock_path.read_text()
    assert written.count("        manifests:\n") == 2
    for platform, digest in children_of(multi).items():
        assert f'          "{platform}": "{digest}"\n' in written

    # a lock written before the digests were recorded
    old = strip_manifests(written)
    assert "manifests:" not in old and old != written
    lock_path.write_text(old)
    proxy.clear()
    check = imagevet("lock", "--check", policy=policy)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "up to date" in check.stdout
    assert manifest_gets(proxy, repo) == []  # --check writes nothing, so it reads nothing for it
    assert lock_path.read_text() == old

    completed = imagevet("lock", policy=policy)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no changes (3 unchanged, 2 given their platform manifests' digests)" in completed.stdout
    assert "written" in completed.stdout
    assert manifest_gets(proxy, repo) == [str(multi.digest)]  # once for both tags, none for 1.1
    assert lock_path.read_text() == written  # the same bytes a fresh lock has (times kept)

    proxy.clear()
    again = imagevet("lock", policy=policy)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr
    assert manifest_gets(proxy, repo) == []
    assert lock_path.read_text() == written


async def test_an_old_record_whose_manifest_cannot_be_read_stays_as_it_was(
    plain_registry: RunningRegistry, registry_factory: Any, fault_proxy: Any, unique_repo: str,
    tmp_path: Path,
) -> None:
    target: RunningRegistry = registry_factory(auth="none")
    multi = make_multiarch(seed="pm-gone")
    repo = f"{unique_repo}/app"
    await seed(plain_registry, repo, {"1": multi})
    proxy: FaultProxy = fault_proxy(plain_registry)
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {proxy.host}/{repo}\n    name: app\n    tags:\n      tags: ['1']\n"
    ))
    lock_path = tmp_path / "imagevet.lock"
    assert imagevet("lock", policy=policy).returncode == 0
    old = strip_manifests(lock_path.read_text())
    lock_path.write_text(old)
    proxy.clear()
    proxy.fail(None, 404, method="GET", path_contains=f"{repo}/manifests/{multi.digest}")

    out = imagevet("lock", policy=policy)
    assert out.returncode == 0, out.stdout + out.stderr
    assert lock_path.read_text() == old  # nothing lost, nothing invented
    assert proxy.count("GET", f"{repo}/manifests/{multi.digest}") == 1
