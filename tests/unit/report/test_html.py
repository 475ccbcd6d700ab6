"""The static site: escaped, deterministic, written only inside its directory."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from imagevet.report import build_report
from imagevet.report.html import MANIFEST, render_site, write_site
from tests.unit.report.conftest import HOSTILE_POLICY, NOW, Setup, make_setup


def test_index_and_pages_show_what_a_developer_needs(setup: Setup) -> None:
    files = render_site(build_report(setup.policy, setup.lock, setup.state, now=NOW))
    assert sorted(files) == ["index.html", "mailhog.html", "redis.html"]
    index = files["index.html"].decode()
    assert 'href="redis.html"' in index and 'href="mailhog.html"' in index
    assert "<pre>docker pull registry.example.com/acme/redis:7.10.0-rc1</pre>" in index
    assert "<pre>docker pull registry.example.com/acme/redis@sha256:" in index
    assert "approval expires in 10 days" in index and "approval expired" in index
    assert "<script" not in index and "<meta name=\"viewport\"" in index
    redis = files["redis.html"].decode()
    for text in ("SEC-101", "cache for the web tier", "2026-12-10", "expires soon", "Held updates",
                 "upstream moved the tag (pinned)", "application/vnd.oci.image.index.v1+json",
                 "linux/amd64, linux/arm64", "1 referrer upstream", "docker pull registry.example.com/acme/redis:latest"):
        assert text in redis, text
    mailhog = files["mailhog.html"].decode()
    assert "cannot connect to registry.example.com" in mailhog and "not known yet" in mailhog
    assert "linux/amd64 only" in mailhog


def test_hostile_values_are_escaped_and_bounded(tmp_path: Path) -> None:
    s = make_setup(tmp_path, HOSTILE_POLICY)
    files = render_site(build_report(s.policy, s.lock, s.state, now=NOW))
    (page,) = [n for n in files if n != "index.html"]
    assert page == "script-alert-1-script-x-etc-passwd-31mred-next.html"
    for name, data in files.items():
        text = data.decode()
        assert "<script" not in text and "<img" not in text and "<b>" not in text, name
        assert "\x1b" not in text and "\u202e" not in text, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt; | `x` ../../etc/passwd \\x1b[31mred" in text, name
        assert len(data) < 30_000, name  # the megabyte reason is cut
    body = files[page].decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in body and "\\u202egnp" in body
    assert "mallory\\x1b[2J@x" in body and "SEC|1`&lt;b&gt;" in body
    assert "AAAA…" in body


def test_same_inputs_same_bytes_and_the_time_comes_from_the_clock(tmp_path: Path) -> None:
    one, two = make_setup(tmp_path / "a"), make_setup(tmp_path / "b")
    first = render_site(build_report(one.policy, one.lock, one.state, now=NOW))
    assert first == render_site(build_report(two.policy, two.lock, two.state, now=NOW))
    assert b"2026-11-30 12:00 UTC" in first["index.html"]
    later = render_site(build_report(one.policy, one.lock, one.state, now=NOW + timedelta(hours=1)))
    assert later != first and b"2026-11-30 13:00 UTC" in later["index.html"]
    out = tmp_path / "site"
    write_site(out, first)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_site(out, first)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_writes_only_inside_the_directory_and_never_through_a_link(tmp_path: Path, setup: Setup) -> None:
    files = render_site(build_report(setup.policy, setup.lock, setup.state, now=NOW))
    outside = tmp_path / "outside.html"
    outside.write_text("keep me")
    site = tmp_path / "deep" / "site"
    site.mkdir(parents=True)
    (site / "index.html").symlink_to(outside)
    (site / "redis.html").symlink_to(outside)
    around = sorted(p.name for p in tmp_path.iterdir())
    written = write_site(site, files)
    assert [p.name for p in written] == ["mailhog.html", "redis.html", "index.html"]
    assert outside.read_text() == "keep me"
    assert not (site / "index.html").is_symlink() and (site / "index.html").read_bytes() == files["index.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == around
    assert sorted(p.name for p in site.iterdir()) == sorted([*files, MANIFEST])
    assert not [p for p in site.iterdir() if p.name.endswith(".tmp")]


def test_pages_of_images_gone_are_removed_but_nothing_else(tmp_path: Path, setup: Setup) -> None:
    site = tmp_path / "site"
    files = render_site(build_report(setup.policy, setup.lock, setup.state, now=NOW))
    write_site(site, files)
    (site / "notes.html").write_text("the user's own")
    write_site(site, {k: v for k, v in files.items() if k != "mailhog.html"})
    assert sorted(p.name for p in site.iterdir()) == [MANIFEST, "index.html", "notes.html", "redis.html"]
    # a planted list naming files outside, hidden files or the user's own: nothing of those goes
    (tmp_path / "victim.html").write_text("x")
    (site / MANIFEST).write_text(json.dumps({"version": 1, "pages": ["../victim.html", ".x.html", "notes.html"]}))
    write_site(site, files)
    assert (tmp_path / "victim.html").exists() and not (site / "notes.html").exists()
    (site / MANIFEST).write_text("{damaged")
    write_site(site, files)
    assert (site / "redis.html").exists()


def test_refuses_a_file_name_that_is_not_a_page(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a page name"):
        write_site(tmp_path / "site", {"../x.html": b"", "index.html": b""})
    assert not (tmp_path / "site").exists() and not (tmp_path / "x.html").exists()
    assert os.listdir(tmp_path) == []


def test_evidence_recorded_for_a_digest_shows_escaped_in_both_forms(setup: Setup) -> None:
    from imagevet.digest import Digest
    from imagevet.report import Evidence, render_markdown
    from tests.unit.report.conftest import digest

    def evidence(d: Digest) -> list[Evidence]:
        if d != digest("redis-7.4.1"):
            return []
        return [Evidence("signature", "verified: key <acme>", str(digest("sig"))),
                Evidence("sbom", "spdx | 120 packages")]

    report = build_report(setup.policy, setup.lock, setup.state, now=NOW, evidence=evidence)
    assert [len(t.evidence) for t in report.images[0].tags] == [0, 2, 0, 2]  # 7.4.1 and latest
    page = render_site(report)["redis.html"].decode()
    assert f"signature: verified: key &lt;acme&gt; <code>{digest('sig')}</code>" in page
    assert "sbom: spdx | 120 packages" in page
    assert "<br>signature: verified: key &lt;acme&gt;<br>sbom: spdx \\| 120 packages" in render_markdown(report)


def test_an_approval_expiring_today_says_today(tmp_path: Path) -> None:
    from imagevet.report import render_markdown

    s = make_setup(tmp_path)
    report = build_report(s.policy, s.lock, None, now=NOW.replace(day=10, month=12))
    assert report.images[0].approval.days_left == 0 and report.images[0].approval.status == "expiring"
    assert "approval expires today" in render_site(report)["index.html"].decode()
    assert "**expires 2026-12-10** (today)" in render_markdown(report)


def test_a_tag_moved_by_imagevet_approve_shows_who_why_and_when(tmp_path: Path) -> None:
    from dataclasses import replace as copy_with
    from datetime import UTC, datetime

    from imagevet.lock import Lock, TagApproval
    from imagevet.report import render_markdown
    from tests.unit.report.conftest import small_lock

    lock = small_lock()
    redis = lock.entries[0]
    moved = copy_with(redis.tags["7.4.0"], approval=TagApproval(
        "carol <carol@acme.example>", "rebuilt | CVE-2026-1 fixed\nsee `SEC-9`", datetime(2026, 11, 29, 10, 30, tzinfo=UTC)))
    lock = Lock((copy_with(redis, tags={**redis.tags, "7.4.0": moved}), lock.entries[1]))
    s = make_setup(tmp_path, lock=lock)
    report = build_report(s.policy, s.lock, None, now=NOW)
    assert [t.approved is not None for t in report.images[0].tags] == [False, False, True, False]
    page = render_site(report)["redis.html"].decode()
    assert ("<dt>Update approved</dt><dd>by carol &lt;carol@acme.example&gt; on 2026-11-29 10:30 UTC: "
            "rebuilt | CVE-2026-1 fixed\nsee `SEC-9`</dd>") in page
    assert ("2026-11-01<br>approved by carol &lt;carol@acme.example&gt; on 2026-11-29: "
            "rebuilt \\| CVE-2026-1 fixed see \\`SEC-9\\` |") in render_markdown(report)
