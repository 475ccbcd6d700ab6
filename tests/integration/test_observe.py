"""Observing with two stores: the source is read from one, the target from the other, and each
side costs only what the README promises (source: one tag listing per repository and one HEAD
per selected tag; target: one tag listing and one HEAD per tag, no manifest GET)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from imagevet.engine.observe import observe, pulls_left
from imagevet.engine.resolve import resolve_lock
from imagevet.errors import NotFoundError, RateLimitedError, UnauthorizedError
from imagevet.lock import Lock
from imagevet.plan import ActionKind, Copy, EntryProblem, Noop, plan_sync
from imagevet.policy import Policy, parse_policy
from imagevet.ratelimit import RateLimit
from imagevet.reference import Reference
from imagevet.registry import RegistryClient
from imagevet.registry.retry import RetryPolicy
from tests.support.images import make_image, make_multiarch
from tests.support.pusher import push_image
from tests.support.recording_store import Event, RecordingStore

NOW = datetime(2026, 6, 15, 8, 0, 0, tzinfo=UTC)


def _policy(target: Any, entries: str) -> Policy:
    return parse_policy(
        "version: 1\n"
        f"target:\n  registry: {target.host}\n  namespace: acme\n"
        "defaults:\n  approval:\n    approved_by: security@acme.example\n    expires: 2099-12-31\n"
        "images:\n" + entries,
        env={},
    )


def _client() -> RegistryClient:
    return RegistryClient(retry=RetryPolicy.no_wait(attempts=2))


def _requests(client: RegistryClient) -> Counter[tuple[str, str, str]]:
    return Counter((r.method, r.kind, r.registry) for r in client.stats)


async def test_observe_reads_the_source_from_one_store_and_the_target_from_the_other(
    registry_factory: Any, unique_repo: str,
) -> None:
    upstream, mirror = registry_factory(), registry_factory()
    images = {"1.0": make_multiarch(seed="obs-1.0"), "1.1": make_image(seed="obs-1.1")}
    for tag, image in images.items():
        await push_image(upstream, f"{unique_repo}/app", image, tag)
        await push_image(mirror, "acme/app", image, tag)
    await push_image(upstream, f"{unique_repo}/app", make_image(seed="obs-dev"), "dev")
    policy = _policy(mirror, (
        f"  - source: {upstream.host}/{unique_repo}/app\n"
        "    mode: follow\n"
        "    tags: {allow: ['1\\.\\d+']}\n"
    ))

    async with _client() as source, _client() as target:
        observed, problems = await observe(source, target, policy)
        plan = plan_sync(policy, Lock(), observed, now=NOW)

    assert problems == []
    assert [(type(a), a.target.tag, a.digest) for a in plan.actions if isinstance(a, Noop)] == [
        (Noop, "1.0", images["1.0"].digest), (Noop, "1.1", images["1.1"].digest),
    ]
    assert len(plan.actions) == 2 and not plan.has_changes
    # the source: one tag listing, one HEAD per selected tag ("dev" is listed, never HEADed)
    assert _requests(source) == Counter({
        ("GET", "tags", upstream.host): 1, ("HEAD", "manifest", upstream.host): 2,
    })
    # the target: its tag listing and one HEAD per tag; no manifest GET, nothing at the source
    assert _requests(target) == Counter({
        ("GET", "tags", mirror.host): 1, ("HEAD", "manifest", mirror.host): 2,
    })


async def test_what_the_target_lacks_is_copied_from_the_source_store(
    registry_factory: Any, unique_repo: str,
) -> None:
    upstream, mirror = registry_factory(), registry_factory()
    old, new = make_image(seed="obs-old"), make_image(seed="obs-new")
    await push_image(upstream, f"{unique_repo}/app", new, "1.0")
    await push_image(upstream, f"{unique_repo}/app", new, "1.1")
    await push_image(mirror, "acme/app", old, "1.0")  # re-pointed upstream since
    policy = _policy(mirror, (
        f"  - source: {upstream.host}/{unique_repo}/app\n"
        "    mode: follow\n"
        "    tags: {allow: ['1\\.\\d+']}\n"
    ))

    async with _client() as source, _client() as target:
        observed, problems = await observe(source, target, policy)
        plan = plan_sync(policy, Lock(), observed, now=NOW)

    assert problems == []
    kinds = [(a.kind, a.target.tag) for a in plan.actions]
    assert kinds == [(ActionKind.UPDATE, "1.0"), (ActionKind.COPY, "1.1")]
    copy = plan.actions[1]
    assert isinstance(copy, Copy)
    assert copy.source == Reference.parse(f"{upstream.host}/{unique_repo}/app:1.1@{new.digest}")
    assert copy.target == Reference.parse(f"{mirror.host}/acme/app:1.1")
    assert _requests(source) == Counter({
        ("GET", "tags", upstream.host): 1, ("HEAD", "manifest", upstream.host): 2,
    })
    assert _requests(target) == Counter({
        ("GET", "tags", mirror.host): 1, ("HEAD", "manifest", mirror.host): 1,
    })


async def test_entries_sharing_a_source_read_it_once_and_each_target_on_its_own_store(
    registry_factory: Any, unique_repo: str,
) -> None:
    upstream, mirror = registry_factory(), registry_factory()
    tags = {t: make_image(seed=f"obs-share-{t}") for t in ("1.0", "1.1", "2.0")}
    for tag, image in tags.items():
        await push_image(upstream, f"{unique_repo}/app", image, tag)
    policy = _policy(mirror, (
        f"  - source: {upstream.host}/{unique_repo}/app\n"
        "    name: one\n"
        "    target: app-one\n"
        "    mode: follow\n"
        "    tags: {allow: ['1\\.\\d+']}\n"
        f"  - source: {upstream.host}/{unique_repo}/app\n"
        "    name: two\n"
        "    target: app-two\n"
        "    mode: follow\n"
        "    tags: {allow: ['[12]\\.0']}\n"
    ))

    async with _client() as source, _client() as target:
        observed, problems = await observe(source, target, policy)
        plan = plan_sync(policy, Lock(), observed, now=NOW)

    assert problems == []
    assert sorted((a.entry, a.target.tag) for a in plan.actions if isinstance(a, Copy)) == [
        ("one", "1.0"), ("one", "1.1"), ("two", "1.0"), ("two", "2.0"),
    ]
    # one listing and one HEAD per distinct tag, however many entries select it
    assert _requests(source) == Counter({
        ("GET", "tags", upstream.host): 1, ("HEAD", "manifest", upstream.host): 3,
    })
    # each target repository does not exist yet: one listing each, nothing else
    assert _requests(target) == Counter({("GET", "tags", mirror.host): 2})


async def test_pull_budgets_come_from_both_stores_and_one_store_counts_once() -> None:
    async with _client() as source, _client() as target:
        source.ratelimits["docker.io"] = RateLimit(100, 40, 21600)
        source.ratelimits["ghcr.io"] = RateLimit(None, None, None)
        target.ratelimits["docker.io"] = RateLimit(100, 25, 21600)
        target.ratelimits["registry.example"] = RateLimit(10, 7, 60)
        assert pulls_left(source, target) == {"docker.io": 25, "registry.example": 7}
        assert pulls_left(source, source) == {"docker.io": 40}


async def test_problems_keep_their_typed_cause_and_the_same_message(
    registry_factory: Any, fault_proxy: Any, unique_repo: str,
) -> None:
    upstream, mirror = registry_factory(), registry_factory()
    for name in ("ok", "limited", "denied", "target-denied"):
        await push_image(upstream, f"{unique_repo}/{name}", make_image(seed=f"obs-{name}"), "1.0")
    source_proxy, target_proxy = fault_proxy(upstream), fault_proxy(mirror)
    source_proxy.fail(None, 429, method="GET", path_contains=f"{unique_repo}/limited/tags/")
    source_proxy.fail(None, 403, method="GET", path_contains=f"{unique_repo}/denied/tags/")
    target_proxy.fail(None, 403, method="GET", path_contains="acme/target-denied/tags/")
    policy = _policy(target_proxy, "".join(
        f"  - source: {source_proxy.host}/{unique_repo}/{name}\n"
        "    mode: follow\n"
        "    tags: {allow: ['1\\.0']}\n"
        for name in ("ok", "missing", "limited", "denied", "target-denied")
    ))

    async with _client() as source, _client() as target:
        _, problems = await observe(source, target, policy)
        resolution = await resolve_lock(source, policy, Lock(), now=NOW)

    def kinds(found: list[EntryProblem]) -> list[tuple[str, type[BaseException] | None]]:
        return [(p.entry.rsplit("/", 1)[-1], type(p.cause) if p.cause else None) for p in found]

    assert kinds(problems) == [
        ("missing", NotFoundError), ("limited", RateLimitedError), ("denied", UnauthorizedError),
        ("target-denied", UnauthorizedError),
    ]
    # the message is what it was: the cause's own text, nothing added to the output
    assert all(p.message == str(p.cause) for p in problems)
    assert problems[-1].source == f"{target_proxy.host}/acme/target-denied"
    assert kinds(resolution.problems) == [
        ("missing", NotFoundError), ("limited", RateLimitedError), ("denied", UnauthorizedError),
    ]
    assert all(p.message == str(p.cause) for p in resolution.problems)
    # the cause is kept beside the problem, never part of what it compares or prints as
    assert EntryProblem("e", "s", "m", cause=problems[0].cause) == EntryProblem("e", "s", "m")


async def test_each_target_is_observed_while_its_source_is_still_being_read(
    registry_factory: Any, unique_repo: str,
) -> None:
    """The target's tag listing does not depend on the source: it goes out while the source's
    listing is in flight (one round trip of depth, not two, behind latency).  The source's
    listing is held until the target's starts: observed one after the other, it waits in vain."""
    upstream, mirror = registry_factory(), registry_factory()
    image = make_image(seed="obs-overlap")
    await push_image(upstream, f"{unique_repo}/app", image, "1.0")
    await push_image(mirror, "acme/app", image, "1.0")
    policy = _policy(mirror, (
        f"  - source: {upstream.host}/{unique_repo}/app\n"
        "    mode: follow\n"
        "    tags: {allow: ['1\\.0']}\n"
    ))
    log: list[Event] = []
    target_listing = asyncio.Event()

    async with _client() as source_client, _client() as target_client:
        source = RecordingStore(source_client, "source", log)
        target = RecordingStore(target_client, "target", log)
        source.hold("list_tags", until=target_listing)
        target.signal("list_tags", target_listing)
        observed, problems = await observe(source, target, policy)
        plan = plan_sync(policy, Lock(), observed, now=NOW)

    assert problems == [] and [a.kind for a in plan.actions] == [ActionKind.NOOP]
    assert ("source", "list_tags", "held in vain") not in log, log
    assert log.index(("target", "list_tags", "start")) < log.index(("source", "list_tags", "end"))
    # the same requests as one after the other: nothing more for overlapping them
    assert Counter((name, op) for name, op, what in log if what == "start") == Counter({
        ("source", "list_tags"): 1, ("source", "head_manifest"): 1,
        ("target", "list_tags"): 1, ("target", "head_manifest"): 1,
    })
