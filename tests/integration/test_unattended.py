"""Issue 10 end to end, the way a platform team meets it: ``imagevet watch`` running against real
registries with a webhook target.  Upstream re-points a pinned tag: the mirror keeps the vetted
digest, the update is held once and told once (however many cycles pass), ``imagevet status``
lists it, ``imagevet approve`` moves the lock, and the next cycle copies it."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from imagevet.engine.state import FileStateStore
from tests.integration.test_watch import Watch, imagevet, target_digest, wait_digest, write_policy
from tests.support.images import make_image
from tests.support.pusher import push_image
from tests.support.registry_process import RunningRegistry
from tests.unit.notify.receiver import Receiver

pytestmark = pytest.mark.slow


async def test_a_pinned_move_is_held_and_told_once_then_approved_and_copied(
    plain_registry: RunningRegistry, registry_factory: object, unique_repo: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target: RunningRegistry = registry_factory(auth="none")  # type: ignore[operator]
    receiver = Receiver().start()
    watch: Watch | None = None
    try:
        old, new = make_image(seed=f"{unique_repo}-old"), make_image(seed=f"{unique_repo}-new")
        await push_image(plain_registry, f"{unique_repo}/app", old, "1.0")
        policy = write_policy(tmp_path, f"registry: {target.host}", (
            f"  - source: {plain_registry.host}/{unique_repo}/app\n    name: app\n    mode: pinned\n"
            "    tags:\n      tags: ['1.0']\n"
            "notify:\n  - type: webhook\n    url_env: HOOK_URL\n"
        ))
        monkeypatch.setenv("HOOK_URL", receiver.url("/hook"))
        assert imagevet("lock", policy=policy).returncode == 0
        watch = Watch(policy, "--interval", "1s", "--no-listen")
        watch.wait_for(r"cycle 1 ok: 1 copy")
        assert await target_digest(target, "acme/app", "1.0") == str(old.digest)
        assert receiver.requests == []

        await push_image(plain_registry, f"{unique_repo}/app", new, "1.0")  # upstream re-points 1.0
        watch.wait_for(r"cycle \d+ ok: .*1 hold", count=4)  # several cycles hold it
        assert await target_digest(target, "acme/app", "1.0") == str(old.digest)
        (told,) = receiver.requests  # one webhook call, not one per cycle
        event = told.json()
        assert (event["kind"], event["entry"], event["tag"]) == ("held-update", "app", "1.0")
        assert event["digests"]["upstream"] == str(new.digest)
        assert event["digests"]["current"] == str(old.digest)
        (held,) = FileStateStore(tmp_path / ".imagevet").held()
        assert (held.entry, held.tag, held.digest) == ("app", "1.0", str(new.digest))

        status = imagevet("status", "--json", policy=policy)
        assert status.returncode == 3, status.stderr  # something needs a person (docs/approvals.md)
        assert str(new.digest) in json.dumps(json.loads(status.stdout))

        approved = imagevet("approve", "app", "1.0", "--reason", "reviewed the new build", "--by", "alice",
                            policy=policy)
        assert approved.returncode == 0, approved.stderr
        lock = policy.with_suffix(".lock").read_text()
        assert str(new.digest) in lock and str(old.digest) not in lock and '"alice"' in lock

        await wait_digest(target, "acme/app", "1.0", str(new.digest))  # the next cycle copies it
        text = watch.wait_for(r"cycle \d+ ok: 1 update")
        cycles = len(re.findall(r"cycle \d+ ok", text))
        watch.wait_for(r"cycle \d+ ok", count=cycles + 2)
        assert FileStateStore(tmp_path / ".imagevet").held() == []
        assert len(receiver.requests) == 1  # nothing more to tell
        assert imagevet("status", policy=policy).returncode == 0
        assert watch.stop(signal.SIGTERM) == 0
    finally:
        if watch is not None:
            watch.close()
        receiver.stop()
