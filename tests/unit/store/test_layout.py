"""The OCI layout store on disk: the files it writes (image-spec image-layout.md), what it does
with absent and hostile layouts, atomic and concurrent writes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, LayoutError, NotFoundError
from imagevet.manifest import Descriptor, RawManifest
from imagevet.reference import Reference
from imagevet.store import LayoutStore
from imagevet.store.layout import MAX_INDEX_ENTRIES, REF_NAME
from tests.support.images import make_image, make_multiarch, random_blob
from tests.support.stores import chunks, put_image, read_blob


def desc(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", Digest.of(data), len(data))


def oci(path: Path, tag: str | None = None) -> Reference:
    return Reference.parse(f"oci:{path}" + (f":{tag}" if tag else ""))


def index_of(path: Path) -> dict[str, object]:
    doc = json.loads((path / "index.json").read_bytes())
    assert isinstance(doc, dict)
    return doc


# -- the files, as image-layout.md says ----------------------------------------------------------


async def test_writes_the_spec_layout(tmp_path: Path) -> None:
    root = tmp_path / "out" / "app"
    image = make_multiarch(seed="layout/spec")
    store = LayoutStore()
    await put_image(store, oci(root, "v1"), image)
    await store.aclose()
    assert json.loads((root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = index_of(root)
    assert index["schemaVersion"] == 2 and index["mediaType"] == mediatype.OCI_INDEX
    manifests = index["manifests"]
    assert isinstance(manifests, list)
    tagged = [m for m in manifests if m.get("annotations", {}).get(REF_NAME) == "v1"]
    assert tagged == [
        {
            "mediaType": image.top.media_type,
            "digest": str(image.digest),
            "size": image.top.size,
            "annotations": {REF_NAME: "v1"},
        }
    ]
    # the children stored by digest are kept as entries without a name
    untagged = {m["digest"] for m in manifests if "annotations" not in m}
    assert untagged == {str(m.digest) for m in image.manifests if m is not image.top}
    for m in image.manifests:
        assert (root / "blobs" / "sha256" / m.digest.hex).read_bytes() == m.data
    for digest, data in image.blobs.items():
        assert (root / "blobs" / "sha256" / digest.hex).read_bytes() == data
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    for path in (root / "index.json", root / "blobs" / "sha256" / image.digest.hex):
        assert path.stat().st_mode & 0o777 == 0o644  # a server of the layout can read it


async def test_a_moved_tag_replaces_its_entry(tmp_path: Path) -> None:
    a, b = make_image(seed="layout/a"), make_image(seed="layout/b")
    store = LayoutStore()
    await put_image(store, oci(tmp_path, "t"), a)
    await put_image(store, oci(tmp_path, "t"), b)
    names = [m.get("annotations", {}).get(REF_NAME) for m in index_of(tmp_path)["manifests"]]  # type: ignore[union-attr]
    assert names.count("t") == 1
    head = await LayoutStore().head_manifest(oci(tmp_path, "t"))
    assert head is not None and head.digest == b.digest


async def test_no_tag_means_latest_or_the_only_image(tmp_path: Path) -> None:
    a, b = make_image(seed="layout/only"), make_image(seed="layout/second")
    store = LayoutStore()
    await put_image(store, oci(tmp_path, "v1"), a)
    head = await store.head_manifest(oci(tmp_path))
    assert head is not None and head.digest == a.digest  # the only image
    await put_image(store, oci(tmp_path, "latest"), b)
    head = await store.head_manifest(oci(tmp_path))
    assert head is not None and head.digest == b.digest


async def test_sha512_blobs(tmp_path: Path) -> None:
    data = random_blob(5000, "layout/512")
    d = Descriptor("x", Digest.of(data, "sha512"), len(data))
    store = LayoutStore()
    await store.push_blob(oci(tmp_path), d, chunks(data))
    assert (tmp_path / "blobs" / "sha512" / d.digest.hex).read_bytes() == data
    assert await read_blob(store, oci(tmp_path), d) == data


# -- absent --------------------------------------------------------------------------------------


async def test_reading_a_missing_layout_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "nothing"
    store = LayoutStore()
    ref = oci(root, "v1")
    assert await store.head_manifest(ref) is None
    assert await store.head_blob(ref, Digest.of(b"x")) is None
    assert await store.referrers(ref, Digest.of(b"x")) == []
    with pytest.raises(NotFoundError, match="no OCI layout"):
        await store.list_tags(ref)
    with pytest.raises(NotFoundError):
        await store.get_manifest(ref)
    with pytest.raises(NotFoundError):
        await read_blob(store, ref, desc(b"x"))
    await store.ping(ref)  # creatable
    assert not root.exists()
    (tmp_path / "empty").mkdir()
    assert await store.head_manifest(oci(tmp_path / "empty", "v1")) is None


async def test_ping_refuses_what_cannot_be_a_layout(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(LayoutError, match="not a writable directory|not a directory"):
        await LayoutStore().ping(oci(tmp_path / "file" / "sub"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "oci-layout").write_text('{"imageLayoutVersion": "9.9.9"}')
    with pytest.raises(LayoutError, match="imageLayoutVersion"):
        await LayoutStore().ping(oci(tmp_path / "bad"))


# -- hostile layouts -----------------------------------------------------------------------------


def _layout(root: Path, index: bytes) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_bytes(index)


@pytest.mark.parametrize(
    ("index", "why"),
    [
        (b"{not json", "is not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"manifests": {}}', "'manifests' is not a list"),
        (b'{"manifests": [{"digest": "sha256:zz", "size": 1}]}', r"manifests\[0\]: invalid digest"),
        (b'{"manifests": [{"digest": "sha256:' + b"a" * 64 + b'", "size": -1}]}', "invalid size"),
        (b"[" * 100_000 + b"]" * 100_000, "is not JSON|not a JSON object"),
        (b'{"manifests": [{"digest": "sha256:../../../etc/passwd", "size": 1}]}', "invalid digest"),
        (b'{"manifests": [{"digest": "sha256:' + b"a" * 64 + b'", "size": 1, "annotations": [1]}]}', "manifests"),
        (b'{"manifests": [{"digest": "md5:' + b"a" * 32 + b'", "size": 1}]}', "unsupported algorithm"),
    ],
)
async def test_invalid_index_is_a_clear_error(tmp_path: Path, index: bytes, why: str) -> None:
    _layout(tmp_path, index)
    store = LayoutStore()
    with pytest.raises(LayoutError, match=why) as info:
        await store.head_manifest(oci(tmp_path, "v1"))
    assert "index.json" in str(info.value)
    with pytest.raises(LayoutError):
        await store.list_tags(oci(tmp_path))


async def test_index_bounds(tmp_path: Path) -> None:
    _layout(tmp_path / "big", b"")
    with open(tmp_path / "big" / "index.json", "wb") as f:
        f.truncate(33 << 20)  # sparse: not read, refused by its size
    with pytest.raises(LayoutError, match="larger than 32 MiB"):
        await LayoutStore().list_tags(oci(tmp_path / "big"))
    entry = b'{"digest":"sha256:' + b"a" * 64 + b'","size":1}'
    many = b'{"manifests":[' + b",".join([entry] * (MAX_INDEX_ENTRIES + 1)) + b"]}"
    _layout(tmp_path / "many", many)
    with pytest.raises(LayoutError, match=f"at most {MAX_INDEX_ENTRIES}"):
        await LayoutStore().list_tags(oci(tmp_path / "many"))


async def test_a_symlink_out_of_the_layout_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside data")
    root = tmp_path / "layout"
    image = make_image(seed="layout/symlink")
    await put_image(LayoutStore(), oci(root, "v1"), image)
    config = image.top.blobs()[0]
    path = root / "blobs" / "sha256" / config.digest.hex
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(LayoutError, match="outside the layout"):
        await read_blob(LayoutStore(), oci(root), config)
    with pytest.raises(LayoutError, match="outside the layout"):
        await LayoutStore().head_blob(oci(root), config.digest)


async def test_an_index_symlinked_out_of_the_layout_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"manifests": []}')
    root = tmp_path / "layout"
    _layout(root, b"")
    (root / "index.json").unlink()
    (root / "index.json").symlink_to(outside)
    with pytest.raises(LayoutError, match="outside the layout"):
        await LayoutStore().list_tags(oci(root))


async def test_a_symlinked_blobs_directory_is_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sha256").mkdir(parents=True)
    root = tmp_path / "layout"
    _layout(root, b'{"schemaVersion":2,"manifests":[]}')
    (root / "blobs").symlink_to(outside)
    data = b"payload"
    with pytest.raises(LayoutError, match="refusing to write"):
        await LayoutStore().push_blob(oci(root), desc(data), chunks(data))
    assert list((outside / "sha256").iterdir()) == []
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


async def test_a_fifo_blob_is_refused_without_hanging(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    _layout(root, b'{"schemaVersion":2,"manifests":[]}')
    (root / "blobs" / "sha256").mkdir(parents=True)
    d = desc(b"fifo")
    os.mkfifo(root / "blobs" / "sha256" / d.digest.hex)
    with pytest.raises(LayoutError, match="not a regular file"):
        await asyncio.wait_for(read_blob(LayoutStore(), oci(root), d), 5)


async def test_an_absurd_descriptor_size_is_refused_before_reading(tmp_path: Path) -> None:
    data = random_blob(1000, "layout/absurd")
    store = LayoutStore()
    await store.push_blob(oci(tmp_path), desc(data), chunks(data))
    with pytest.raises(DigestMismatchError, match=str(1 << 62)):
        await read_blob(store, oci(tmp_path), Descriptor("x", Digest.of(data), 1 << 62))


async def test_a_manifest_too_large_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    big = b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","x":"' + b"a" * (5 << 20) + b'"}'
    d = Digest.of(big)
    _layout(
        root,
        json.dumps({"manifests": [{"mediaType": mediatype.OCI_MANIFEST, "digest": str(d), "size": len(big),
                                   "annotations": {REF_NAME: "v1"}}]}).encode(),
    )
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "blobs" / "sha256" / d.hex).write_bytes(big)
    with pytest.raises(LayoutError, match="manifest larger than 4 MiB"):
        await LayoutStore().get_manifest(oci(root, "v1"))


async def test_a_corrupt_manifest_on_disk_is_a_digest_mismatch(tmp_path: Path) -> None:
    image = make_image(seed="layout/corrupt-manifest")
    await put_image(LayoutStore(), oci(tmp_path, "v1"), image)
    path = tmp_path / "blobs" / "sha256" / image.digest.hex
    path.write_bytes(path.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    with pytest.raises(DigestMismatchError):
        await LayoutStore().get_manifest(oci(tmp_path, "v1"))


async def test_full_reference_names_are_not_listed_as_tags(tmp_path: Path) -> None:
    image = make_image(seed="layout/refname")
    store = LayoutStore()
    await put_image(store, oci(tmp_path, "v1"), image)
    doc = index_of(tmp_path)
    entries = doc["manifests"]
    assert isinstance(entries, list)
    entries.append({**entries[-1], "annotations": {REF_NAME: "example.com/app:v2"}})
    (tmp_path / "index.json").write_text(json.dumps(doc))
    assert await LayoutStore().list_tags(oci(tmp_path)) == ["v1"]


# -- atomic and concurrent writes ------------------------------------------------------------------


async def test_a_failed_push_leaves_no_blob_and_no_temporary_file(tmp_path: Path) -> None:
    data = random_blob(3 << 20, "layout/fail")

    async def broken() -> AsyncIterator[bytes]:
        yield data[: 2 << 20]
        raise ConnectionResetError("source went away")

    store = LayoutStore()
    with pytest.raises(ConnectionResetError):
        await store.push_blob(oci(tmp_path), desc(data), broken())
    assert not (tmp_path / "blobs" / "sha256" / Digest.of(data).hex).exists()
    assert await store.head_blob(oci(tmp_path), Digest.of(data)) is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


async def test_concurrent_tasks_keep_every_tag(tmp_path: Path) -> None:
    image = make_image(seed="layout/tasks")
    store = LayoutStore()
    await put_image(store, oci(tmp_path, "base"), image)
    await asyncio.gather(*(store.put_manifest(oci(tmp_path, f"t{i}"), image.top) for i in range(40)))
    assert await LayoutStore().list_tags(oci(tmp_path)) == sorted(["base", *(f"t{i}" for i in range(40))])


def _tag_many(root: str, prefix: str, data: bytes) -> None:
    async def run() -> None:
        store = LayoutStore()
        raw = RawManifest.from_bytes(data)
        for i in range(25):
            await store.put_manifest(Reference.parse(f"oci:{root}:{prefix}{i}"), raw)

    asyncio.run(run())


async def test_two_processes_never_lose_each_others_tags(tmp_path: Path) -> None:
    image = make_image(seed="layout/procs")
    await put_image(LayoutStore(), oci(tmp_path, "base"), image)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_tag_many, args=(str(tmp_path), p, image.top.data)) for p in ("a", "b")
    ]
    for p in procs:
        p.start()
    for p in procs:
        await asyncio.to_thread(p.join, 60)
        assert p.exitcode == 0
    tags = await LayoutStore().list_tags(oci(tmp_path))
    assert len(tags) == 51 and {f"a{i}" for i in range(25)} <= set(tags)


async def test_mount_between_layouts_links_the_blob(tmp_path: Path) -> None:
    data = random_blob(100_000, "layout/mount")
    store = LayoutStore()
    await store.push_blob(oci(tmp_path / "a"), desc(data), chunks(data))
    assert await store.mount_blob(oci(tmp_path / "b"), Digest.of(data), oci(tmp_path / "a"))
    assert await read_blob(store, oci(tmp_path / "b"), desc(data)) == data
    missing = Digest.of(b"not there")
    assert not await store.mount_blob(oci(tmp_path / "b"), missing, oci(tmp_path / "a"))


async def test_delete_by_digest_removes_the_manifest_blob_only(tmp_path: Path) -> None:
    image = make_image(seed="layout/delete")
    store = LayoutStore()
    await put_image(store, oci(tmp_path, "v1"), image)
    await store.delete_manifest(oci(tmp_path).with_digest(image.digest))
    assert not (tmp_path / "blobs" / "sha256" / image.digest.hex).exists()
    for digest in image.blobs:
        assert (tmp_path / "blobs" / "sha256" / digest.hex).exists()
    with pytest.raises(NotFoundError):
        await store.delete_manifest(oci(tmp_path).with_digest(image.digest))
    with pytest.raises(NotFoundError):
        await store.delete_manifest(oci(tmp_path, "never"))
