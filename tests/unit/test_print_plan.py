"""``imagevet plan`` reads like the lock diff: one group per repository, one action a line, short
digests, nothing wider than 100 columns on a typical plan; ``--json`` is unchanged."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import pytest

from imagevet.cli._policy import print_plan
from imagevet.digest import Digest
from imagevet.manifest import Platform
from imagevet.plan import Copy, CreateRepo, Defer, Hold, Noop, Plan, Prune, Update, UpdateRepo
from imagevet.reference import Reference
from imagevet.repository_spec import RepoChange, RepoChangeKind, RepoSpec

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _d(seed: str) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(seed.encode()).hexdigest())


def _plan() -> Plan:
    redis_src, redis_dst = Reference.parse("bitnami/redis"), Reference.parse("docker.io/acme/redis")
    pg_src = Reference.parse("registry.example.com:5000/bitnami/postgresql")
    pg_dst = Reference.parse("docker.io/acme/postgresql")
    spec = RepoSpec("acme", "redis")
    actions = [
        CreateRepo("bitnami/redis", redis_dst, spec, (RepoChange(RepoChangeKind.CREATE, "create"),)),
        Copy("bitnami/redis", redis_src.with_digest(_d("7.4")), redis_dst.with_tag("7.4"), _d("7.4"), pulls=3),
        Copy("bitnami/redis", redis_src.with_digest(_d("7.4.1")), redis_dst.with_tag("7.4.1"), _d("7.4.1"),
             platforms=(Platform("linux", "amd64"),), pulls=2),
        Update("bitnami/redis", redis_src.with_digest(_d("7.2new")), redis_dst.with_tag("7.2"), _d("7.2new"),
               _d("7.2old"), redis_dst.with_tag("7.2-backup-20261130")),
        Hold("bitnami/redis", redis_dst.with_tag("7.0"), "pinned: upstream re-pointed the tag",
             wanted=_d("7.0"), upstream=_d("7.0up")),
        Noop("bitnami/redis", redis_dst.with_tag("6.2"), _d("6.2")),
        Prune("bitnami/redis", redis_dst.with_tag("6.0"), _d("6.0")),
        UpdateRepo("bitnami/postgresql", pg_dst, RepoSpec("acme", "postgresql"),
                   (RepoChange(RepoChangeKind.PRIVACY, "make private"),)),
        Defer("bitnami/postgresql",
              Copy("bitnami/postgresql", pg_src.with_digest(_d("16.3.0")), pg_dst.with_tag("16.3.0"),
                   _d("16.3.0"), pulls=4),
              "the docker.io pull budget would run out"),
    ]
    return Plan(tuple(actions), NOW, warnings=("approval of mailhog/mailhog has expired",))


def test_plan_is_grouped_with_short_digests_and_fits_100_columns(capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan()
    print_plan(plan)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, "\n".join(x for x in lines if len(x) > 100)
    assert not re.search(r"[0-9a-f]{64}", out)  # digests are short
    assert "bitnami/redis -> acme/redis" in lines
    assert "registry.example.com:5000/bitnami/postgresql -> acme/postgresql" in lines
    redis = lines.index("bitnami/redis -> acme/redis")
    postgres = lines.index("registry.example.com:5000/bitnami/postgresql -> acme/postgresql")
    group = lines[redis + 1 : postgres]
    short = {k: f"sha256:{_d(k).hex[:12]}" for k in ("7.4", "7.4.1", "7.2old", "7.2new")}
    assert group[0].split() == ["+", "repository", "create", "(private)"]
    assert group[1].split()[:4] == ["+", "7.4", "copy", short["7.4"]]
    assert group[2].split()[:4] == ["+", "7.4.1", "copy", short["7.4.1"]] and "linux/amd64 only" in group[2]
    assert group[3].split()[:6] == ["~", "7.2", "update", short["7.2old"], "->", short["7.2new"]]
    assert "backup 7.2-backup-20261130" in group[3]
    assert lines[-3] == "pulls (estimated): docker.io ~7"  # 3 + 2 + (1 + 1 for the backup's GET)
    assert group[4].split()[:3] == ["!", "7.0", "hold"] and "upstream re-pointed" in group[4]
    assert group[5].split()[:3] == ["-", "6.0", "prune?"]
    assert len(group) == 6  # up-to-date tags are folded into the count
    pg = lines[postgres + 1 : postgres + 3]
    assert pg[0].split()[:3] == ["~", "repository", "update"] and "make private" in pg[0]
    assert pg[1].split()[:3] == [">", "16.3.0", "defer"] and "pull budget" in pg[1]
    assert lines[-4] == "warning: approval of mailhog/mailhog has expired"
    assert lines[-2:] == [  # every kind at once: the counts go on a line of their own
        "plan: changes pending",
        "  (1 create-repo, 1 update-repo, 2 copy, 1 update, 1 hold, 1 prune, 1 noop, 1 defer)",
    ]
    assert sum(1 for line in lines if line.lstrip().startswith(("+ 7.4 ", "+ 7.4.1 "))) == 2  # one a line


def test_verbose_lists_up_to_date_tags(capsys: pytest.CaptureFixture[str]) -> None:
    print_plan(_plan(), verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:4] == ["=", "6.2", "ok", f"sha256:{_d('6.2').hex[:12]}"] for line in lines)


def test_untrusted_text_in_a_plan_is_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    dst = Reference.parse("docker.io/acme/redis:7.0")
    plan = Plan((Hold("x", dst, "upstream said \x1b[2J[red]boom[/red]"),), NOW)
    print_plan(plan)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J[red]boom[/red]" in out


def test_json_is_unchanged() -> None:
    data = _plan().to_json()
    assert [a["kind"] for a in data["actions"]][:3] == ["create-repo", "copy", "copy"]
    assert data["actions"][1]["digest"] == str(_d("7.4"))  # full digests in JSON
