"""Real-world OCI image layouts (``../shared/realworld-images``), pushed byte for byte into a test
registry with the independent test client (:mod:`tests.support.pusher`), never imagevet's.

Each layout becomes one repository; its tags come from ``org.opencontainers.image.ref.name`` in
``index.json``.  The layouts are other projects' published test data and some are broken on
purpose, so every tagged image is first judged from the files alone:

* **good**: every manifest and blob it reaches is present, hashes to its digest, and has the
  size its descriptor states;
* **broken**: it can be pushed (a registry checks presence, not sizes) but a descriptor states a
  wrong size: any faithful copy must refuse it, with the reason;
* **absent**: something it needs is missing or does not hash to its name, so the registry refuses
  it: it is not in the source repository at all (what can be pushed still is).

Blobs are read from ``blobs/`` and, for containers/image's shared-blob-directory fixture, from
``shared_blobs/``.  Layouts shipped as tar files (oras-go, ggcr's hello-world-v25) are read from
the tar; ``docker save`` tarballs without an ``index.json`` have no registry manifest (pushing
them would mean writing one), so they are not pushed: see :data:`NOT_LAYOUTS`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.manifest import RawManifest
from tests.support.pusher import PushError, Target, TestClient

__all__ = [
    "NOT_LAYOUTS",
    "REALWORLD",
    "Layout",
    "LayoutImage",
    "PushedLayout",
    "load_layout",
    "load_layouts",
    "push_layout",
]

REALWORLD = Path(__file__).resolve().parents[2] / ".." / "shared" / "realworld-images"
"""The shared real-world data (the repository root's sibling ``shared/``)."""

REF_NAME = "org.opencontainers.image.ref.name"

NOT_LAYOUTS = frozenset(
    {
        "ggcr-tarball/test_bundle.tar",
        "ggcr-tarball/test_image_1.tar",
        "ggcr-tarball/test_image_2.tar",
        "ggcr-tarball/test_link.tar",
        "ggcr-tarball/test_load_manifest.tar",
        "ggcr-tarball/no_manifest.tar",
        "ggcr-tarball/null_manifest.tar",
        "ggcr-tarball/content.tar",
    }
)
"""Tar files that are ``docker save`` output (or not images at all): no OCI layout inside."""


@dataclass(frozen=True, slots=True)
class LayoutImage:
    """One tagged (or untagged) entry of a layout's ``index.json``, judged from the files."""

    tag: str | None
    digest: Digest
    status: str
    """``good``, ``broken`` or ``absent`` (see the module docstring)."""
    reason: str = ""
    bad_blob: Digest | None = None
    """For a broken image: the blob whose descriptor states the wrong size."""


@dataclass(frozen=True)
class Layout:
    """An OCI layout's files (path inside the layout -> bytes) and its judged images."""

    name: str
    files: Mapping[str, bytes]
    images: tuple[LayoutImage, ...]

    @property
    def repository(self) -> str:
        """A repository path for this layout: ``rw/<source>/<layout>``, registry-safe."""
        return "rw/" + re.sub(r"[^a-z0-9/]+", "-", self.name.lower()).strip("-")

    def blob(self, digest: Digest | str) -> bytes | None:
        algo, _, hexpart = str(digest).partition(":")
        for folder in ("blobs", "shared_blobs"):
            data = self.files.get(f"{folder}/{algo}/{hexpart}")
            if data is not None:
                return data
        return None

    def tagged(self, status: str | None = None) -> dict[str, LayoutImage]:
        """Tag -> image for the tags this layout ends up with (the last entry wins a name)."""
        out: dict[str, LayoutImage] = {}
        for img in self.images:
            if img.tag is not None and img.status != "absent":
                out[img.tag] = img
        return {t: i for t, i in out.items() if status is None or i.status == status}


@dataclass
class PushedLayout:
    """What :func:`push_layout` left in the registry."""

    layout: Layout
    repository: str
    tags: dict[str, Digest] = field(default_factory=dict)
    """Every tag pushed (good and broken images) -> its digest."""
    refused: dict[str, str] = field(default_factory=dict)
    """Manifest digest -> the registry's answer, for manifests it would not take."""

    @property
    def good(self) -> dict[str, Digest]:
        return {t: i.digest for t, i in self.layout.tagged("good").items() if t in self.tags}

    @property
    def broken(self) -> dict[str, LayoutImage]:
        return {t: i for t, i in self.layout.tagged("broken").items() if t in self.tags}


def _read_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _read_tar(path: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            f = tar.extractfile(member)
            if f is not None:
                files[member.name.removeprefix("./")] = f.read()
    return files


def _manifest_type(data: bytes, declared: str) -> str:
    try:
        found = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        found = None
    return found if isinstance(found, str) and found else declared


def _judge(files: Mapping[str, bytes], name: str) -> tuple[LayoutImage, ...]:
    layout = Layout(name, files, ())
    index = json.loads(files["index.json"])

    def problem(desc: Mapping[str, object], top: bool) -> tuple[str, str, Digest | None]:
        """(status, reason, bad blob) for everything reachable from ``desc``."""
        digest = Digest.parse(str(desc["digest"]))
        data = layout.blob(digest)
        if data is None:
            return "absent", f"{digest} is missing from the layout", None
        if hashlib.new(digest.algorithm, data).hexdigest() != digest.hex:
            return "absent", f"{digest} does not hash to its name", None
        if not top and len(data) != desc.get("size"):
            return "broken", f"{digest}: descriptor says {desc.get('size')} bytes, it is {len(data)}", digest
        kind = _manifest_type(data, str(desc.get("mediaType") or ""))
        if top or mediatype.is_index(kind) or kind in mediatype.MANIFEST_TYPES:
            doc = json.loads(data)
            worst: tuple[str, str, Digest | None] = ("good", "", None)
            children = list(doc.get("manifests") or [])
            blobs = ([doc["config"]] if isinstance(doc.get("config"), dict) else []) + list(
                doc.get("layers") or []
            )
            for child in children:
                got = problem(child, False)
                if got[0] == "absent":
                    return got
                if got[0] == "broken" and worst[0] == "good":
                    worst = got
            for blob in blobs:
                b = Digest.parse(str(blob["digest"]))
                bdata = layout.blob(b)
                if bdata is None:
                    return "absent", f"blob {b} is missing from the layout", None
                if hashlib.new(b.algorithm, bdata).hexdigest() != b.hex:
                    return "absent", f"blob {b} does not hash to its name", None
                if len(bdata) != blob.get("size") and worst[0] == "good":
                    worst = (
                        "broken",
                        f"blob {b}: descriptor says {blob.get('size')} bytes, it is {len(bdata)}",
                        b,
                    )
            return worst
        return "good", "", None

    images: list[LayoutImage] = []
    for entry in index.get("manifests") or []:
        tag = (entry.get("annotations") or {}).get(REF_NAME)
        status, reason, bad = problem(entry, True)
        images.append(LayoutImage(tag, Digest.parse(entry["digest"]), status, reason, bad))
    return tuple(images)


def load_layout(path: Path) -> Layout:
    """Read one layout (a directory or a tar file) and judge its images."""
    root = REALWORLD.resolve()
    name = path.resolve().relative_to(root).as_posix()
    files = _read_tar(path) if path.is_file() else _read_tree(path)
    if "index.json" not in files:
        raise ValueError(f"{name}: no index.json: not an OCI layout")
    return Layout(name, files, _judge(files, name))


def load_layouts() -> list[Layout]:
    """Every OCI layout under :data:`REALWORLD` (fails loudly when the data is missing)."""
    if not REALWORLD.is_dir():
        raise FileNotFoundError(f"real-world image data missing: {REALWORLD} (see shared/README.md)")
    found: list[Layout] = []
    for marker in sorted(REALWORLD.glob("*/*/oci-layout")):
        found.append(load_layout(marker.parent))
    for tar in sorted(REALWORLD.glob("*/*.tar")):
        if tar.resolve().relative_to(REALWORLD.resolve()).as_posix() not in NOT_LAYOUTS:
            found.append(load_layout(tar))
    return found


async def push_layout(registry: Target, layout: Layout, repository: str | None = None) -> PushedLayout:
    """Push ``layout`` byte for byte: blobs, then manifests children first by digest, then tags.

    What the registry refuses (a manifest whose blob or child is missing) is recorded in
    ``refused`` and the rest goes on.
    """
    repo = repository or layout.repository
    out = PushedLayout(layout, repo)
    done: dict[Digest, bool] = {}

    async with TestClient(registry) as c:

        async def push(digest: Digest, declared: str) -> bool:
            if digest in done:
                return done[digest]
            done[digest] = False
            data = layout.blob(digest)
            if data is None or hashlib.new(digest.algorithm, data).hexdigest() != digest.hex:
                out.refused[str(digest)] = "not in the layout"
                return False
            manifest = RawManifest.from_bytes(data, _manifest_type(data, declared))
            doc = manifest.json
            for child in doc.get("manifests") or []:
                await push(Digest.parse(child["digest"]), str(child.get("mediaType") or ""))
            blobs = ([doc["config"]] if isinstance(doc.get("config"), dict) else []) + list(
                doc.get("layers") or []
            )
            for blob in blobs:
                b = Digest.parse(str(blob["digest"]))
                bdata = layout.blob(b)
                if bdata is not None and hashlib.new(b.algorithm, bdata).hexdigest() == b.hex:
                    await c.push_blob(repo, bdata, b)
            try:
                await c.push_manifest(repo, manifest, str(digest))
            except PushError as e:
                out.refused[str(digest)] = f"HTTP {e.status}: {e.body[:300]!r}"
                return False
            done[digest] = True
            return True

        for image in layout.images:  # absent ones too: what can be pushed is
            declared = next(
                str(e.get("mediaType") or "")
                for e in json.loads(layout.files["index.json"])["manifests"]
                if e["digest"] == str(image.digest)
            )
            if not await push(image.digest, declared):
                continue
            if image.tag is not None:
                data = layout.blob(image.digest) or b""
                manifest = RawManifest.from_bytes(data, _manifest_type(data, declared))
                await c.push_manifest(repo, manifest, image.tag)
                out.tags[image.tag] = image.digest
    return out
