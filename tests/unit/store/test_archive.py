"""The OCI layout archive store: reading tars in place (real-world ones too), refusing hostile
members, writing atomically on close and keeping what the archive held."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.errors import LayoutError
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.store import ArchiveStore
from imagevet.store import archive as archive_mod
from tests.support.images import make_image, make_multiarch
from tests.support.layouts import REALWORLD, load_layout
from tests.support.stores import put_image, read_blob


def arc(path: Path, tag: str | None = None) -> Reference:
    return Reference.parse(f"oci-archive:{path}" + (f":{tag}" if tag else ""))


@pytest.mark.parametrize("name", ["hello-world.tar", "hello-world-prefixed-path.tar"])
async def test_reads_realworld_archives_in_place(name: str) -> None:
    path = REALWORLD / "oras-layout" / name
    assert path.is_file(), f"real-world image data missing: {path}"
    expected = load_layout(path)
    store = ArchiveStore()
    ref = arc(path)
    tags = await store.list_tags(ref)
    assert tags == sorted({i.tag for i in expected.images if i.tag}) == ["latest"]
    manifest = await store.get_manifest(ref.with_tag("latest"))
    assert manifest.data == expected.blob(manifest.digest)
    children = manifest.children()
    assert children
    for child in children:  # one child is missing from this published layout: absent, not an error
        head = await store.head_manifest(ref.with_digest(child.digest))
        data = expected.blob(child.digest)
        assert (head.digest if head else None) == (child.digest if data is not None else None)
        if data is not None:
            for b in (await store.get_manifest(ref.with_digest(child.digest))).blobs():
                assert await read_blob(store, ref, b) == expected.blob(b.digest)
    await store.aclose()


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> None:
    data = data or {}
    with tarfile.open(path, "w") as tar:
        for m in members:
            content = data.get(m.name)
            if content is not None:
                m.size = len(content)
            tar.addfile(m, io.BytesIO(content) if content is not None else None)


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = kind
    m.linkname = link
    return m


LAYOUT_FILES = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": b'{"manifests":[]}'}


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (_member("../escape"), "points outside the archive"),
        (_member("/etc/passwd"), "points outside the archive"),
        (_member("blobs/../../x"), "points outside the archive"),
        (_member("blobs/sha256/aa", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (_member("blobs/sha256/bb", tarfile.LNKTYPE, "index.json"), "is a link"),
        (_member("dev", tarfile.CHRTYPE), "not a regular file"),
        (_member("fifo", tarfile.FIFOTYPE), "not a regular file"),
    ],
)
async def test_hostile_members_refuse_the_archive(tmp_path: Path, bad: tarfile.TarInfo, why: str) -> None:
    path = tmp_path / "bad.tar"
    _tar(path, [_member("oci-layout"), _member("index.json"), bad], LAYOUT_FILES)
    store = ArchiveStore()
    with pytest.raises(LayoutError, match=why):
        await store.list_tags(arc(path))
    with pytest.raises(LayoutError, match=why):  # and nothing is taken from it for a write
        await store.put_manifest(arc(path, "v1"), make_image(seed="arc/bad").top)
    await store.aclose()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tar"]


async def test_member_count_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_mod, "MAX_MEMBERS", 10)
    path = tmp_path / "many.tar"
    _tar(path, [_member(f"f{i}") for i in range(11)])
    with pytest.raises(LayoutError, match="more than 10 members"):
        await ArchiveStore().list_tags(arc(path))


@pytest.mark.parametrize("content", [b"not a tar at all" * 100, b""])
async def test_not_a_tar_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(content)
    with pytest.raises(LayoutError, match="not an uncompressed tar|not an OCI layout"):
        await ArchiveStore().ping(arc(path))


async def test_a_truncated_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.tar"
    _tar(path, [_member("oci-layout"), _member("index.json"), _member("blobs/sha256/aa")],
         {**LAYOUT_FILES, "blobs/sha256/aa": b"x" * 100_000})
    path.write_bytes(path.read_bytes()[:30_000])
    with pytest.raises(LayoutError, match="past the end|broken|not an uncompressed"):
        await ArchiveStore().list_tags(arc(path))


async def test_writing_keeps_what_the_archive_held(tmp_path: Path) -> None:
    path = tmp_path / "out" / "images.tar"
    a, b = make_multiarch(seed="arc/a"), make_image(seed="arc/b")
    store = ArchiveStore()
    await put_image(store, arc(path, "a"), a)
    assert not path.exists()  # written on close
    await store.aclose()
    first = path.read_bytes()

    store = ArchiveStore()
    await put_image(store, arc(path, "b"), b)
    assert path.read_bytes() == first  # unchanged until close
    await store.aclose()
    assert sorted(p.name for p in path.parent.iterdir()) == ["images.tar"]  # no temporaries

    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert names[:3] == ["blobs", "blobs/sha256", "oci-layout"] or "index.json" in names
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in index["manifests"] if "annotations" in m}
    assert tags == {"a": str(a.digest), "b": str(b.digest)}
    store = ArchiveStore()
    assert await store.list_tags(arc(path)) == ["a", "b"]
    got = await store.get_manifest(arc(path, "a"))
    assert got.data == a.top.data
    for digest, data in a.blobs.items():
        assert await read_blob(store, arc(path), Descriptor("x", digest, len(data))) == data
    await store.aclose()


async def test_same_content_gives_the_same_tar(tmp_path: Path) -> None:
    image = make_image(seed="arc/same")
    for name in ("one.tar", "two.tar"):
        store = ArchiveStore()
        await put_image(store, arc(tmp_path / name, "v1"), image)
        await store.aclose()
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()


async def test_reading_only_never_rewrites(tmp_path: Path) -> None:
    image = make_image(seed="arc/readonly")
    path = tmp_path / "r.tar"
    store = ArchiveStore()
    await put_image(store, arc(path, "v1"), image)
    await store.aclose()
    before = path.stat()
    store = ArchiveStore()
    assert await store.head_manifest(arc(path, "v1")) is not None
    await store.aclose()
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_a_corrupt_blob_inside_the_tar_is_a_digest_mismatch(tmp_path: Path) -> None:
    from imagevet.errors import DigestMismatchError

    image = make_image(seed="arc/corrupt", layer_sizes=(50_000,))
    path = tmp_path / "c.tar"
    store = ArchiveStore()
    await put_image(store, arc(path, "v1"), image)
    await store.aclose()
    layer = image.top.blobs()[-1]
    with tarfile.open(path) as tar:
        offset = tar.getmember(f"blobs/sha256/{layer.digest.hex}").offset_data
    with open(path, "r+b") as f:
        f.seek(offset + 10)
        f.write(b"\0\1\2")
    with pytest.raises(DigestMismatchError):
        await read_blob(ArchiveStore(), arc(path), layer)
    assert Digest.of(image.blobs[layer.digest]) == layer.digest
