"""``imagevet copy`` against hostile sources, as a user runs it: a source that crawls, and one
that echoes the credentials it was sent in its error bodies (issue 8, items 6 and 10)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.images import Image, make_image

USER, PASSWORD = "alice", "pw-Hostile-s3cret"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def imagevet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )


def layer_path(repo: str, image: Image) -> str:
    return f"/v2/{repo}/blobs/{image.top.json['layers'][-1]['digest']}"


def two_tags(source: Any, repo: str) -> dict[str, Image]:
    images = {t: make_image(seed=f"hostile-{t}", layer_sizes=(4096,)) for t in ("bad", "good")}
    for tag, image in images.items():
        source.seed(repo, image, tag)
    return images


async def test_crawling_source_fails_that_image_within_the_transfer_timeout(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    """One byte every 20 ms (4 KiB: 80 s) with IMAGEVET_TRANSFER_TIMEOUT=1: the tag fails within
    a few seconds, the other tag is copied, exit 1, the JSON report says which and why."""
    source, target = fake_registry_factory(), fake_registry_factory()
    images = two_tags(source, "lib/app")
    proxy = fault_proxy(source)
    proxy.drip(layer_path("lib/app", images["bad"]), nbytes=1, interval=0.02)
    started = time.monotonic()
    out = imagevet(
        "copy", "--all-tags", "--json", f"{proxy.host}/lib/app", f"{target.host}/lib/app",
        env={"IMAGEVET_TRANSFER_TIMEOUT": "1"},
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert [r["target"] for r in report["results"]] == [f"{target.host}/lib/app:good"]
    (error,) = report["errors"]
    assert error["source"] == f"{proxy.host}/lib/app:bad"
    assert "too slow" in error["reason"]
    assert elapsed < 30
    assert target.manifest("lib/app", "good").data == images["good"].top.data


def test_bad_transfer_timeout_is_a_usage_error() -> None:
    out = imagevet("copy", "127.0.0.1:1/a:b", "127.0.0.1:1/c", env={"IMAGEVET_TRANSFER_TIMEOUT": "soon"})
    assert out.returncode == 2
    assert "IMAGEVET_TRANSFER_TIMEOUT" in out.stderr


async def test_credentials_echoed_in_error_bodies_reach_no_output(
    fake_registry_factory: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    source = fake_registry_factory(require_auth=(USER, PASSWORD))
    target = fake_registry_factory()
    images = two_tags(source, "lib/app")
    proxy = fault_proxy(source)
    proxy.fail(None, 400, echo=True, method="GET", path_contains=layer_path("lib/app", images["bad"]))
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({proxy.host: {"username": USER, "password": PASSWORD}}))
    env = {"IMAGEVET_AUTH_FILE": str(auth)}
    out = imagevet("copy", "--all-tags", "--json", f"{proxy.host}/lib/app", f"{target.host}/lib/app", env=env)
    assert out.returncode == 1, out.stderr
    (error,) = json.loads(out.stdout)["errors"]
    assert "HTTP 400" in error["reason"] and "***" in error["reason"]
    # the plain-text variant, through the single-image path (printed by the CLI's error line)
    proxy.clear()
    proxy.fail(None, 400, echo=True, plain=True, method="GET", path_contains="/blobs/")
    single = imagevet("copy", f"{proxy.host}/lib/app:bad", f"{target.host}/lib/app:bad2", env=env)
    assert single.returncode == 1
    assert "HTTP 400" in single.stderr
    for text in (out.stdout, out.stderr, single.stdout, single.stderr):
        assert PASSWORD not in text
        assert BASIC not in text
        assert f"{USER}:" not in text
    assert proxy.count("GET", "/blobs/") >= 1  # the echo was really sent
