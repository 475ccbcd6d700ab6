"""The HTML catalog in a real browser: generated from a real sync, served on 127.0.0.1 and read
by Debian's chromium (headless, JavaScript disabled) at desktop and phone widths."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import struct
import subprocess
import sys
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.images import (
    Image,
    make_image,
    make_multiarch,
    make_referrer,
    make_referrers_tag_index,
)
from tests.support.pusher import push_image_sync, push_manifest_sync
from tests.support.registry_process import RunningRegistry

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def imagevet(*args: str, policy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args, "--policy", str(policy)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on 127.0.0.1 (a free port) while the block runs."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the decompressed pixel rows) of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@dataclass(frozen=True)
class Catalog:
    site: Path
    comment: str
    source: str
    mirror: str
    tool_mirror: str
    web: dict[str, Image]
    moved: Image
    tool: Image
    sbom: Image
    expires: date


@pytest.fixture(scope="module")
def catalog(plain_registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """A real sync (lock, sync; then upstream re-points a pinned tag and sync holds it), and the
    report of it: built once for the browser tests of this module."""
    tmp = tmp_path_factory.mktemp("report-browser")
    unique = uuid.uuid4().hex[:8]
    upstream, namespace = f"upstream-{unique}", f"mirror-{unique}"
    web = {"1.0": make_multiarch(seed="report-web-1.0"), "1.1": make_multiarch(seed="report-web-1.1")}
    tool = make_image(seed="report-tool-2.0")
    for tag, image in web.items():
        push_image_sync(plain_registry, f"{upstream}/web", image, tag)
    push_image_sync(plain_registry, f"{upstream}/tool", tool, "2.0")
    sbom = make_referrer(web["1.1"].top, seed="report-sbom")
    push_image_sync(plain_registry, f"{upstream}/web", sbom, None)
    push_manifest_sync(plain_registry, f"{upstream}/web", make_referrers_tag_index([sbom]),
                       f"sha256-{web['1.1'].digest.hex}")
    expires = (datetime.now(UTC) + timedelta(days=5)).date()
    policy = tmp / "imagevet.yaml"
    policy.write_text(
        "version: 1\n"
        f"target:\n  registry: {plain_registry.host}\n  namespace: {namespace}\n"
        "images:\n"
        f"  - source: {plain_registry.host}/{upstream}/web\n    name: web-frontend\n"
        "    tags:\n      range: '>=1.0'\n"
        "    approval:\n      approved_by: alice@acme.example\n      reason: serves the shop <b>front</b>\n"
        f"      ticket: SEC-7\n      expires: {expires.isoformat()}\n"
        f"  - source: {plain_registry.host}/{upstream}/tool\n    name: build-tool\n    mode: follow\n"
        "    tags:\n      tags: ['2.0']\n"
        "    approval:\n      approved_by: bob@acme.example\n      expires: 2099-12-31\n"
    )
    for step in ("lock", "sync"):
        done = imagevet(step, policy=policy)
        assert done.returncode == 0, done.stdout + done.stderr
    moved = make_multiarch(seed="report-web-1.1-moved")
    push_image_sync(plain_registry, f"{upstream}/web", moved, "1.1")
    again = imagevet("sync", policy=policy)
    assert again.returncode == 0, again.stdout + again.stderr
    site = tmp / "site"
    report = imagevet("report", "--html", str(site), "--markdown", str(tmp / "comment.md"), policy=policy)
    assert report.returncode == 0, report.stdout + report.stderr
    return Catalog(site, (tmp / "comment.md").read_text(), f"{plain_registry.host}/{upstream}/web",
                   f"{plain_registry.host}/{namespace}/web", f"{plain_registry.host}/{namespace}/tool",
                   web, moved, tool, sbom, expires)


@pytest.mark.parametrize(("name", "size"), [("desktop", DESKTOP), ("phone", PHONE)])
async def test_index_and_image_page_read_well_in_chromium(
    catalog: Catalog, tmp_path: Path, name: str, size: dict[str, int],
) -> None:
    from playwright.async_api import async_playwright

    c = catalog
    async with async_playwright() as pw:
        browser = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, java_script_enabled=False, viewport=size,
        )
        try:
            page = await browser.new_page()
            with serve(c.site) as base:
                await page.goto(f"{base}/index.html")
                index = await page.inner_text("body")
                assert "Vetted images" in index and "web-frontend" in index and "build-tool" in index
                assert f"docker pull {c.mirror}:1.1" in index
                assert f"docker pull {c.mirror}@{c.web['1.1'].digest}" in index  # the vetted digest, held back
                assert f"docker pull {c.mirror}:1.0" in index and f"docker pull {c.mirror}@{c.web['1.0'].digest}" in index
                assert f"docker pull {c.tool_mirror}@{c.tool.digest}" in index
                assert f"alice@acme.example (SEC-7), until {c.expires.isoformat()}" in index
                assert "approval expires in 5 days" in index and "1 update held" in index
                shot = await page.screenshot(path=str(tmp_path / f"index-{name}.png"))
                width, _, colours = png_size_and_colours(shot)
                assert width == size["width"] and colours > 8, (width, colours)
                assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

                await page.click("text=web-frontend")
                assert page.url == f"{base}/web-frontend.html"
                text = await page.inner_text("body")
                assert "web-frontend" in text and c.source in text and c.mirror in text
                assert "alice@acme.example" in text and "serves the shop <b>front</b>" in text
                assert "SEC-7" in text and c.expires.isoformat() in text and "expires soon" in text
                assert "Held updates" in text and str(c.moved.digest) in text
                assert "Since" in text  # sync recorded the hold in held.json, with its first time
                assert "linux/amd64, linux/arm64" in text and "1 referrer upstream" in text
                assert str(c.sbom.digest) in text and f"docker pull {c.mirror}@{c.web['1.0'].digest}" in text
                shot = await page.screenshot(path=str(tmp_path / f"web-{name}.png"), full_page=True)
                width, height, colours = png_size_and_colours(shot)
                assert width == size["width"] and height >= size["height"] and colours > 8
                assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        finally:
            await browser.close()


def test_the_comment_of_the_same_sync_says_the_same(catalog: Catalog) -> None:
    assert f"docker pull {catalog.mirror}@{catalog.web['1.1'].digest}" in catalog.comment
    assert "| web-frontend |" in catalog.comment and "1 held" in catalog.comment
    assert f"**expires {catalog.expires.isoformat()}** (in 5 days)" in catalog.comment


async def test_hostile_and_long_values_stay_text_and_never_widen_the_phone_page(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    from imagevet.digest import Digest
    from imagevet.lock import Lock, LockedImage, LockEntry, render_lock
    from imagevet.reference import Reference

    long = "x" * 400
    (tmp_path / "imagevet.yaml").write_text(
        "version: 1\ntarget:\n  registry: registry.example.com\n  namespace: acme\nimages:\n"
        "  - source: docker.io/library/web\n"
        f"    name: \"<script>document.title='owned'</script>{long}\"\n"
        "    tags:\n      tags: ['1.0']\n"
        "    approval:\n      approved_by: a@example.com\n"
        f"      reason: \"<img src=x onerror=alert(1)> \\e[31m {'https://example.com/' + long}\"\n"
    )
    image = LockedImage(Digest.of(b"web"), "application/vnd.oci.image.index.v1+json",
                        datetime(2026, 11, 1, tzinfo=UTC), platforms=("linux/amd64",))
    lock = Lock((LockEntry(Reference.parse("docker.io/library/web"), Reference.parse("registry.example.com/acme/web"),
                           tags={"1.0": image}),))
    (tmp_path / "imagevet.lock").write_text(render_lock(lock))
    done = imagevet("report", "--html", str(tmp_path / "site"), policy=tmp_path / "imagevet.yaml")
    assert done.returncode == 0, done.stderr
    (page_name,) = [p.name for p in (tmp_path / "site").glob("*.html") if p.name != "index.html"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, java_script_enabled=False, viewport=PHONE,
        )
        try:
            page = await browser.new_page()
            with serve(tmp_path / "site") as base:
                for name in ("index.html", page_name):
                    await page.goto(f"{base}/{name}")
                    text = await page.inner_text("body")
                    assert "<script>document.title='owned'</script>" + long in text
                    assert await page.locator("script, img").count() == 0
                    assert await page.title() != "owned"
                    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                assert "<img src=x onerror=alert(1)> \\x1b[31m https://example.com/" in text
        finally:
            await browser.close()
