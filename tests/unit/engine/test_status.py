"""``engine.status``: what needs a person, from the policy, the lock, held updates and the last
run summary (no registry); and ``imagevet status`` on such state, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from imagevet.cli.status import parse_days
from imagevet.digest import Digest
from imagevet.engine.state import FileStateStore, HeldUpdate
from imagevet.engine.status import status_report
from imagevet.lock import Lock, LockedImage, LockEntry, render_lock
from imagevet.mediatype import OCI_MANIFEST
from imagevet.policy import Policy, load_policy

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
SINCE = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
OLD, NEW, NEWER = Digest.of(b"old"), Digest.of(b"new"), Digest.of(b"newer")


def policy_file(tmp: Path) -> Path:
    path = tmp / "imagevet.yaml"
    path.write_text(
        "version: 1\ntarget:\n  registry: registry.example\n  namespace: acme\n"
        "defaults:\n  approval:\n    approved_by: security@acme.example\n    expires: 2099-12-31\n"
        "images:\n"
        "  - source: up.example/lib/app\n    name: app\n    tags:\n      tags: ['1', '2', '3']\n"
        "  - source: up.example/lib/soon\n    name: soon\n    tags:\n      tags: ['1']\n"
        "    approval:\n      approved_by: bob\n      ticket: SEC-9\n      expires: 2026-12-10\n"
        "  - source: up.example/lib/old\n    name: old\n    tags:\n      tags: ['1']\n"
        "    approval:\n      approved_by: carol\n      expires: 2026-11-01\n"
    )
    return path


def load(tmp: Path) -> Policy:
    return load_policy(policy_file(tmp), env={}, today=date(2026, 10, 1))


def lock_for(policy: Policy) -> Lock:
    app = policy.entry("app")
    return Lock((LockEntry(app.source, app.target, {
        "1": LockedImage(OLD, OCI_MANIFEST, SINCE), "2": LockedImage(NEWER, OCI_MANIFEST, SINCE),
    }),))


HELD = [
    HeldUpdate("app", "1", str(NEW), "upstream moved", SINCE),
    HeldUpdate("app", "2", str(NEWER), "upstream moved", SINCE),  # approved: the lock has it
    HeldUpdate("app", "3", str(NEW), "new upstream tag", SINCE),
    HeldUpdate("gone", "1", str(NEW), "upstream moved", SINCE),  # not in the policy any more
]


def test_status_sorts_held_new_and_approved_and_counts_what_needs_a_person(tmp_path: Path) -> None:
    policy = load(tmp_path)
    report = status_report(policy, lock_for(policy), HELD, None, now=NOW, within_days=14)
    assert [(h.tag, h.locked, h.upstream) for h in report.held] == [("1", str(OLD), str(NEW))]
    assert [(h.tag, h.locked) for h in report.new_tags] == [("3", None)]
    assert [h.tag for h in report.approved] == ["2"]
    assert [(a.entry, a.days_left, a.expired) for a in report.approvals] == [("old", -29, True), ("soon", 10, False)]
    assert report.failing == () and report.last_run is None and report.pull_budget is None
    assert report.attention == 4
    assert [a.entry for a in status_report(policy, Lock(), [], None, now=NOW, within_days=9).approvals] == ["old"]


def test_the_last_run_gives_failures_and_the_pull_budget(tmp_path: Path) -> None:
    policy = load(tmp_path)
    summary = {
        "now": "2026-11-30T11:00:00Z", "ok": False, "counts": {"copy": 1, "failed": 1},
        "problems": [{"entry": "soon", "source": "up.example/lib/soon", "message": "HTTP 503"}],
        "actions": [
            {"status": "failed", "entry": "app", "tag": "1", "source": "up.example/lib/app:1", "message": "boom"},
            {"status": "done", "entry": "app", "tag": "2", "message": ""},
        ],
        "pull_budget": {"remaining": {"docker.io": 0, "ghcr.io": 50}, "reserve": 0, "deferred": 2},
    }
    report = status_report(policy, Lock(), [], summary, now=NOW, within_days=0)
    assert [(f.entry, f.tag, f.message) for f in report.failing] == [("soon", None, "HTTP 503"), ("app", "1", "boom")]
    assert report.exhausted == ["docker.io"] and report.attention == 3 + 1  # 2 failing, 1 expired, docker.io
    doc = report.to_json()
    assert doc["pull_budget"] == {"remaining": {"docker.io": 0, "ghcr.io": 50}, "reserve": 0, "deferred": 2,
                                  "exhausted": ["docker.io"]}
    assert doc["last_run"] == {"now": "2026-11-30T11:00:00Z", "ok": False, "counts": {"copy": 1, "failed": 1}}


@pytest.mark.parametrize("summary", [
    {"problems": "x", "actions": 7, "pull_budget": [1], "counts": None, "ok": "yes"},
    {"problems": [1, None, {"entry": 3}], "actions": [{"status": "failed"}],
     "pull_budget": {"remaining": {"a": "many", "b": True, "c": 3}, "reserve": "x"}},
])
def test_a_garbled_run_summary_is_read_without_trusting_it(tmp_path: Path, summary: dict[str, Any]) -> None:
    policy = load(tmp_path)
    report = status_report(policy, Lock(), [], summary, now=NOW, within_days=0)
    assert report.failing == ()
    json.dumps(report.to_json())  # whatever came in, the JSON is well formed
    budget = report.to_json()["pull_budget"]
    assert budget is None or budget["remaining"] == {"c": 3}


@pytest.mark.parametrize(("text", "days"), [("14d", 14), ("2w", 14), ("0", 0), (" 30D ", 30)])
def test_within_takes_days_or_weeks(text: str, days: int) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("text", ["", "1y", "-3d", "9999w", "1.5d"])
def test_within_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_days(text)


def status_cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEVET_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[3] / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", "status", "-p", str(tmp / "imagevet.yaml"), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp,
    )


def test_status_prints_escaped_text_and_exits_3_only_when_a_person_is_needed(tmp_path: Path) -> None:
    policy = load(tmp_path)
    (tmp_path / "imagevet.lock").write_text(render_lock(lock_for(policy)))
    state = FileStateStore(tmp_path / ".imagevet")
    state.hold(HeldUpdate("app", "1", str(NEW), "upstream moved \x1b[2J", SINCE))
    state.write_run_summary({
        "now": "2026-11-30T11:00:00Z", "ok": False, "counts": {},
        "problems": [{"entry": "app", "source": "up.example/lib/app", "message": "evil \x1b]0;t\x07 [b]x[/b]"}],
        "pull_budget": {"remaining": {"docker.io": 7}, "reserve": 2, "deferred": 1},
    })
    out = status_cli(tmp_path, "--within", "1d")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "app (up.example/lib/app): evil \\x1b]0;t\\x07 [b]x[/b]" in out.stdout
    assert f"locked    {OLD}" in out.stdout and "since     2026-11-28T09:00:00Z" in out.stdout
    assert "old  EXPIRED on 2026-11-01; approved by carol" in out.stdout
    assert "pull budget (last run): docker.io 7 left (reserve 2); 1 copies deferred" in out.stdout
    doc = json.loads(status_cli(tmp_path, "--json", "--within", "1d").stdout)
    assert doc["held"][0]["reason"] == "upstream moved \x1b[2J"  # JSON carries it exactly, escaped by JSON

    state.release("app", "1")
    state.write_run_summary({"now": "2026-11-30T11:00:00Z", "ok": True, "counts": {"noop": 1}})
    (tmp_path / "imagevet.yaml").write_text(
        (tmp_path / "imagevet.yaml").read_text().replace("expires: 2026-11-01", "expires: 2099-01-01")
        .replace("expires: 2026-12-10", "expires: 2099-01-01")
    )
    quiet = status_cli(tmp_path)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert quiet.stdout.splitlines()[-1] == "status: nothing needs a person"

    (tmp_path / ".imagevet" / "held.json").write_text("[not json")
    broken = status_cli(tmp_path)
    assert broken.returncode == 1 and "held.json" in broken.stderr
    assert status_cli(tmp_path, "--within", "soon").returncode == 2


def test_status_reads_and_writes_nothing_but_what_it_is_given(tmp_path: Path) -> None:
    policy_file(tmp_path)
    out = status_cli(tmp_path, "--json")
    assert json.loads(out.stdout)["last_run"] is None
    assert not (tmp_path / ".imagevet").exists() and not (tmp_path / "imagevet.lock").exists()
