"""An independent reader and writer agree with imagevet's layout stores: skopeo inspects and
copies what imagevet wrote (to a real registry, same digests), and imagevet reads what skopeo
wrote from a registry seeded by the independent test pusher."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.manifest import RawManifest
from imagevet.reference import Reference
from imagevet.store import ArchiveStore, ImageStore, LayoutStore
from tests.support.images import Image, make_image, make_multiarch
from tests.support.layouts import REALWORLD, load_layout
from tests.support.pusher import fetch_image, get_manifest_bytes, push_image
from tests.support.registry_process import RunningRegistry
from tests.support.stores import put_image


def skopeo(*args: str) -> str:
    tool = shutil.which("skopeo")
    assert tool, "skopeo is required for the interop tests (apt-get install skopeo)"
    out = subprocess.run(
        [tool, "--insecure-policy", *args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def skopeo_copy(src: str, dst: str) -> None:
    skopeo(
        "copy", "--all", "--preserve-digests", "--retry-times", "0",
        "--src-tls-verify=false", "--dest-tls-verify=false", src, dst,
    )


async def read_all(store: ImageStore, ref: Reference, top: Digest) -> Image:
    """Every manifest and blob ``top`` reaches in ``store``, each verified as read."""
    manifests: list[RawManifest] = []
    blobs: dict[Digest, bytes] = {}

    async def walk(digest: Digest) -> RawManifest:
        m = await store.get_manifest(ref.repo().with_digest(digest))
        for child in m.children():
            await walk(child.digest)
        for b in m.blobs():
            out = bytearray()
            async with store.open_blob(ref, b) as reader:
                async for chunk in reader:
                    out += chunk
            blobs[b.digest] = bytes(out)
        manifests.append(m)
        return m

    first = await walk(top)
    return Image(first, manifests, blobs)


def realworld_image() -> Image:
    """containers/image's layout with several images (as skopeo wrote it): its ``latest``."""
    path = REALWORLD / "containers-image-layout" / "delete_image_multiple_images"
    assert path.is_dir(), f"real-world image data missing: {path}"
    layout = load_layout(path)
    img = layout.tagged("good")["latest"]
    manifests: list[RawManifest] = []
    blobs: dict[Digest, bytes] = {}

    def walk(digest: Digest) -> None:
        data = layout.blob(digest)
        assert data is not None
        m = RawManifest.from_bytes(data)
        for child in m.children():
            walk(child.digest)
        for b in m.blobs():
            blobs[b.digest] = layout.blob(b.digest) or b""
        manifests.append(m)

    walk(img.digest)
    return Image(manifests[-1], manifests, blobs)


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
async def test_skopeo_reads_and_pushes_what_imagevet_wrote(
    kind: str, tmp_path: Path, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    multi = make_multiarch(seed=f"interop/{kind}", layer_sizes=(40_000, 1000))
    real = realworld_image()
    where = tmp_path / ("layout" if kind == "oci" else "images.tar")
    store: ImageStore = LayoutStore() if kind == "oci" else ArchiveStore()
    await put_image(store, Reference.parse(f"{kind}:{where}:multi"), multi)
    await put_image(store, Reference.parse(f"{kind}:{where}:real"), real)
    await store.aclose()

    for tag, image in (("multi", multi), ("real", real)):
        raw = await asyncio.to_thread(skopeo, "inspect", "--raw", f"{kind}:{where}:{tag}")
        assert raw.encode() == image.top.data
        repo = f"{unique_repo}-{kind}-{tag}"
        await asyncio.to_thread(
            skopeo_copy, f"{kind}:{where}:{tag}", f"docker://{plain_registry.host}/{repo}:{tag}"
        )
        body, _, digest = await get_manifest_bytes(plain_registry, repo, tag)
        assert digest == str(image.digest) and body == image.top.data
        got = await fetch_image(plain_registry, repo, tag)
        assert got.blobs == image.blobs


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
async def test_imagevet_reads_what_skopeo_wrote(
    kind: str, tmp_path: Path, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    multi = make_multiarch(seed=f"interop-read/{kind}", layer_sizes=(30_000,))
    single = make_image(seed=f"interop-read/{kind}/single", media_types="docker")
    await push_image(plain_registry, unique_repo, multi, "multi")
    await push_image(plain_registry, unique_repo, single, "single")
    # skopeo adds a tag to a layout directory but writes an archive anew: one archive per tag
    where = {
        tag: tmp_path / ("layout" if kind == "oci" else f"{tag}.tar") for tag in ("multi", "single")
    }
    for tag in ("multi", "single"):
        await asyncio.to_thread(
            skopeo_copy,
            f"docker://{plain_registry.host}/{unique_repo}:{tag}",
            f"{kind}:{where[tag]}:{tag}",
        )
    if kind == "oci":
        assert json.loads((where["multi"] / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
        assert sorted(await LayoutStore().list_tags(Reference.parse(f"oci:{where['multi']}"))) == [
            "multi", "single"
        ]
    store: ImageStore = LayoutStore() if kind == "oci" else ArchiveStore()
    for tag, image in (("multi", multi), ("single", single)):
        ref = Reference.parse(f"{kind}:{where[tag]}")
        assert tag in await store.list_tags(ref)
        head = await store.head_manifest(ref.with_tag(tag))
        assert head is not None and head.digest == image.digest
        got = await read_all(store, ref, image.digest)
        assert got.top.data == image.top.data
        assert {m.digest for m in got.manifests} == {m.digest for m in image.manifests}
        assert got.blobs == image.blobs
    await store.aclose()
