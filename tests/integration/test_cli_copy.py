"""``imagevet copy`` as a user runs it: a real process, real registries, exit codes and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.images import cosign_tag, make_cosign_signature, make_image, make_multiarch
from tests.support.pusher import fetch_image, list_tags, push_image
from tests.support.registry_process import RunningRegistry


def imagevet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


def auth_file(tmp_path: Path, *registries: RunningRegistry) -> dict[str, str]:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({r.host: {"username": r.username, "password": r.password} for r in registries}))
    return {"IMAGEVET_AUTH_FILE": str(path)}


async def test_copy_prints_one_summary_line_and_exits_0(
    plain_registry: RunningRegistry, basic_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    image = make_multiarch(seed="cli-copy")
    await push_image(plain_registry, unique_repo, image, "1.0")
    env = auth_file(tmp_path, basic_registry)
    src, dst = f"{plain_registry.host}/{unique_repo}:1.0", f"{basic_registry.host}/acme/cli"
    first = imagevet("copy", src, dst, env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 1
    assert f"{basic_registry.host}/acme/cli:1.0 copied: {image.digest}" in lines[0]
    assert "2 platforms" in lines[0]
    copied = await fetch_image(basic_registry, "acme/cli", "1.0")
    assert copied.top.data == image.top.data
    again = imagevet("copy", src, dst, env=env)
    assert again.returncode == 0
    assert "already up to date" in again.stdout
    secret = basic_registry.password or ""
    assert secret not in first.stdout + first.stderr + again.stdout + again.stderr


async def test_copy_json_and_all_tags(plain_registry: RunningRegistry, unique_repo: str) -> None:
    images = {tag: make_image(seed=f"cli-all-{tag}") for tag in ("1.0", "1.1", "2.0")}
    for tag, image in images.items():
        await push_image(plain_registry, unique_repo, image, tag)
    sig = make_cosign_signature(images["1.0"].top, seed="cli-all")
    await push_image(plain_registry, unique_repo, sig, cosign_tag(images["1.0"].digest, "sig"))
    out = imagevet("copy", "--all-tags", "--json",
                   f"{plain_registry.host}/{unique_repo}", f"{plain_registry.host}/{unique_repo}-all")
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    assert report["ok"] is True and report["errors"] == []
    assert {r["target"].rsplit(":", 1)[1]: r["digest"] for r in report["results"]} == {
        tag: str(image.digest) for tag, image in images.items()
    }
    tags = await list_tags(plain_registry, unique_repo + "-all")
    assert sorted(tags) == sorted([*images, cosign_tag(images["1.0"].digest, "sig")])


async def test_missing_source_fails_with_the_reason(plain_registry: RunningRegistry, unique_repo: str) -> None:
    out = imagevet("copy", f"{plain_registry.host}/{unique_repo}:nope", f"{plain_registry.host}/{unique_repo}-x")
    assert out.returncode == 1
    assert "error:" in out.stderr and "nope" in out.stderr
    assert out.stdout == ""


def test_bad_reference_is_a_usage_error() -> None:
    out = imagevet("copy", "docker.io/Upper/Case", "localhost:5000/x")
    assert out.returncode == 2
    assert "must be lowercase" in out.stderr


def test_all_tags_wants_repositories() -> None:
    out = imagevet("copy", "--all-tags", "localhost:5000/a:1", "localhost:5000/b")
    assert out.returncode == 2
    assert "--all-tags takes repositories" in out.stderr



async def test_all_tags_copies_or_reports_every_digest_tag(
    plain_registry: RunningRegistry, unique_repo: str
) -> None:
    """Issue 8 item 3: a ``sha256-<hex>`` tag whose subject is not in the repository was silently
    left out (exit 0, "2 images copied").  Now it is copied as the tag it is; a digest tag whose
    subject is in the repository but was not copied (no tag names it) is reported as skipped,
    with the reason, in the text and the JSON output."""
    images = {tag: make_image(seed=f"dangling-{tag}") for tag in ("1.0", "1.1")}
    for tag, image in images.items():
        await push_image(plain_registry, unique_repo, image, tag)
    elsewhere = make_image(seed="dangling-subject-elsewhere")  # never pushed here
    dangling = make_cosign_signature(elsewhere.top, seed="dangling")
    dangling_tag = cosign_tag(elsewhere.digest, "sig").removesuffix(".sig")  # sha256-<hex>
    await push_image(plain_registry, unique_repo, dangling, dangling_tag)
    untagged = make_image(seed="dangling-untagged")
    await push_image(plain_registry, unique_repo, untagged)  # by digest only
    untagged_sig = make_cosign_signature(untagged.top, seed="dangling-untagged")
    await push_image(plain_registry, unique_repo, untagged_sig, cosign_tag(untagged.digest, "sig"))

    src, dst = f"{plain_registry.host}/{unique_repo}", f"{plain_registry.host}/{unique_repo}-mirror"
    out = imagevet("copy", "--all-tags", "--json", src, dst)
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    assert [r["target"].rsplit(":", 1)[1] for r in report["results"]] == ["1.0", "1.1"]
    assert [r["target"].rsplit(":", 1)[1] for r in report["digest_tags"]] == [dangling_tag]
    assert report["digest_tags"][0]["digest"] == str(dangling.digest)
    assert [s["tag"] for s in report["skipped"]] == [cosign_tag(untagged.digest, "sig")]
    assert str(untagged.digest) in report["skipped"][0]["reason"]
    tags = await list_tags(plain_registry, unique_repo + "-mirror")
    assert sorted(tags) == sorted(["1.0", "1.1", dangling_tag])

    text = imagevet("copy", "--all-tags", src, f"{plain_registry.host}/{unique_repo}-text")
    assert text.returncode == 0, text.stderr
    assert "2 images copied" in text.stdout
    assert "1 digest tag copied" in text.stdout and "1 skipped" in text.stdout
    assert f"skipped {cosign_tag(untagged.digest, 'sig')}" in text.stderr
    assert "not copied" in text.stderr


async def test_all_tags_reports_a_listed_tag_no_reference_can_name(
    fake_registry: Any, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    """A source listing with one unnameable tag: that tag is a reported failure, the rest copy."""
    image = make_image(seed="cli-odd-tag")
    fake_registry.seed("acme/odd", image, "1.0")
    fake_registry.tags["acme/odd"]["bad tag\x1b[31m"] = image.digest
    out = imagevet("copy", "--all-tags", "--json",
                   f"{fake_registry.host}/acme/odd", f"{plain_registry.host}/{unique_repo}-odd")
    assert out.returncode == 1, out.stdout + out.stderr
    body = json.loads(out.stdout)
    assert [r["target"].rsplit(":", 1)[1] for r in body["results"]] == ["1.0"]
    assert len(body["errors"]) == 1
    assert "bad tag" in body["errors"][0]["source"]
    assert "Traceback" not in out.stderr
    assert "1.0" in await list_tags(plain_registry, f"{unique_repo}-odd")
