"""``imagevet copy --all-tags`` on other projects' published test layouts (../shared/realworld-images),
pushed byte for byte into a real ``docker-registry``, copied again and again into fresh repositories.

Every good image must arrive with its exact digest on every run; a broken image (a descriptor with
the wrong size) must fail alone, with the reason, on every run.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from imagevet.cli import app
from imagevet.digest import Digest
from imagevet.engine.copy import CopyResult, CopySession
from imagevet.manifest import RawManifest
from imagevet.reference import Reference
from imagevet.registry import RegistryClient, RetryPolicy
from tests.support.layouts import (
    REALWORLD,
    Layout,
    PushedLayout,
    load_layout,
    load_layouts,
    push_layout,
)
from tests.support.pusher import fetch_image_sync, list_tags_sync, run_sync
from tests.support.registry_process import RunningRegistry

RUNS = 10
MULTI = "containers-image-layout/delete_image_multiple_images"

runner = CliRunner()


def copy_all_tags(src: str, dst: str) -> tuple[int, dict[str, Any]]:
    out = runner.invoke(app, ["copy", "--all-tags", "--json", src, dst])
    try:
        report: dict[str, Any] = json.loads(out.stdout)
    except ValueError:
        raise AssertionError(f"exit {out.exit_code}, no JSON report: {out.output}") from None
    return out.exit_code, report


def seed(registry: RunningRegistry, layout: Layout, prefix: str) -> PushedLayout:
    return run_sync(push_layout(registry, layout, f"{prefix}/{layout.repository}"))


@pytest.fixture
def target(registry_factory: Any) -> RunningRegistry:
    return registry_factory(auth="none")


def outcome(report: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(tag -> digest copied, tag -> failure reason) of a --json report."""
    copied = {r["target"].rsplit(":", 1)[1]: r["digest"] for r in report["results"]}
    failed = {e["target"].rsplit(":", 1)[1]: e["reason"] for e in report["errors"]}
    return copied, failed


@pytest.mark.parametrize("where", ["same-registry", "other-registry"])
def test_shared_manifest_and_bad_descriptor_copy_the_same_way_every_run(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, where: str
) -> None:
    """Issue 8 items 2 and 4, on the containers/image layout that showed them: ``3`` and ``3.18``
    are a manifest that the ``latest``/``3.18.3`` index also lists (it used to be PUT twice at
    once, and distribution then refused the index), and ``1.0.0`` states 585 bytes for a 584-byte
    config that the good tags share (it used to fail them, or pass, by timing)."""
    pushed = seed(plain_registry, load_layout(REALWORLD / MULTI), unique_repo)
    assert set(pushed.good) == {"latest", "3.18.3", "3", "3.18", "3.17.5", "3.16.7"}
    assert set(pushed.broken) == {"1.0.0"}
    bad = pushed.broken["1.0.0"]
    dst_registry = plain_registry if where == "same-registry" else target
    src = f"{plain_registry.host}/{pushed.repository}"
    reasons: set[str] = set()
    for run in range(RUNS):
        dst_repo = f"{unique_repo}/run-{run}"
        code, report = copy_all_tags(src, f"{dst_registry.host}/{dst_repo}")
        copied, failed = outcome(report)
        assert (run, copied) == (run, {t: str(d) for t, d in pushed.good.items()}), report["errors"]
        assert list(failed) == ["1.0.0"], report
        assert str(bad.bad_blob) in failed["1.0.0"] and "585" in failed["1.0.0"], failed
        assert "584" in failed["1.0.0"], failed
        reasons.add(failed["1.0.0"])
        assert code == 1
        assert sorted(list_tags_sync(dst_registry, dst_repo)) == sorted(pushed.good)
        for tag in ("latest", "3.18"):
            got = fetch_image_sync(dst_registry, dst_repo, tag)
            want = fetch_image_sync(plain_registry, pushed.repository, tag)
            assert got.top.data == want.top.data and got.blobs == want.blobs
    assert len(reasons) == 1, reasons  # the same words every run, whichever image ran first


async def test_a_manifest_is_put_once_per_repository_and_never_beside_an_index_listing_it(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str
) -> None:
    """Issue 8 item 2, as the requests show it: ``3``/``3.18`` name a manifest that the
    ``latest``/``3.18.3`` index lists.  Copied together in one session, 10 times into fresh
    repositories: each manifest is PUT by digest at most once, each tag once, and no PUT of a
    manifest overlaps a PUT of an index listing it (the overlap distribution refused)."""
    pushed = await push_layout(plain_registry, load_layout(REALWORLD / MULTI), f"{unique_repo}/src")
    tags = sorted(pushed.good)
    for run in range(RUNS):
        dst_repo = f"{unique_repo}/run-{run}"
        async with RegistryClient(retry=RetryPolicy.no_wait(2)) as client:
            puts: list[tuple[str, RawManifest, int, int]] = []
            clock = itertools.count()
            original = client.put_manifest

            async def recording(
                ref_: Reference,
                manifest: RawManifest,
                _original: Any = original,
                puts: list[tuple[str, RawManifest, int, int]] = puts,
                clock: Iterator[int] = clock,
            ) -> Digest:
                start = next(clock)
                try:
                    return await _original(ref_, manifest)  # type: ignore[no-any-return]
                finally:
                    puts.append((ref_.tag or str(ref_.digest), manifest, start, next(clock)))

            client.put_manifest = recording  # type: ignore[method-assign]
            session = CopySession(client, client)
            results = await asyncio.gather(
                *(
                    session.copy(
                        Reference.parse(f"{plain_registry.host}/{pushed.repository}:{tag}"),
                        Reference.parse(f"{target.host}/{dst_repo}:{tag}"),
                    )
                    for tag in tags
                ),
                return_exceptions=True,
            )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [], (run, failures)
        assert {str(r.target).rsplit(":", 1)[1]: r.digest for r in results if isinstance(r, CopyResult)} == pushed.good
        by_ref = collections.Counter(name for name, _, _, _ in puts)
        assert max(by_ref.values()) == 1, (run, by_ref)
        for name, manifest, start, end in puts:
            children = {d.digest for d in manifest.children()}
            for other_name, other, o_start, o_end in puts:
                overlap = o_start < end and start < o_end and other_name != name
                if overlap:
                    assert other.digest != manifest.digest, (run, name, other_name)
                    assert other.digest not in children, (run, name, other_name)
                if other.digest in children and other_name.startswith("sha256:"):
                    assert o_end < start, (run, "index PUT before its child's PUT ended", name)


# -- every layout, copy --all-tags and sync, run after run ------------------------------------------

LAYOUT_RUNS = 3


def seed_all(registry: RunningRegistry, prefix: str) -> list[PushedLayout]:
    layouts = load_layouts()
    assert len(layouts) >= 10, [layout.name for layout in layouts]  # the data is all there
    pushed = [seed(registry, layout, prefix) for layout in layouts]
    for p in pushed:  # what the registry refused is exactly what the files say is absent
        absent = {str(i.digest) for i in p.layout.images if i.status == "absent"}
        assert absent <= set(p.refused), (p.layout.name, p.refused)
        assert sorted(list_tags_sync(registry, p.repository)) == sorted(p.tags)
    return pushed


def assert_same(src: RunningRegistry, src_repo: str, dst: RunningRegistry, dst_repo: str, ref: str) -> None:
    got = fetch_image_sync(dst, dst_repo, ref)
    want = fetch_image_sync(src, src_repo, ref)
    assert got.top.data == want.top.data, (dst_repo, ref)
    assert {m.digest: m.data for m in got.manifests} == {m.digest: m.data for m in want.manifests}
    assert got.blobs == want.blobs, (dst_repo, ref)


def test_every_real_layout_copies_exactly_and_broken_images_fail_alone_every_run(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str
) -> None:
    """``copy --all-tags`` of every layout, three times into fresh repositories: identical digests
    and bytes for every good image, no failure among them, and each broken image failing with
    the same reason (the blob and both sizes) on every run."""
    pushed = [p for p in seed_all(plain_registry, unique_repo) if p.tags]
    assert sum(len(p.good) for p in pushed) >= 12 and sum(len(p.broken) for p in pushed) >= 3
    seen_reasons: dict[tuple[str, str], set[str]] = {}
    for run in range(LAYOUT_RUNS):
        for p in pushed:
            dst_repo = f"{unique_repo}/run-{run}/{p.layout.repository}"
            code, report = copy_all_tags(f"{plain_registry.host}/{p.repository}", f"{target.host}/{dst_repo}")
            copied, failed = outcome(report)
            name = p.layout.name
            assert copied == {t: str(d) for t, d in p.good.items()}, (run, name, report["errors"])
            assert set(failed) == set(p.broken), (run, name, failed)
            for tag, reason in failed.items():
                bad = p.broken[tag]
                assert str(bad.bad_blob) in reason and "digest mismatch" in reason, reason
                [(declared, real)] = re.findall(r"says (\d+) bytes, it is (\d+)", bad.reason)
                assert declared in reason and real in reason, reason
                seen_reasons.setdefault((name, tag), set()).add(reason.replace(unique_repo, "*").replace(f"run-{run}", "*"))
            assert code == (1 if p.broken else 0), (name, report)
            assert report["skipped"] == [], report
            if p.good:
                assert sorted(list_tags_sync(target, dst_repo)) == sorted(p.good), name
            for tag in p.good:
                assert_same(plain_registry, p.repository, target, dst_repo, tag)
    # deterministic: each broken image failed the same way every run
    assert all(len(reasons) == 1 for reasons in seen_reasons.values()), seen_reasons


def test_untagged_real_images_copy_by_digest(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str
) -> None:
    """Layouts whose index.json names no tag (ggcr's one-image and media-type layouts): the
    images are in the repository by digest, and a copy by digest keeps it."""
    for p in seed_all(plain_registry, unique_repo):
        for image in p.layout.images:
            if image.tag is not None or image.status != "good":
                continue
            dst = f"{target.host}/{unique_repo}/digest/{p.layout.repository}"
            out = runner.invoke(app, ["copy", "--json", f"{plain_registry.host}/{p.repository}@{image.digest}", dst])
            assert out.exit_code == 0, out.output
            assert json.loads(out.stdout)["results"][0]["digest"] == str(image.digest)
            assert_same(plain_registry, p.repository, target, f"{unique_repo}/digest/{p.layout.repository}", str(image.digest))


def write_policy(tmp: Path, target: RunningRegistry, namespace: str, source: RunningRegistry,
                 pushed: list[PushedLayout]) -> Path:
    entries = "".join(
        f"  - source: {source.host}/{p.repository}\n"
        f"    target: {p.layout.repository.replace('/', '-')}\n"
        for p in pushed
    )
    path = tmp / "imagevet.yaml"
    path.write_text(
        "version: 1\n"
        f"target:\n  registry: {target.host}\n  namespace: {namespace}\n"
        "defaults:\n"
        "  mode: follow\n"
        "  tags:\n    allow: ['.*']\n    prereleases: true\n"
        "  approval:\n    approved_by: security@acme.example\n    expires: 2099-12-31\n"
        "images:\n" + entries
    )
    return path


def test_sync_of_every_real_layout_is_exact_and_broken_images_fail_alone_every_run(
    plain_registry: RunningRegistry, target: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    """``sync`` with one follow entry per layout repository and every tag, three times into fresh
    namespaces: the good images arrive with their digests, the broken ones fail with the reason,
    the same ones every run."""
    pushed = [p for p in seed_all(plain_registry, unique_repo) if p.tags]
    for run in range(LAYOUT_RUNS):
        workdir = tmp_path / f"run-{run}"
        workdir.mkdir()
        namespace = f"{unique_repo.replace('/', '-')}-sync-{run}"
        policy = write_policy(workdir, target, namespace, plain_registry, pushed)
        out = runner.invoke(app, ["sync", "--json", "--policy", str(policy)])
        try:
            report: dict[str, Any] = json.loads(out.stdout)
        except ValueError:
            raise AssertionError(f"exit {out.exit_code}: {out.output}") from None
        failed = {a["target"]: a["message"] for a in report["actions"] if a["status"] == "failed"}
        want_failed = {}
        for p in pushed:
            repo = f"{namespace}/{p.layout.repository.replace('/', '-')}"
            for tag, bad in p.broken.items():
                want_failed[f"{target.host}/{repo}:{tag}"] = bad
            if p.good:
                assert sorted(list_tags_sync(target, repo)) == sorted(p.good), (run, repo, failed)
            for tag, digest in p.good.items():
                assert_same(plain_registry, p.repository, target, repo, tag)
                assert fetch_image_sync(target, repo, tag).top.digest == digest
        assert set(failed) == set(want_failed), (run, failed)
        for key, message in failed.items():
            assert str(want_failed[key].bad_blob) in message, message
        assert report["problems"] == [], report["problems"]
        assert out.exit_code == 1
