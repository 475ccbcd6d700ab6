"""A digest pin of one platform manifest is vetted when that manifest is listed by a vetted index
(``platforms`` in the ``--vetted`` data): on the mirror it is ok, on the source it is fixable to
the mirror pinned to the same platform manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagevet.category import AccessSettings
from imagevet.check import CheckContext, check_paths, plan_fixes, vetted_from_data, vetted_from_lock
from imagevet.digest import Digest
from imagevet.errors import PolicyError
from imagevet.lock import Lock, LockedImage, LockEntry
from imagevet.policy import parse_policy
from imagevet.reference import Reference

INDEX = "sha256:" + "1" * 64
AMD64 = "sha256:" + "a" * 64
ARM64 = "sha256:" + "b" * 64
OTHER = "sha256:" + "c" * 64
DATA = [{"source": "bitnami/redis", "mirror": "acme/redis", "tags": {"7.2": INDEX},
         "platforms": {"7.2": {"linux/amd64": AMD64, "linux/arm64": ARM64}}}]


def _judge(tmp_path: Path, dockerfile: str) -> list[tuple[str, str, str]]:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    ctx = CheckContext("acme", AccessSettings("acme", enabled=True), vetted_from_data(DATA))
    report = check_paths([tmp_path], ctx, root=tmp_path)
    return [(v.rule.id if v.rule else "ok", v.message, str(v.replacement or "")) for v in report.verdicts]


def test_mirror_pinned_to_a_platform_manifest_of_a_vetted_index_is_ok(tmp_path: Path) -> None:
    assert _judge(tmp_path, f"FROM acme/redis@{ARM64}\nFROM acme/redis:7.2@{AMD64}\nFROM acme/redis@{OTHER}\n") == [
        ("ok", "acme/redis@" + ARM64 + ": vetted mirror of bitnami/redis, pinned to the linux/arm64 manifest "
               "of vetted tag 7.2", ""),
        ("ok", "acme/redis:7.2@" + AMD64 + ": vetted mirror of bitnami/redis, pinned to the linux/amd64 "
               "manifest of vetted tag 7.2", ""),
        ("IV005", f"acme/redis@{OTHER}: vetted mirror of bitnami/redis, but digest {OTHER} was not vetted", ""),
    ]


def test_source_pinned_to_a_platform_manifest_is_fixed_to_the_same_manifest_on_the_mirror(tmp_path: Path) -> None:
    rows = _judge(tmp_path, f"FROM bitnami/redis@{AMD64}\nFROM bitnami/redis@{OTHER}\n")
    assert [(r[0], r[2]) for r in rows] == [
        ("IV001", f"docker.io/acme/redis:7.2@{AMD64}"),
        ("IV003", ""),
    ]
    ctx = CheckContext("acme", AccessSettings("acme", enabled=True), vetted_from_data(DATA))
    report = check_paths([tmp_path], ctx, root=tmp_path)
    plan = plan_fixes(report.issues(), {f.path: (f.file, f.text) for f in report.files})
    assert plan.files[0].fixed == f"FROM docker.io/acme/redis:7.2@{AMD64}\nFROM bitnami/redis@{OTHER}\n"


@pytest.mark.parametrize("platforms", [{"7.4": {"linux/amd64": AMD64}}, {"7.2": "x"}, {"7.2": {"linux/amd64": "bad"}}])
def test_bad_platform_data_is_refused(platforms: object) -> None:
    with pytest.raises(PolicyError):
        vetted_from_data(json.loads(json.dumps([{**DATA[0], "platforms": platforms}])))


def test_vetted_from_lock_gives_the_platform_manifests_each_entry_mirrors() -> None:
    """From the lock: every platform manifest of a locked index, or only those a platform
    subset mirrors (``linux/arm64`` matches ``linux/arm64/v8``, as the subset selects)."""
    policy = parse_policy(
        "version: 1\ntarget: {registry: docker.io, namespace: acme}\n"
        "defaults: {approval: {approved_by: a@example.com, expires: 2099-01-01}}\n"
        "images:\n"
        "  - source: bitnami/redis\n    tags: {tags: ['7.2', '7.0']}\n"
        "  - source: bitnami/redis\n    name: redis-arm\n    target: redis-arm\n"
        "    platforms: [linux/arm64]\n    tags: {tags: ['7.2']}\n",
        env={},
    )
    arm = Digest.parse("sha256:" + "d" * 64)
    index = LockedImage(Digest.parse(INDEX), "application/vnd.oci.image.index.v1+json",
                        datetime(2026, 1, 1, tzinfo=UTC), ("linux/amd64", "linux/arm64/v8"),
                        manifests=(("linux/amd64", Digest.parse(AMD64)), ("linux/arm64/v8", arm)))
    old = LockedImage(Digest.parse(OTHER), "application/vnd.oci.image.index.v1+json",
                      datetime(2026, 1, 1, tzinfo=UTC), ("linux/amd64",))  # no manifests recorded
    redis = Reference.parse("bitnami/redis")
    lock = Lock((
        LockEntry(redis, Reference.parse("acme/redis"), {"7.2": index, "7.0": old}),
        LockEntry(redis, Reference.parse("acme/redis-arm"), {"7.2": index}),
    ))
    whole, subset = vetted_from_lock(policy, lock)
    assert whole.platforms == {"7.2": {"linux/amd64": Digest.parse(AMD64), "linux/arm64/v8": arm}}
    assert subset.platforms == {"7.2": {"linux/arm64/v8": arm}}
    assert subset.platform_of(arm) == [("7.2", "linux/arm64/v8")] and subset.platform_of(Digest.parse(AMD64)) == []
