"""The image-store contract (``imagevet.store.protocol``), one test per clause, run against every
store: the registry client on a real ``docker-registry``, an OCI layout directory, and an OCI
layout archive (closed and opened again between writing and reading)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, ImagevetError, NotFoundError, RegistryError
from imagevet.manifest import Descriptor, RawManifest
from imagevet.reference import Reference, is_valid_tag
from imagevet.registry import RegistryClient, RetryPolicy
from imagevet.store import ArchiveStore, ImageStore, LayoutStore, StoreRouter
from tests.support.images import (
    Image,
    make_image,
    make_multiarch,
    make_referrer,
    make_referrers_tag_index,
    random_blob,
)
from tests.support.layouts import REALWORLD, Layout, load_layouts
from tests.support.registry_process import RunningRegistry
from tests.support.stores import chunks, put_image, read_blob

KINDS = ["registry", "layout", "archive"]


@dataclass
class Side:
    """A store under test and how to name, reopen and damage what it holds."""

    kind: str
    make: Callable[[], ImageStore]
    base: str
    registry: RunningRegistry | None
    tmp: Path
    store: ImageStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = self.make()

    def ref(self, name: str, tag: str | None = None) -> Reference:
        text = {
            "registry": f"{self.base}-{name}",
            "layout": f"oci:{self.base}/{name}",
            "archive": f"oci-archive:{self.base}/{name}.tar",
        }[self.kind]
        return Reference.parse(text).with_tag(tag)

    async def reopen(self) -> None:
        """Close the store (an archive is written here) and open a new one."""
        await self.store.aclose()
        self.store = self.make()

    def corrupt(self, ref: Reference, digest: Digest) -> None:
        """Flip the first byte of blob ``digest`` where the store keeps it on disk."""
        if self.kind == "registry":
            assert self.registry is not None
            path, offset = self.registry.blob_path(str(digest)), 0
        elif self.kind == "layout":
            path, offset = Path(ref.repository) / "blobs" / digest.algorithm / digest.hex, 0
        else:
            path = Path(ref.repository)
            with tarfile.open(path) as tar:
                member = tar.getmember(f"blobs/{digest.algorithm}/{digest.hex}")
                offset = member.offset_data
        with open(path, "r+b") as f:
            f.seek(offset)
            first = f.read(1)
            f.seek(offset)
            f.write(bytes([first[0] ^ 0xFF]))


@pytest.fixture(params=KINDS)
async def side(
    request: pytest.FixtureRequest, tmp_path: Path, unique_repo: str
) -> AsyncIterator[Side]:
    kind = request.param
    if kind == "registry":
        reg: RunningRegistry = request.getfixturevalue("plain_registry")
        s = Side(
            kind, lambda: RegistryClient(retry=RetryPolicy.no_wait(attempts=2)),
            f"{reg.host}/{unique_repo}", reg, tmp_path,
        )
    elif kind == "layout":
        s = Side(kind, LayoutStore, str(tmp_path / "layouts"), None, tmp_path)
    else:
        s = Side(kind, ArchiveStore, str(tmp_path / "archives"), None, tmp_path)
    yield s
    await s.store.aclose()


def blob_desc(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", Digest.of(data), len(data))


async def written(side: Side, write: Callable[[ImageStore], Awaitable[None]]) -> None:
    """Run ``write`` on the store, then reopen it so the reads see what was stored."""
    await write(side.store)
    await side.reopen()


# -- manifests are exact bytes -----------------------------------------------------------------


@pytest.mark.parametrize("media_types", ["oci", "docker"])
async def test_manifests_round_trip_exact_bytes(side: Side, media_types: str) -> None:
    image = make_multiarch(seed=f"contract/{media_types}", media_types=media_types)  # type: ignore[arg-type]
    ref = side.ref("app", "v1")
    await written(side, lambda s: put_image(s, ref, image))
    store = side.store
    got = await store.get_manifest(ref)
    assert (got.data, got.digest, got.media_type) == (image.top.data, image.digest, image.top.media_type)
    for m in image.manifests:
        by_digest = await store.get_manifest(ref.repo().with_digest(m.digest))
        assert by_digest.data == m.data
        head = await store.head_manifest(ref.repo().with_digest(m.digest))
        assert head is not None and (head.digest, head.size) == (m.digest, m.size)
        assert head.media_type == m.media_type
    head = await store.head_manifest(ref)
    assert head is not None and head.digest == image.digest
    for digest, data in image.blobs.items():
        assert await store.head_blob(ref, digest) == len(data)
        assert await read_blob(store, ref, blob_desc(data)) == data


async def test_put_manifest_returns_the_digest_and_checks_a_pinned_one(side: Side) -> None:
    image = make_image(seed="contract/pin")
    ref = side.ref("pin")
    for digest, data in image.blobs.items():
        await side.store.push_blob(ref, Descriptor("x", digest, len(data)), chunks(data))
    assert await side.store.put_manifest(ref.with_tag("t"), image.top) == image.digest
    other = make_image(seed="contract/other").top
    with pytest.raises(ImagevetError):
        await side.store.put_manifest(ref.with_digest(other.digest), image.top)


def _realworld_good() -> list[tuple[str, str, Digest]]:
    if not REALWORLD.is_dir():
        raise FileNotFoundError(f"real-world image data missing: {REALWORLD}")
    return [
        (layout.name, tag, img.digest)
        for layout in load_layouts()
        for tag, img in sorted(layout.tagged("good").items())
    ]


async def test_realworld_images_round_trip(side: Side) -> None:
    """Every good tagged image of the real-world layouts, stored and read back byte for byte."""
    layouts = {layout.name: layout for layout in load_layouts()}
    good = _realworld_good()
    assert len(good) >= 5
    stored: list[tuple[Reference, RawManifest, dict[Digest, bytes]]] = []

    async def write(store: ImageStore) -> None:
        for i, (name, tag, digest) in enumerate(good):
            layout = layouts[name]
            ref = side.ref(f"rw{i}", tag if is_valid_tag(tag) else "t")
            entry = next(
                e for e in _index(layout.files)["manifests"] if e["digest"] == str(digest)
            )
            manifests, blobs = _walk(layout, digest, entry.get("mediaType", ""))
            top = manifests[-1]
            try:
                await put_image(store, ref, Image(top, manifests, blobs))
            except RegistryError as e:
                # distribution checks manifest content (a Docker list of OCI manifests, no
                # mediaType...): it may refuse what a layout keeps as bytes
                assert side.kind == "registry" and e.status == 400, e
                continue
            stored.append((ref, top, blobs))

    await written(side, write)
    assert len(stored) >= (5 if side.kind == "registry" else len(good))
    for ref, top, blobs in stored:
        got = await side.store.get_manifest(ref)
        assert got.data == top.data and got.digest == top.digest
        for data in blobs.values():
            assert await read_blob(side.store, ref, blob_desc(data)) == data


def _walk(layout: Layout, digest: Digest, declared: str) -> tuple[list[RawManifest], dict[Digest, bytes]]:
    """Every manifest (children first) and blob an image of ``layout`` reaches."""
    manifests: list[RawManifest] = []
    blobs: dict[Digest, bytes] = {}

    def walk(d: Digest, kind: str) -> None:
        data = layout.blob(d)
        assert data is not None
        m = RawManifest.from_bytes(data, _declared_or_inside(data, kind))
        for child in m.children():
            walk(child.digest, child.media_type)
        for b in m.blobs():
            blob = layout.blob(b.digest)
            assert blob is not None
            blobs[b.digest] = blob
        manifests.append(m)

    walk(digest, declared)
    return manifests, blobs


def _index(files: Mapping[str, bytes]) -> dict[str, list[dict[str, str]]]:
    doc = json.loads(files["index.json"])
    assert isinstance(doc, dict)
    return doc


def _declared_or_inside(data: bytes, declared: str) -> str:
    inside = json.loads(data).get("mediaType")
    return inside if isinstance(inside, str) and inside else declared


# -- absent ------------------------------------------------------------------------------------


async def test_head_of_absent_is_none(side: Side) -> None:
    image = make_image(seed="contract/absent")
    ref = side.ref("present", "v1")
    await written(side, lambda s: put_image(s, ref, image))
    store = side.store
    missing = Digest.of(b"never stored")
    assert await store.head_manifest(ref.with_tag("nope")) is None
    assert await store.head_manifest(ref.repo().with_digest(missing)) is None
    assert await store.head_blob(ref, missing) is None
    nowhere = side.ref("never-written", "v1")
    assert await store.head_manifest(nowhere) is None
    assert await store.head_blob(nowhere, missing) is None
    with pytest.raises(NotFoundError):
        await store.get_manifest(ref.with_tag("nope"))
    with pytest.raises(NotFoundError):
        await store.list_tags(nowhere)


# -- blobs -------------------------------------------------------------------------------------


async def test_blob_is_readable_once_pushed_and_verified(side: Side) -> None:
    data = random_blob(3 << 20, "contract/blob")
    ref = side.ref("blobs")
    await written(side, lambda s: s.push_blob(ref, blob_desc(data), chunks(data)))
    assert await side.store.head_blob(ref, Digest.of(data)) == len(data)
    assert await read_blob(side.store, ref, blob_desc(data)) == data
    side.corrupt(ref, Digest.of(data))
    got = bytearray()
    with pytest.raises(DigestMismatchError):
        async with side.store.open_blob(ref, blob_desc(data)) as reader:
            async for chunk in reader:
                got += chunk
    assert len(got) <= len(data)  # raised before the stream ended cleanly


async def test_wrong_descriptor_raises_digest_mismatch(side: Side) -> None:
    data = random_blob(10_000, "contract/desc")
    ref = side.ref("desc")
    await written(side, lambda s: s.push_blob(ref, blob_desc(data), chunks(data)))
    wrong_size = Descriptor("x", Digest.of(data), len(data) - 1)
    with pytest.raises(DigestMismatchError):
        await read_blob(side.store, ref, wrong_size)


async def test_pushed_blob_is_kept_only_when_it_matches(side: Side) -> None:
    data = random_blob(200_000, "contract/bad-push")
    ref = side.ref("bad-push")
    lie = Descriptor("x", Digest.of(b"something else"), len(data))
    with pytest.raises(DigestMismatchError):
        await side.store.push_blob(ref, lie, chunks(data))
    short = Descriptor("x", Digest.of(data), len(data) + 5)
    with pytest.raises(DigestMismatchError):
        await side.store.push_blob(ref, short, chunks(data))
    await side.reopen()
    assert await side.store.head_blob(ref, lie.digest) is None
    assert await side.store.head_blob(ref, Digest.of(data)) is None


# -- tags --------------------------------------------------------------------------------------


async def test_tags_listed_and_moved(side: Side) -> None:
    a, b = make_image(seed="contract/a"), make_image(seed="contract/b")
    ref = side.ref("tags")

    async def write(store: ImageStore) -> None:
        await put_image(store, ref.with_tag("one"), a)
        await put_image(store, ref.with_tag("two"), a)
        await put_image(store, ref.with_tag("moving"), a)
        await put_image(store, ref.with_tag("moving"), b)  # the tag moves to b
        await put_image(store, ref, make_image(seed="contract/untagged"))  # by digest only

    await written(side, write)
    tags = await side.store.list_tags(ref)
    assert sorted(tags) == ["moving", "one", "two"]
    assert all(is_valid_tag(t) for t in tags)
    moved = await side.store.head_manifest(ref.with_tag("moving"))
    assert moved is not None and moved.digest == b.digest
    kept = await side.store.head_manifest(ref.with_tag("one"))
    assert kept is not None and kept.digest == a.digest
    assert await side.store.head_manifest(ref.repo().with_digest(a.digest)) is not None


# -- referrers ---------------------------------------------------------------------------------


async def test_referrers_by_subject(side: Side) -> None:
    image = make_image(seed="contract/subject")
    sbom = make_referrer(image.top, seed="contract/sbom")
    sig = make_referrer(image.top, seed="contract/sig", artifact_type="application/vnd.example.sig")
    unrelated = make_image(seed="contract/unrelated")
    ref = side.ref("refs", "v1")

    async def write(store: ImageStore) -> None:
        await put_image(store, ref, image)
        await put_image(store, ref.with_tag("other"), unrelated)
        for r in (sbom, sig):
            await put_image(store, ref.repo(), r)
        if side.kind == "registry":  # distribution 2.8 has no referrers API: the tag schema
            tag = image.digest.tag()
            assert tag is not None
            await store.put_manifest(ref.with_tag(tag), make_referrers_tag_index([sbom, sig]))

    await written(side, write)
    found = await side.store.referrers(ref, image.digest)
    assert {d.digest for d in found} == {sbom.digest, sig.digest}
    types = {d.digest: d.artifact_type for d in found}
    assert types[sig.digest] == "application/vnd.example.sig"
    assert await side.store.referrers(ref, unrelated.digest) == []


# -- delete ------------------------------------------------------------------------------------


async def test_delete_untags_and_deletes(side: Side) -> None:
    a, b = make_image(seed="contract/del-a"), make_image(seed="contract/del-b")
    ref = side.ref("del")

    async def write(store: ImageStore) -> None:
        await put_image(store, ref.with_tag("a"), a)
        await put_image(store, ref.with_tag("b"), b)

    await written(side, write)
    store = side.store
    if side.kind == "registry":
        # distribution deletes manifests by digest only (a tag DELETE is unsupported)
        await store.delete_manifest(ref.repo().with_digest(a.digest))
    else:
        await store.delete_manifest(ref.with_tag("a"))
        assert await store.head_manifest(ref.repo().with_digest(a.digest)) is not None
        await store.delete_manifest(ref.repo().with_digest(a.digest))
    await side.reopen()
    store = side.store
    assert await store.head_manifest(ref.with_tag("a")) is None
    assert await store.head_manifest(ref.repo().with_digest(a.digest)) is None
    kept = await store.head_manifest(ref.with_tag("b"))
    assert kept is not None and kept.digest == b.digest
    assert await store.list_tags(ref) == ["b"]
    with pytest.raises(NotFoundError):
        await store.delete_manifest(ref.repo().with_digest(a.digest))


# -- aclose ------------------------------------------------------------------------------------


async def test_calls_fail_after_aclose(side: Side) -> None:
    image = make_image(seed="contract/close")
    ref = side.ref("close", "v1")
    await put_image(side.store, ref, image)
    await side.store.aclose()
    with pytest.raises((ImagevetError, RuntimeError)):
        await side.store.head_manifest(ref)
    side.store = side.make()
    head = await side.store.head_manifest(ref)
    assert head is not None and head.digest == image.digest  # what was written is kept


async def test_router_serves_every_store(side: Side) -> None:
    """The router over this store gives the same answers (one store per scheme)."""
    registry = side.store if side.kind == "registry" else None
    router = StoreRouter(registry)
    image = make_image(seed="contract/router")
    ref = side.ref("routed", "v1")
    await put_image(router, ref, image)
    assert (await router.get_manifest(ref)).data == image.top.data
    assert await router.list_tags(ref) == ["v1"]
    await router.aclose()
    side.store = side.make()
    head = await side.store.head_manifest(ref)
    assert head is not None and head.digest == image.digest

