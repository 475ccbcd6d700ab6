"""The catalog's model: what each image shows, from the policy, the lock and the state store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from imagevet.engine.state import FileStateStore
from imagevet.lock import Lock, LockedImage, LockEntry, parse_lock, render_lock
from imagevet.manifest import Platform, RawManifest, subset_index
from imagevet.reference import Reference
from imagevet.report import build_report, newest_first, page_names
from tests.unit.report.conftest import INDEX, NOW, WHEN, Setup, digest, make_setup, small_lock


def test_every_image_with_its_tags_newest_first_approval_sync_and_held_updates(setup: Setup) -> None:
    report = build_report(setup.policy, setup.lock, setup.state, now=NOW)
    assert report.policy_name == "imagevet.yaml" and report.target == "registry.example.com/acme"
    assert report.last_run is not None and report.last_run.ok is False
    assert report.last_run.at == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert report.problems == ()
    redis, mailhog = report.images
    assert (redis.name, redis.page, redis.upstream, redis.mirror, redis.mode) == (
        "redis", "redis.html", "docker.io/bitnami/redis", "registry.example.com/acme/redis", "pinned")
    assert [t.tag for t in redis.tags] == ["7.10.0-rc1", "7.4.1", "7.4.0", "latest"]
    newest = redis.tags[1]
    assert newest.digest == digest("redis-7.4.1") == newest.mirror_digest
    assert newest.platforms == ("linux/amd64", "linux/arm64")
    assert newest.referrers == (digest("redis-7.4.1-ref0"),)
    assert redis.pull_ref(newest, by_digest=False) == "registry.example.com/acme/redis:7.4.1"
    assert redis.pull_ref(newest, by_digest=True) == f"registry.example.com/acme/redis@{digest('redis-7.4.1')}"
    assert (redis.approval.status, redis.approval.days_left, redis.approval.ticket) == ("expiring", 10, "SEC-101")
    assert [(h.tag, h.digest, h.since) for h in redis.held] == [
        ("7.4.0", str(digest("redis-7.4.0-new")), datetime(2026, 11, 29, 8, 0, tzinfo=UTC))]
    assert redis.last_sync.result == "held" and dict(redis.last_sync.counts) == {"noop": 3, "hold": 1}
    # mailhog: an expired approval, a failed copy, a platform subset whose index is not cached
    assert (mailhog.approval.status, mailhog.approval.days_left) == ("expired", -29)
    assert mailhog.last_sync.result == "failed"
    assert mailhog.last_sync.messages == ("v1.0.1: cannot connect to registry.example.com",)
    assert mailhog.platforms == ("linux/amd64",)
    assert mailhog.tags[0].mirror_digest is None
    assert mailhog.pull_ref(mailhog.tags[0], by_digest=True) is None


def test_a_hold_of_the_last_run_shows_when_the_store_has_none(tmp_path: Path) -> None:
    s = make_setup(tmp_path)
    from tests.unit.report.conftest import SUMMARY

    s.state.write_run_summary(SUMMARY)
    redis = build_report(s.policy, s.lock, s.state, now=NOW).images[0]
    assert [(h.tag, h.digest, h.reason, h.since) for h in redis.held] == [
        ("7.4.0", str(digest("redis-7.4.0-new")), "upstream moved the tag (pinned)", None)]


def test_no_state_yet_means_not_synced_and_nothing_held(tmp_path: Path) -> None:
    s = make_setup(tmp_path)
    report = build_report(s.policy, s.lock, s.state, now=NOW)
    assert report.last_run is None and report.problems == ()
    assert all(i.last_sync.result == "not-synced" and not i.held for i in report.images)
    assert not (tmp_path / ".imagevet").exists()  # a report never creates the state directory


def test_the_mirror_digest_of_a_platform_subset_comes_from_the_cached_source_index(tmp_path: Path) -> None:
    doc = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": str(digest(p)), "size": 10,
         "platform": {"os": "linux", "architecture": p}} for p in ("amd64", "arm64")]}
    raw = RawManifest.from_bytes(json.dumps(doc).encode(), INDEX)
    lock = small_lock()
    mailhog = lock.entries[1]
    assert mailhog.source.name == "docker.io/mailhog/mailhog"
    image = LockedImage(raw.digest, INDEX, WHEN, platforms=("linux/amd64", "linux/arm64"))
    lock = lock.with_entry(LockEntry(mailhog.source, mailhog.target, tags={"v1.0.1": image}))
    s = make_setup(tmp_path, lock=lock)
    assert s.state.manifests.put(raw)
    tag = build_report(s.policy, s.lock, s.state, now=NOW).images[1].tags[0]
    expected = subset_index(raw, [Platform.parse("linux/amd64")]).digest
    assert tag.digest == raw.digest and tag.mirror_digest == expected != raw.digest


def test_a_damaged_lock_entry_is_that_image_s_damage_only(tmp_path: Path) -> None:
    head, _, tail = render_lock(small_lock()).rpartition('"linux/arm64"\n')  # mailhog's platforms
    text = head + '"Linux/ARM64!"\n' + tail
    lock = parse_lock(text, path=str(tmp_path / "imagevet.lock"))
    s = make_setup(tmp_path, lock=lock)
    mailhog, redis = sorted(build_report(s.policy, s.lock, s.state, now=NOW).images, key=lambda i: i.name)
    assert mailhog.damaged and "imagevet.lock:" in mailhog.damaged[0] and "Linux/ARM64!" in mailhog.damaged[0]
    assert mailhog.tags == () and mailhog.locked
    assert not redis.damaged and len(redis.tags) == 4


def test_hostile_run_summary_and_held_file_never_stop_the_report(tmp_path: Path) -> None:
    s = make_setup(tmp_path)
    s.state.write_run_summary({"now": 5, "ok": "yes", "counts": {"x": "1", "noop": True, "copy": 2},
                               "actions": [None, 1, {"entry": ["a"]}, {"entry": "redis", "kind": {}, "status": 3},
                                           {"entry": "redis", "kind": "hold", "status": "reported", "tag": 7}],
                               "problems": "nope"})
    (tmp_path / ".imagevet" / "held.json").write_text("{not json")
    report = build_report(s.policy, s.lock, s.state, now=NOW)
    assert report.last_run is not None and report.last_run.at is None and report.last_run.ok is False
    assert report.last_run.counts == (("copy", 2),)
    assert len(report.problems) == 1 and "held" in report.problems[0] and "not JSON" in report.problems[0]
    assert report.images[0].last_sync.counts == (("?", 1), ("hold", 1)) and report.images[0].held == ()


def test_tags_newest_first_as_the_policy_orders_versions() -> None:
    tags = ["latest", "1.9", "1.10.0", "1.10.0-rc2", "1.10.0-rc10", "1.10.0-alpine", "v2", "bookworm", "1.9.1"]
    assert newest_first(tags) == [
        "v2", "1.10.0", "1.10.0-alpine", "1.10.0-rc10", "1.10.0-rc2", "1.9.1", "1.9", "bookworm", "latest"]


def test_page_names_are_safe_file_names_without_collisions() -> None:
    names = ["redis", "Redis", "../../etc/passwd", "index", "", "<script>", "a/b", "a-b", "x" * 300, ".hidden"]
    pages = page_names(names)
    assert pages == ["redis.html", "redis-2.html", "etc-passwd.html", "index-2.html", "image.html",
                     "script.html", "a-b.html", "a-b-2.html", "x" * 60 + ".html", "hidden.html"]
    assert len(set(pages)) == len(pages)
    assert all("/" not in p and not p.startswith(".") for p in pages)


def test_an_explicit_digest_is_listed_after_the_tags_and_pulled_by_digest(tmp_path: Path) -> None:
    d = digest("pinned-digest")
    entry = LockEntry(Reference.parse("docker.io/bitnami/redis"), Reference.parse("registry.example.com/acme/redis"),
                      tags={"7.4.1": LockedImage(digest("a"), INDEX, WHEN)},
                      digests={d: LockedImage(d, INDEX, WHEN)})
    s = make_setup(tmp_path, lock=Lock((entry,)))
    redis = build_report(s.policy, s.lock, None, now=NOW).images[0]
    assert [t.tag for t in redis.tags] == ["7.4.1", None]
    assert redis.pull_ref(redis.tags[1], by_digest=False) is None
    assert redis.pull_ref(redis.tags[1], by_digest=True) == f"registry.example.com/acme/redis@{d}"
    assert build_report(s.policy, Lock(), None, now=NOW).images[0].locked is False


def test_a_held_update_of_an_entry_no_longer_in_the_policy_is_a_problem(tmp_path: Path) -> None:
    from imagevet.engine.state import HeldUpdate

    s = make_setup(tmp_path)
    FileStateStore(tmp_path / ".imagevet").hold(HeldUpdate("gone", "1", "sha256:" + "a" * 64, "moved", NOW))
    report = build_report(s.policy, s.lock, s.state, now=NOW)
    assert report.problems == ("a held update of 'gone', which the policy no longer lists",)


def test_a_layout_target_shows_oci_references_not_docker_pull(tmp_path: Path) -> None:
    text = POLICY_LAYOUT
    s = make_setup(tmp_path, text, lock=Lock())
    entry = s.policy.entries[0]
    d = digest("layout")
    lock = Lock((LockEntry(entry.source, entry.target, tags={"1.0": LockedImage(d, INDEX, WHEN)}),))
    image = build_report(s.policy, lock, None, now=NOW).images[0]
    assert image.pullable is False and image.mirror.startswith("oci:") and image.mirror.endswith("/acme/web")
    assert image.pull_ref(image.tags[0], by_digest=False) == f"{image.mirror}:1.0"
    from imagevet.report import render_markdown
    from imagevet.report.html import render_site

    report = build_report(s.policy, lock, None, now=NOW)
    assert "docker pull" not in render_markdown(report)
    page = render_site(report)["web.html"].decode()
    assert f"<pre>{image.mirror}@{d}</pre>" in page and "docker pull" not in page


POLICY_LAYOUT = """\
version: 1
target:
  layout: mirror
  namespace: acme
images:
  - source: docker.io/library/web
    name: web
    tags:
      tags: ["1.0"]
    approval:
      approved_by: a@example.com
"""
