"""`imagevet lock` (and validate / plan / sync around it) as a user runs them, against a real
docker-registry: a failed entry keeps its records and says so; one odd or unreadable entry
never stops the others."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagevet.digest import Digest
from imagevet.lock import Lock, LockedImage, LockEntry, read_lock, render_lock
from imagevet.mediatype import OCI_INDEX
from imagevet.policy.model import EntryKey
from imagevet.reference import Reference
from tests.integration.test_sync import imagevet, seed, write_policy
from tests.support.images import make_image, make_multiarch
from tests.support.pusher import list_tags
from tests.support.registry_process import RunningRegistry


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def entry_block(text: str, source: str) -> str:
    """The lines of the lock entry whose source is ``source``, as written."""
    m = re.search(rf'^  - source: "{re.escape(source)}"\n(?:(?!  - ).*\n)*', text, re.M)
    assert m is not None, text
    return m.group(0)


async def test_a_failed_entry_keeps_its_records_and_the_summary_says_so(
    plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    image = make_image(seed="reachable")
    await seed(plain_registry, f"{unique_repo}/good", {"1": image})
    down = f"127.0.0.1:{closed_port()}/{unique_repo}/down"
    policy = write_policy(tmp_path, plain_registry.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/good\n    tags:\n      tags: ['1']\n"
        f"  - source: {down}\n    name: down\n    tags:\n      tags: ['1', '2']\n"
    ))
    lock_path = tmp_path / "imagevet.lock"
    kept = LockEntry(
        Reference.parse(down), Reference.parse(f"{plain_registry.host}/acme/down"),
        tags={
            "1": LockedImage(Digest.of(b"one"), OCI_INDEX, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                             ("linux/amd64", "linux/arm64"), (Digest.of(b"sig"),)),
            "2": LockedImage(Digest.of(b"two", "sha512"), OCI_INDEX, datetime(2026, 1, 2, tzinfo=UTC)),
        },
    )
    lock_path.write_text(render_lock(Lock((kept,))))
    records = entry_block(lock_path.read_text(), down)

    out = imagevet("lock", policy=policy)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "up to date" not in out.stdout
    assert "+ 1" in out.stdout  # the reachable entry is locked
    assert "down" in out.stderr and "127.0.0.1" in out.stderr
    assert re.search(r"written; 1 of 2 entries failed, their lock records are left as they were: down$",
                     out.stdout, re.M), out.stdout
    text = lock_path.read_text()
    assert entry_block(text, down) == records  # byte for byte
    good = EntryKey(Reference.parse(f"{plain_registry.host}/{unique_repo}/good"),
                    Reference.parse(f"{plain_registry.host}/acme/good"))
    found = read_lock(lock_path).image(good, "1")
    assert found is not None and found.digest == image.digest

    again = imagevet("lock", policy=policy)  # nothing new for the reachable entry: still a failure
    assert again.returncode == 1, again.stdout + again.stderr
    assert "up to date" not in again.stdout
    assert "1 of 2 entries failed" in again.stdout and "down" in again.stdout
    assert lock_path.read_text() == text

    check = imagevet("lock", "--check", policy=policy)
    assert check.returncode == 1 and "up to date" not in check.stdout
    assert lock_path.read_text() == text


def test_no_network_writes_no_empty_lock(tmp_path: Path) -> None:
    """The report: no network, three errors, an empty lock written and "up to date" printed."""
    port = closed_port()
    policy = write_policy(tmp_path, "127.0.0.1:5000", "".join(
        f"  - source: 127.0.0.1:{port}/up/{name}\n    tags:\n      tags: ['1']\n"
        for name in ("redis", "mailhog", "grafana")
    ))
    out = imagevet("lock", policy=policy)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "up to date" not in out.stdout
    assert not (tmp_path / "imagevet.lock").exists()
    assert "not written" in out.stdout and "3 of 3 entries failed" in out.stdout
    for name in ("redis", "mailhog", "grafana"):
        assert f"up/{name}" in out.stdout and f"up/{name}" in out.stderr


async def test_one_odd_upstream_image_does_not_poison_the_lock(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    """An index saying "os": "Linux" was locked as Linux/amd64, then every command exited 2."""
    target: RunningRegistry = registry_factory(auth="none")
    odd = make_multiarch(seed="odd", platforms=("Linux/amd64", "linux/ARM64"))
    db = make_image(seed="db")
    await seed(plain_registry, f"{unique_repo}/app", {"1": odd})
    await seed(plain_registry, f"{unique_repo}/db", {"1": db})
    policy = write_policy(tmp_path, target.host, (
        f"  - source: {plain_registry.host}/{unique_repo}/app\n    name: app\n    tags:\n      tags: ['1']\n"
        f"  - source: {plain_registry.host}/{unique_repo}/db\n    name: db\n    tags:\n      tags: ['1']\n"
    ))
    lock_path = tmp_path / "imagevet.lock"

    locked = imagevet("lock", policy=policy)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    text = lock_path.read_text()
    assert '"linux/amd64"' in text and '"linux/arm64"' in text and "Linux" not in text
    assert imagevet("validate", policy=policy).returncode == 0

    # a lock written by an older imagevet (or merged by hand) with the odd value in one entry
    app_source = f"{plain_registry.host}/{unique_repo}/app"
    app_block = entry_block(text, app_source)
    poisoned = text.replace(app_block, app_block.replace('"linux/amd64"', '"Linux/amd64"'))
    lock_path.write_text(poisoned)
    line = poisoned.splitlines().index('          - "Linux/amd64"') + 1

    valid = imagevet("validate", policy=policy)
    assert valid.returncode == 1, valid.stdout + valid.stderr
    assert "valid, 2 entries" in valid.stdout
    assert f"{lock_path}:{line}:13" in valid.stderr and "app" in valid.stderr
    assert "Linux/amd64" in valid.stderr and "db" not in valid.stderr

    plan = imagevet("plan", policy=policy)
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert "acme/db" in plan.stdout and "acme/app" not in plan.stdout
    assert f"{lock_path}:{line}:13" in plan.stderr

    synced = imagevet("sync", policy=policy)
    assert synced.returncode == 1, synced.stdout + synced.stderr
    assert await list_tags(target, "acme/db") == ["1"]  # the other entry goes on
    assert await list_tags(target, "acme/app") == []
    assert f"{lock_path}:{line}:13" in synced.stderr
    assert lock_path.read_text() == poisoned  # nothing lost, nothing rewritten

    relocked = imagevet("lock", policy=policy)  # the documented repair
    assert relocked.returncode == 0, relocked.stdout + relocked.stderr
    assert "app" in relocked.stderr and "resolved again" in relocked.stderr
    assert lock_path.read_text() == text.replace(
        entry_block(text, app_source), entry_block(lock_path.read_text(), app_source)
    )
    assert "Linux" not in lock_path.read_text()
    assert imagevet("validate", policy=policy).returncode == 0
    assert imagevet("sync", policy=policy).returncode == 0
    assert await list_tags(target, "acme/app") == ["1"]

    # unreadable again once mirrored: --prune must not take the entry for one with no records
    mirrored = lock_path.read_text()
    block = entry_block(mirrored, app_source)
    lock_path.write_text(mirrored.replace(block, block.replace('"linux/amd64"', '"Linux/amd64"')))
    pruned = imagevet("sync", "--prune", policy=policy)
    assert pruned.returncode == 1, pruned.stdout + pruned.stderr
    assert await list_tags(target, "acme/app") == ["1"]
