"""``imagevet check --policy``: the vetted mirrors come from the policy and its lock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from imagevet.cli import app
from imagevet.digest import Digest
from imagevet.lock import Lock, LockedImage, LockEntry, write_lock
from imagevet.reference import Reference

DIGEST = Digest.of(b"redis 7.4.1 index")
POLICY = """version: 1
target:
  registry: docker.io
  namespace: acme
defaults:
  approval: {approved_by: security@acme.example, expires: 2099-01-01}
images:
  - source: bitnami/redis
    tags: {tags: ['7.4.1']}
"""


def test_check_uses_the_lock_and_fixes_to_the_pinned_mirror(tmp_path: Path) -> None:
    (tmp_path / "imagevet.yaml").write_text(POLICY)
    image = LockedImage(DIGEST, "application/vnd.oci.image.index.v1+json",
                        datetime(2026, 11, 1, tzinfo=UTC), ("linux/amd64",))
    write_lock(tmp_path / "imagevet.lock", Lock((LockEntry(
        Reference.parse("bitnami/redis"), Reference.parse("acme/redis"), {"7.4.1": image}),)))
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    dockerfile = app_dir / "Dockerfile"
    dockerfile.write_text("# base\nFROM bitnami/redis:7.4.1 AS cache\nFROM bitnami/redis:6.0\n")
    runner = CliRunner()
    args = ["check", str(app_dir), "--policy", str(tmp_path / "imagevet.yaml"), "--offline"]
    found = runner.invoke(app, [*args, "--format", "json"])
    assert found.exit_code == 1, found.output
    issues = json.loads(found.output)
    rules = sorted((i["rule"], i["line"]) for i in issues["results"] if i["rule"] != "IV020")
    assert ("IV001", 2) in rules and ("IV002", 3) in rules
    fixed = runner.invoke(app, [*args, "--fix"])
    assert fixed.exit_code == 1  # 6.0 is not vetted: it stays a violation
    assert dockerfile.read_text() == (
        f"# base\nFROM docker.io/acme/redis:7.4.1@{DIGEST} AS cache\nFROM bitnami/redis:6.0\n"
    )
