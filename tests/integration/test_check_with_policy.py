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


INDEX = Digest.of(b"valkey 8.0 index")
AMD64, ARM64, S390X = (Digest.of(f"valkey 8.0 {p} manifest".encode()) for p in ("amd64", "arm64", "s390x"))
OTHER = Digest.of(b"a manifest of no vetted index")
PLATFORMS_POLICY = POLICY + """  - source: bitnami/valkey
    tags: {tags: ['8.0']}
  - source: bitnami/valkey
    name: valkey-amd64
    target: valkey-amd64
    platforms: [linux/amd64]
    tags: {tags: ['8.0']}
"""
CHILDREN = (("linux/amd64", AMD64), ("linux/arm64", ARM64), ("linux/s390x", S390X))


def _platforms_lock(tmp_path: Path, *, children: bool = True) -> None:
    (tmp_path / "imagevet.yaml").write_text(PLATFORMS_POLICY)
    image = LockedImage(INDEX, "application/vnd.oci.image.index.v1+json", datetime(2026, 11, 1, tzinfo=UTC),
                        tuple(p for p, _ in CHILDREN), manifests=CHILDREN if children else ())
    valkey = Reference.parse("bitnami/valkey")
    write_lock(tmp_path / "imagevet.lock", Lock((
        LockEntry(valkey, Reference.parse("acme/valkey"), {"8.0": image}),
        LockEntry(valkey, Reference.parse("acme/valkey-amd64"), {"8.0": image}),
    )))


def _check(tmp_path: Path, dockerfile: str) -> tuple[int, list[tuple[str, int, str]]]:
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "Dockerfile").write_text(dockerfile)
    out = CliRunner().invoke(app, ["check", str(app_dir), "--policy", str(tmp_path / "imagevet.yaml"),
                                   "--offline", "--format", "json"])
    assert out.exit_code in (0, 1), out.output
    return out.exit_code, [(r["rule"] or "ok", r["line"], r["message"]) for r in json.loads(out.output)["results"]]


def test_a_pin_of_a_platform_manifest_of_a_locked_index_is_vetted(tmp_path: Path) -> None:
    """The lock records the digests of an index's platform manifests: with --policy/--lock a
    pin of one of them is vetted exactly as with --vetted data."""
    _platforms_lock(tmp_path)
    code, results = _check(tmp_path, (
        f"FROM acme/valkey@{ARM64}\n"
        f"FROM docker.io/acme/valkey:8.0@{S390X}\n"
        f"FROM acme/valkey-amd64@{AMD64}\n"
    ))
    assert code == 0, results
    assert [(rule, line) for rule, line, _ in results] == [("ok", 1), ("ok", 2), ("ok", 3)]
    assert "pinned to the linux/arm64 manifest of vetted tag 8.0" in results[0][2]
    assert "pinned to the linux/amd64 manifest of vetted tag 8.0" in results[2][2]


def test_a_pin_of_a_manifest_the_locked_index_does_not_list_is_still_an_error(tmp_path: Path) -> None:
    _platforms_lock(tmp_path)
    code, results = _check(tmp_path, (
        f"FROM acme/valkey@{OTHER}\n"
        f"FROM acme/valkey-amd64@{ARM64}\n"  # the subset mirror holds linux/amd64 only
        f"FROM bitnami/valkey@{OTHER}\n"
    ))
    assert code == 1
    assert [(rule, line) for rule, line, _ in results] == [("IV005", 1), ("IV005", 2), ("IV003", 3)]
    assert f"digest {ARM64} was not vetted" in results[1][2]


def test_a_source_pinned_to_a_locked_platform_manifest_is_fixed_to_it_on_the_mirror(tmp_path: Path) -> None:
    _platforms_lock(tmp_path)
    code, results = _check(tmp_path, f"FROM bitnami/valkey@{ARM64}\n")
    assert code == 1 and [r[0] for r in results] == ["IV001"]
    fixed = CliRunner().invoke(app, ["check", str(tmp_path / "app"), "--policy", str(tmp_path / "imagevet.yaml"),
                                     "--offline", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    assert (tmp_path / "app" / "Dockerfile").read_text() == f"FROM docker.io/acme/valkey:8.0@{ARM64}\n"


def test_a_lock_without_platform_manifests_vets_no_platform_manifest(tmp_path: Path) -> None:
    """A lock written before the digests were recorded reads, and vets the index only."""
    _platforms_lock(tmp_path, children=False)
    assert "manifests:" not in (tmp_path / "imagevet.lock").read_text()
    code, results = _check(tmp_path, f"FROM acme/valkey@{ARM64}\nFROM acme/valkey@{INDEX}\n")
    assert code == 1 and [(r[0], r[1]) for r in results] == [("IV005", 1), ("ok", 2)]
