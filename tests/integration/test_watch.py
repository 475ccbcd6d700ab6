"""``imagevet watch`` as a user runs it: a real process against real registries, with signals.

Each test starts ``python -m imagevet.cli watch`` (its log in a file the test reads), pushes to
the upstream registry with the independent test client, and checks the target with it; metrics
are scraped over HTTP and parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from imagevet.engine.runlock import acquire_run_lock
from tests.support.images import Image, make_image
from tests.support.pusher import get_manifest_bytes, head_manifest, push_image
from tests.support.registry_process import RunningRegistry

pytestmark = pytest.mark.slow

_counter = itertools.count()


def imagevet(
    *args: str, policy: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args, "--policy", str(policy)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


class Watch:
    """A running ``imagevet watch``; its stderr goes to a file the test reads."""

    def __init__(self, policy: Path, *args: str) -> None:
        self.log = policy.parent / f"watch-{next(_counter)}.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imagevet.cli", "watch", "--policy", str(policy), *args],
            stdout=self._out, stderr=subprocess.STDOUT, env=dict(os.environ),
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 60) -> str:
        """Wait until ``pattern`` (a regex) appears ``count`` times in the log; the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if len(re.findall(pattern, text)) >= count:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"watch exited {self.proc.returncode} before {pattern!r}:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} x{count} within {timeout}s:\n{text}")
            time.sleep(0.05)

    @property
    def port(self) -> int:
        m = re.search(r"serving /metrics, /healthz, /readyz on http://127\.0\.0\.1:(\d+)", self.wait_for("serving"))
        assert m is not None
        return int(m[1])

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.get("/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


@pytest.fixture
def watches() -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for w in started:
        w.close()


@pytest.fixture
def target(registry_factory: Any) -> RunningRegistry:
    return registry_factory(auth="none")


def write_policy(tmp: Path, target: str, entries: str) -> Path:
    path = tmp / "imagevet.yaml"
    path.write_text(
        "version: 1\n"
        f"target:\n  {target}\n  namespace: acme\n"
        "defaults:\n"
        "  approval:\n    approved_by: security@acme.example\n    expires: 2099-12-31\n"
        "images:\n" + entries
    )
    return path


def entry(source: str, tag: str, *, mode: str = "pinned") -> str:
    return f"  - source: {source}\n    mode: {mode}\n    tags:\n      tags: ['{tag}']\n"


def blob_bytes(image: Image) -> int:
    return sum(len(b) for b in image.blobs.values())


async def target_digest(registry: Any, repo: str, tag: str) -> str | None:
    r = await head_manifest(registry, repo, tag)
    return r.headers.get("Docker-Content-Digest") if r.status == 200 else None


async def wait_digest(registry: Any, repo: str, tag: str, want: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while await target_digest(registry, repo, tag) != want:
        assert time.monotonic() < deadline, f"{repo}:{tag} never became {want}"
        time.sleep(0.1)


# -- the schedule: follow copies, pinned holds -----------------------------------------------------


async def test_follow_brings_an_upstream_push_and_pinned_holds_it_across_cycles(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    watches: list[Watch],
) -> None:
    old_f, new_f = make_image(seed=f"{unique_repo}-f-old"), make_image(seed=f"{unique_repo}-f-new", layer_sizes=(5000, 7000))
    old_p, new_p = make_image(seed=f"{unique_repo}-p-old"), make_image(seed=f"{unique_repo}-p-new")
    await push_image(plain_registry, f"{unique_repo}/follow", old_f, "1.0")
    await push_image(plain_registry, f"{unique_repo}/pinned", old_p, "1.0")
    policy = write_policy(tmp_path, f"registry: {target.host}", (
        entry(f"{plain_registry.host}/{unique_repo}/follow", "1.0", mode="follow")
        + entry(f"{plain_registry.host}/{unique_repo}/pinned", "1.0")
    ))
    assert imagevet("lock", policy=policy).returncode == 0
    w = Watch(policy, "--interval", "1s", "--listen", "127.0.0.1:0")
    watches.append(w)
    w.wait_for(r"cycle 1 ok: 2 copy")
    assert w.get("/readyz") == (200, "ready\n") and w.get("/healthz") == (200, "ok\n")
    assert await target_digest(target, "acme/follow", "1.0") == str(old_f.digest)
    assert await target_digest(target, "acme/pinned", "1.0") == str(old_p.digest)

    await push_image(plain_registry, f"{unique_repo}/follow", new_f, "1.0")  # upstream moves both
    await push_image(plain_registry, f"{unique_repo}/pinned", new_p, "1.0")
    await wait_digest(target, "acme/follow", "1.0", str(new_f.digest))
    cycles = len(re.findall(r"cycle \d+ ok", w.text()))
    text = w.wait_for(r"cycle \d+ ok: .*1 hold.*1 held updates", count=3)  # several cycles pass
    assert await target_digest(target, "acme/pinned", "1.0") == str(old_p.digest)  # held, not copied
    body, _, _ = await get_manifest_bytes(target, "acme/follow", "1.0")
    assert body == new_f.top.data
    assert len(re.findall(r"cycle \d+ ok", text)) >= cycles + 2

    m = w.metrics()
    copied = blob_bytes(old_f) + blob_bytes(old_p) + blob_bytes(new_f)
    assert m[("imagevet_bytes_copied_total", ())] == copied
    assert m[("imagevet_actions_total", (("kind", "copy"),))] == 2
    assert m[("imagevet_actions_total", (("kind", "update"),))] == 1
    assert m[("imagevet_actions_total", (("kind", "hold"),))] >= 3
    assert m[("imagevet_held_updates", ())] == 1
    assert m[("imagevet_failures_total", ())] == 0
    assert m[("imagevet_runs_total", (("result", "ok"),))] >= 4
    assert m[("imagevet_runs_total", (("result", "failed"),))] == 0
    stamp = m[("imagevet_last_success_timestamp_seconds", (("entry", f"{plain_registry.host}/{unique_repo}/follow"),))]
    assert abs(stamp - time.time()) < 30
    assert m[("imagevet_run_duration_seconds_count", ())] >= 4
    assert re.search(r"next run \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)

    assert w.stop() == 0
    assert "stopped" in w.text()
    # the pinned entry's lock still says the vetted digest; the follow entry's moved along
    lock_text = (tmp_path / "imagevet.lock").read_text()
    assert str(old_p.digest) in lock_text and str(new_f.digest) in lock_text and str(new_p.digest) not in lock_text


async def test_the_lock_file_is_read_again_each_cycle(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    watches: list[Watch],
) -> None:
    old, new = make_image(seed=f"{unique_repo}-old"), make_image(seed=f"{unique_repo}-new")
    await push_image(plain_registry, f"{unique_repo}/app", old, "1.0")
    policy = write_policy(tmp_path, f"registry: {target.host}", entry(f"{plain_registry.host}/{unique_repo}/app", "1.0"))
    assert imagevet("lock", policy=policy).returncode == 0
    w = Watch(policy, "--interval", "1s", "--no-listen")
    watches.append(w)
    w.wait_for("cycle 1 ok: 1 copy")
    await push_image(plain_registry, f"{unique_repo}/app", new, "1.0")
    w.wait_for(r"1 hold.*1 held updates")
    # a person re-locks (what `imagevet approve` does for one tag) while the watch runs
    assert imagevet("lock", policy=policy).returncode == 0
    await wait_digest(target, "acme/app", "1.0", str(new.digest))
    assert w.stop() == 0


# -- stopping: SIGTERM, SIGKILL, the run lock ------------------------------------------------------


@pytest.mark.parametrize("kind", ["registry", "layout"])
@pytest.mark.parametrize("grace", [0, 60])
async def test_sigterm_during_a_slow_copy_leaves_the_tag_absent_or_complete(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    fault_proxy: Any, watches: list[Watch], kind: str, grace: int,
) -> None:
    image = make_image(seed=f"{unique_repo}-slow", layer_sizes=(300_000, 1000))
    await push_image(plain_registry, f"{unique_repo}/slow", image, "1.0")
    source = fault_proxy(plain_registry)
    source.drip("/blobs/", nbytes=16384, interval=0.1)  # ~2 s per big blob
    where = f"registry: {target.host}" if kind == "registry" else f"layout: {tmp_path / 'mirror'}"
    policy = write_policy(tmp_path, where, entry(f"{source.host}/{unique_repo}/slow", "1.0", mode="follow"))
    w = Watch(policy, "--interval", "1h", "--no-listen", "--grace", str(grace))
    watches.append(w)
    deadline = time.monotonic() + 60
    while not source.find(method="GET", path_contains="/blobs/"):
        assert time.monotonic() < deadline and w.proc.poll() is None, w.text()
        time.sleep(0.02)
    assert w.stop(timeout=90) == 0, w.text()
    text = w.text()
    if kind == "registry":
        got = await target_digest(target, "acme/slow", "1.0")
        if got is not None:
            body, _, _ = await get_manifest_bytes(target, "acme/slow", "1.0")
            assert body == image.top.data
    else:
        index_file = tmp_path / "mirror" / "acme" / "slow" / "index.json"
        tags = {}
        if index_file.exists():
            index = json.loads(index_file.read_text())  # whole JSON: never half written
            tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
                    for m in index["manifests"] if "annotations" in m}
        got = tags.get("1.0")
        if got is not None:
            blobs = tmp_path / "mirror" / "acme" / "slow" / "blobs" / "sha256"
            for digest, data in image.blobs.items():
                assert (blobs / digest.hex).read_bytes() == data
    if grace == 0:
        assert got is None and "cycle 1 cancelled" in text, text
    else:
        assert got == str(image.digest) and "cycle 1 ok: 1 copy" in text, text
    assert "Traceback" not in text


async def test_sigkill_leaves_a_stale_lock_that_the_next_start_clears(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    fault_proxy: Any, watches: list[Watch],
) -> None:
    image = make_image(seed=f"{unique_repo}-k", layer_sizes=(200_000,))
    await push_image(plain_registry, f"{unique_repo}/app", image, "1.0")
    source = fault_proxy(plain_registry)
    slow = source.drip("/blobs/", nbytes=2048, interval=0.1)  # ~10 s: still copying when sync starts
    policy = write_policy(tmp_path, f"registry: {target.host}", entry(f"{source.host}/{unique_repo}/app", "1.0", mode="follow"))
    w = Watch(policy, "--interval", "1h", "--no-listen")
    watches.append(w)
    while not source.find(method="GET", path_contains="/blobs/"):
        assert w.proc.poll() is None, w.text()
        time.sleep(0.02)
    # meanwhile `imagevet sync` is refused, naming the watch that runs
    refused = imagevet("sync", policy=policy)
    assert refused.returncode == 1
    assert f"another imagevet run holds {tmp_path / '.imagevet' / 'run.lock'}: pid {w.proc.pid}" in refused.stderr
    assert "(watch)" in refused.stderr
    w.stop(signal.SIGKILL)
    assert json.loads((tmp_path / ".imagevet" / "run.lock").read_text())["pid"] == w.proc.pid
    slow.remove()

    again = Watch(policy, "--once")
    watches.append(again)
    assert again.proc.wait(60) == 0, again.text()
    text = again.text()
    assert f"cleared a stale run lock {tmp_path / '.imagevet' / 'run.lock'} left by pid {w.proc.pid}" in text
    assert "cycle 1 ok: 1 copy" in text
    assert await target_digest(target, "acme/app", "1.0") == str(image.digest)
    assert (tmp_path / ".imagevet" / "run.lock").read_bytes() == b""


async def test_a_cycle_is_skipped_while_another_run_holds_the_lock(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    watches: list[Watch],
) -> None:
    image = make_image(seed=f"{unique_repo}-s")
    await push_image(plain_registry, f"{unique_repo}/app", image, "1.0")
    policy = write_policy(tmp_path, f"registry: {target.host}", entry(f"{plain_registry.host}/{unique_repo}/app", "1.0", mode="follow"))
    with acquire_run_lock(tmp_path / ".imagevet", command="sync"):
        once = imagevet("watch", "--once", policy=policy)
        assert once.returncode == 1
        assert "cycle 1 skipped: another imagevet run holds" in once.stderr and "(sync)" in once.stderr
        w = Watch(policy, "--interval", "1s", "--listen", "127.0.0.1:0")
        watches.append(w)
        w.wait_for("cycle 2 skipped")
        assert w.metrics()[("imagevet_runs_total", (("result", "skipped"),))] >= 2
        assert w.get("/readyz")[0] == 503
        assert await target_digest(target, "acme/app", "1.0") is None  # nothing ran
    w.wait_for(r"cycle \d+ ok: 1 copy")
    assert w.get("/readyz")[0] == 200
    assert w.stop() == 0


# -- the policy: file changes, SIGHUP, a broken file ---------------------------------------------


async def test_the_policy_reloads_on_change_and_sighup_and_a_broken_one_is_not_ready(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    watches: list[Watch],
) -> None:
    a, b = make_image(seed=f"{unique_repo}-a"), make_image(seed=f"{unique_repo}-b")
    await push_image(plain_registry, f"{unique_repo}/a", a, "1")
    await push_image(plain_registry, f"{unique_repo}/b", b, "1")
    first = entry(f"{plain_registry.host}/{unique_repo}/a", "1", mode="follow")
    second = entry(f"{plain_registry.host}/{unique_repo}/b", "1", mode="follow")
    policy = write_policy(tmp_path, f"registry: {target.host}", first)
    good = policy.read_text()
    w = Watch(policy, "--interval", "1s", "--listen", "127.0.0.1:0")
    watches.append(w)
    w.wait_for("cycle 1 ok: 1 copy")

    policy.write_text(good + second)  # a new entry: picked up without a restart
    w.wait_for(r"policy reloaded \(the file changed\): 2 entries")
    await wait_digest(target, "acme/b", "1", str(b.digest))

    policy.write_text(good + second + "  - source: [unclosed\n")
    text = w.wait_for("policy reload .* failed; keeping the last good policy")
    assert re.search(rf"{re.escape(str(policy))}:\d+:\d+: ", text)
    deadline = time.monotonic() + 30
    while w.get("/readyz")[0] != 503:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "does not load" in w.get("/readyz")[1]
    assert w.get("/healthz")[0] == 200  # alive, just not ready
    assert w.metrics()[("imagevet_policy_loaded", ())] == 0
    runs = len(re.findall(r"cycle \d+ ok: 2 noop", w.text()))
    w.wait_for(r"cycle \d+ ok: 2 noop", count=runs + 2)  # still syncing, with the last good policy

    policy.write_text(good + second)
    w.wait_for(r"policy reloaded \(the file changed\)", count=2)
    deadline = time.monotonic() + 30
    while w.get("/readyz")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    w.send(signal.SIGHUP)
    w.wait_for(r"policy reloaded \(SIGHUP\): 2 entries")
    assert w.metrics()[("imagevet_policy_reloads_total", (("result", "error"),))] == 1
    assert w.stop(signal.SIGINT) == 0


# -- --once and usage errors ---------------------------------------------------------------------


async def test_once_exits_with_syncs_code(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
) -> None:
    image = make_image(seed=f"{unique_repo}-o")
    await push_image(plain_registry, f"{unique_repo}/app", image, "1")
    ok_policy = write_policy(tmp_path, f"registry: {target.host}", entry(f"{plain_registry.host}/{unique_repo}/app", "1", mode="follow"))
    done = imagevet("watch", "--once", policy=ok_policy)
    assert done.returncode == 0, done.stderr
    assert "cycle 1 ok: 1 copy" in done.stderr and "next run" not in done.stderr
    assert await target_digest(target, "acme/app", "1") == str(image.digest)

    (tmp_path / "bad").mkdir()
    bad_policy = write_policy(tmp_path / "bad", f"registry: {target.host}", entry(f"{plain_registry.host}/{unique_repo}/missing", "1", mode="follow"))
    failed = imagevet("watch", "--once", policy=bad_policy)
    assert failed.returncode == 1
    assert "cycle 1 finished with failures" in failed.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "15x"], "--interval: '15x' is not a duration"),
        (["--interval", "0s"], "--interval: '0s': must be at least 1s"),
        (["--cron", "*/15 * * *"], "--cron: '*/15 * * *': a cron expression has 5 fields"),
        (["--cron", "61 * * * *"], "--cron: '61 * * * *'"),
        (["--cron", "* * * * *", "--interval", "1m"], "give --interval or --cron, not both"),
        (["--interval", "1m", "--jitter", "2m"], "--jitter: '2m': at most the interval"),
        (["--listen", "nowhere"], "--listen 'nowhere': expected HOST:PORT"),
        (["--grace", "-1"], "Invalid value for '--grace'"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    policy = write_policy(tmp_path, "registry: 127.0.0.1:1", entry("127.0.0.1:1/up/app", "1"))
    done = imagevet("watch", *args, policy=policy, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_a_policy_that_does_not_load_at_start_is_a_usage_error(tmp_path: Path) -> None:
    policy = tmp_path / "imagevet.yaml"
    policy.write_text("version: 1\ntarget: 5\n")
    done = imagevet("watch", policy=policy, timeout=60)
    assert done.returncode == 2 and f"{policy}:2:" in done.stderr


def test_a_bad_signing_key_stops_it_at_start(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "registry: 127.0.0.1:1", entry("127.0.0.1:1/up/app", "1"))
    done = imagevet("watch", policy=policy, timeout=60, env={"IMAGEVET_LEDGER_KEY": "not-a-key"})
    assert done.returncode == 2 and "IMAGEVET_LEDGER_KEY" in done.stderr
    assert "not-a-key" not in done.stderr
    assert not (tmp_path / ".imagevet" / "run.lock").exists()  # nothing ran


# -- the pull budget -------------------------------------------------------------------------------


async def test_deferred_work_is_retried_when_the_budget_window_resets(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path,
    fault_proxy: Any, watches: list[Watch],
) -> None:
    image = make_image(seed=f"{unique_repo}-d")
    await push_image(plain_registry, f"{unique_repo}/app", image, "1")
    source = fault_proxy(plain_registry)
    budget = source.rate_limit(remaining=0, limit=100, window=3)
    policy = write_policy(tmp_path, f"registry: {target.host}", entry(f"{source.host}/{unique_repo}/app", "1", mode="follow"))
    # daily at 03:00: without the reset the deferred copy would wait for tomorrow
    w = Watch(policy, "--cron", "0 3 * * *", "--listen", "127.0.0.1:0")
    watches.append(w)
    text = w.wait_for(r"cycle 1 .*1 defer.*deferred work waits for the pull budget: next run")
    assert await target_digest(target, "acme/app", "1") is None
    assert w.metrics()[("imagevet_pull_budget_remaining", ((("registry", source.host)),))] == 0
    budget.remaining = 100  # the window passed
    w.wait_for(r"cycle 2 ok: 1 copy", timeout=30)
    assert await target_digest(target, "acme/app", "1") == str(image.digest)
    assert "Traceback" not in text
    assert w.stop() == 0
