"""``imagevet report`` as a user runs it: exit codes, files, what it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imagevet.lock import render_lock
from tests.unit.report.conftest import POLICY, SUMMARY, make_setup, small_lock

ROOT = Path(__file__).resolve().parents[3]


def imagevet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "imagevet.cli", "report", *args], capture_output=True,
                          text=True, timeout=120, env={**environ, **(env or {})})


def test_a_damaged_lock_entry_shows_on_its_page_and_the_report_exits_0(tmp_path: Path) -> None:
    s = make_setup(tmp_path)
    head, _, tail = render_lock(small_lock()).rpartition('"linux/arm64"\n')  # mailhog's record
    (tmp_path / "imagevet.lock").write_text(head + '"not a platform"\n' + tail)
    s.state.write_run_summary(SUMMARY)
    done = imagevet("-p", str(tmp_path / "imagevet.yaml"), "--html", str(tmp_path / "site"),
                    "--markdown", str(tmp_path / "comment.md"))
    assert done.returncode == 0, done.stderr
    assert f"wrote {tmp_path / 'site' / 'index.html'} and 2 image pages" in done.stdout
    assert "warning: mailhog: lock records damaged" in done.stderr
    page = (tmp_path / "site" / "mailhog.html").read_text()
    assert "Lock damaged" in page and "imagevet.lock:" in page and "not a platform" in page
    redis = (tmp_path / "site" / "redis.html").read_text()
    assert "docker pull registry.example.com/acme/redis:7.4.1" in redis
    comment = (tmp_path / "comment.md").read_text()
    assert "**The lock records of this image are damaged**" in comment and "### redis" in comment


def test_markdown_to_stdout_and_source_date_epoch_make_the_same_bytes(tmp_path: Path) -> None:
    (tmp_path / "imagevet.yaml").write_text(POLICY)
    (tmp_path / "imagevet.lock").write_text(render_lock(small_lock()))
    env = {"SOURCE_DATE_EPOCH": "1796040000"}  # 2026-11-30 12:00 UTC
    one = imagevet("-p", str(tmp_path / "imagevet.yaml"), "--markdown", "-", "--html", str(tmp_path / "a"), env=env)
    two = imagevet("-p", str(tmp_path / "imagevet.yaml"), "--markdown", "-", "--html", str(tmp_path / "b"), env=env)
    assert one.returncode == two.returncode == 0, one.stderr
    assert one.stdout == two.stdout and one.stdout.startswith("## imagevet catalog\n")
    assert "Generated 2026-11-30 12:00 UTC." in one.stdout and "wrote" in one.stderr
    for name in ("index.html", "redis.html", "mailhog.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert not (tmp_path / ".imagevet").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    (tmp_path / "imagevet.yaml").write_text(POLICY)
    nothing = imagevet("-p", str(tmp_path / "imagevet.yaml"))
    assert nothing.returncode == 2 and "nothing to write" in nothing.stderr
    bad = imagevet("-p", str(tmp_path / "imagevet.yaml"), "--markdown", "-", env={"SOURCE_DATE_EPOCH": "soon"})
    assert bad.returncode == 2 and "SOURCE_DATE_EPOCH" in bad.stderr
    missing = imagevet("-p", str(tmp_path / "nope.yaml"), "--markdown", "-")
    assert missing.returncode == 2


def test_the_state_directory_named_by_imagevet_state_dir_is_the_one_read(tmp_path: Path) -> None:
    from imagevet.engine.state import FileStateStore, HeldUpdate
    from tests.unit.report.conftest import NOW, digest

    (tmp_path / "policy").mkdir()
    make_setup(tmp_path / "policy")
    (tmp_path / "policy" / "imagevet.lock").write_text(render_lock(small_lock()))
    state = FileStateStore(tmp_path / "volume" / "state")  # a deployment's own volume
    state.write_run_summary(SUMMARY)
    state.hold(HeldUpdate("redis", "7.4.0", str(digest("redis-7.4.0-new")), "upstream moved", NOW))
    done = imagevet("-p", str(tmp_path / "policy" / "imagevet.yaml"), "--markdown", "-",
                    env={"IMAGEVET_STATE_DIR": str(tmp_path / "volume" / "state")})
    assert done.returncode == 0, done.stderr
    assert "Last sync 2026-11-30 09:00 UTC: **failed**" in done.stdout
    assert "upstream moved" in done.stdout and "**approval expiring**, 1 held" in done.stdout


def test_the_evidence_the_lock_names_shows_on_the_page_and_in_the_comment(tmp_path: Path) -> None:
    """What ``imagevet lock`` kept beside the lock (items found upstream, the scan) is on the
    image's page; an evidence file that went missing says so and the report still exits 0."""
    from dataclasses import replace

    from imagevet.digest import Digest
    from imagevet.engine.evidence import evidence_dir, write_evidence
    from imagevet.evidence import Evidence, EvidenceItem
    from imagevet.lock import Lock, Verified
    from imagevet.scanreport import ScanReport

    (tmp_path / "imagevet.yaml").write_text(POLICY)
    lock = small_lock()
    redis, mailhog = lock.entries
    sbom = Digest.of(b"sbom manifest")
    kept = Evidence(
        redis.tags["7.4.1"].digest,
        (EvidenceItem("sbom", "https://spdx.dev/Document", sbom, "referrer"),),
        scan=ScanReport("trivy", {"critical": 0, "high": 2}, "0.58.0"),
    )
    named = write_evidence(evidence_dir(tmp_path / "imagevet.lock"), kept.to_bytes())
    gone = Digest.of(b"an evidence file nobody kept")
    signature = Digest.of(b"signature manifest")
    redis = replace(redis, tags={**redis.tags, "7.4.1": replace(
        redis.tags["7.4.1"], evidence=named,
        verified=Verified(signature, identity="release@example.org", issuer="https://accounts.example.org"),
    )})
    mailhog = replace(mailhog, tags={"v1.0.1": replace(mailhog.tags["v1.0.1"], evidence=gone)})
    (tmp_path / "imagevet.lock").write_text(render_lock(Lock((redis, mailhog))))

    done = imagevet("-p", str(tmp_path / "imagevet.yaml"), "--html", str(tmp_path / "site"), "--markdown", "-")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "site" / "redis.html").read_text()
    assert "https://spdx.dev/Document (found by referrer)" in page and str(sbom) in page
    assert "trivy 0.58.0: 2 high" in page
    assert "verified: cosign signature by keyless: release@example.org from https://accounts.example.org" in page
    assert str(signature) in page
    assert "https://spdx.dev/Document (found by referrer)" in done.stdout
    missing = (tmp_path / "site" / "mailhog.html").read_text()
    assert "evidence file unreadable" in missing and "missing (the lock names it)" in missing
