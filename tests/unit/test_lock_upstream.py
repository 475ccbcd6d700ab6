"""What the lock writer writes from upstream values, the lock reader reads back, equal; and one
unreadable lock entry is that entry's error, never the whole file's."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from imagevet.digest import Digest
from imagevet.errors import ImagevetError
from imagevet.lock import (
    Lock,
    LockedImage,
    LockEntry,
    UnreadableEntry,
    parse_lock,
    read_lock,
    render_lock,
    write_lock,
)
from imagevet.manifest import Platform, RawManifest
from imagevet.mediatype import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from imagevet.policy.model import EntryKey
from imagevet.reference import Reference

NOW = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
APP = (Reference.parse("registry.example/up/app"), Reference.parse("docker.io/acme/app"))
DB = (Reference.parse("registry.example/up/db"), Reference.parse("docker.io/acme/db"))
# an oracle independent of the code under test: what a valid lock value looks like
_PART = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MEDIA = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


# ---- platforms as upstream writes them ----------------------------------------------------------


def test_platform_case_is_normalised_as_containerd_does() -> None:
    assert Platform.from_json({"os": "Linux", "architecture": "AMD64"}) == Platform("linux", "amd64")
    assert Platform.from_json({"os": " linux ", "architecture": "arm", "variant": "V7"}) == Platform(
        "linux", "arm", "v7"
    )
    assert Platform.from_json({"os": "linux", "architecture": "arm64", "variant": ""}) == Platform(
        "linux", "arm64"
    )


def _index(*platforms: dict[str, Any], media_type: str = OCI_INDEX) -> RawManifest:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": str(Digest.of(json.dumps(p).encode())), "size": 9,
             "platform": p}
            for p in platforms
        ],
    }
    return RawManifest.from_bytes(json.dumps(doc).encode(), media_type)


def test_index_platforms_are_normalised_and_invalid_ones_left_out() -> None:
    index = _index(
        {"os": "Linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "ARM64", "variant": "v8", "os.version": "10.0.1 x"},
        {"os": "unknown", "architecture": "unknown"},
        {"os": "lin ux", "architecture": "amd64"},
        {"os": "linux", "architecture": "amd64\x1b[2J"},
        {"os": "ｌｉｎｕｘ", "architecture": "amd64"},
        {"os": "linux", "architecture": ""},
        {"os": 5, "architecture": "amd64"},
        {"os": "linux", "architecture": "a" * 65},
    )
    assert index.platforms() == ["linux/amd64", "linux/arm64/v8"]


def test_an_index_with_an_odd_case_platform_locks_and_reads_back() -> None:
    """The report: ``"os": "Linux"`` was written as ``Linux/amd64``, which the reader refused."""
    index = _index({"os": "Linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"})
    image = LockedImage(index.digest, index.media_type, NOW, tuple(index.platforms()))
    lock = Lock((LockEntry(*APP, tags={"1.0": image}),))
    back = parse_lock(render_lock(lock))
    assert back == lock and not back.unreadable
    assert back.image(EntryKey(*APP), "1.0") == image
    assert image.platforms == ("linux/amd64", "linux/arm64")


# ---- the property --------------------------------------------------------------------------------

_words = st.sampled_from(["linux", "windows", "amd64", "arm64", "arm", "s390x", "v7", "v8", "386", "ppc64le"])
_odd_case = _words.flatmap(
    lambda w: st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in w)).map("".join)
)
_anything = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    st.sampled_from(["", " ", "\t", "\n", "\x00", "\x1b[31m", "lin ux", "a/b", "İ", "\u212a8s",
                     "\u2028", "\ud800", "x" * 300]),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
)
_field = st.one_of(_odd_case, _odd_case.map(lambda w: f" {w}\t"), _anything)
_platform = st.fixed_dictionaries(
    {"os": _field, "architecture": _field},
    optional={
        "variant": _field,
        "os.version": _anything,
        "os.features": st.lists(_anything, max_size=3),
        "features": st.lists(_anything, max_size=3),
    },
)
_annotations = st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3)
_media = st.one_of(
    st.sampled_from([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, "application/vnd.example+json"]),
    st.sampled_from([OCI_INDEX, DOCKER_MANIFEST_LIST, "application/vnd.Example.Index+json"]),
    st.text(max_size=30),
    st.sampled_from(["", " ", "application/json; charset=utf-8", "text/plain\n", "a" * 300 + "/b"]),
)
_valid_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_tags = st.one_of(
    st.lists(_valid_tag, min_size=1, max_size=4, unique=True),
    st.lists(
        st.one_of(
            _valid_tag,
            st.text(max_size=12),
            st.sampled_from(["v1\n", "-v1", ".v1", "a" * 129, "latest ", "ü", "7.10", "1e3", "null"]),
        ),
        min_size=1,
        max_size=4,
        unique=True,
    ),
)


def _expected_platform(p: dict[str, Any]) -> str | None:
    """Independently: the platform a valid record lists for one child (ASCII-lowercased,
    trimmed, valid), None for none."""
    parts = []
    for key in ("os", "architecture", "variant"):
        value = p.get(key)
        if key == "variant" and (value is None or (isinstance(value, str) and not value.strip(" \t\r\n\f\v"))):
            continue
        if not isinstance(value, str):
            return None
        value = value.strip(" \t\r\n\f\v")
        value = value.lower() if value.isascii() else value
        if not _PART.fullmatch(value):
            return None
        parts.append(value)
    return "/".join(parts) if parts[0] != "unknown" else None


def _expected_platforms(children: list[dict[str, Any]]) -> set[str]:
    """Independently: the platforms a valid record lists."""
    return {p for p in map(_expected_platform, children) if p is not None}


def _expected_manifests(children: list[dict[str, Any]], digests: list[Digest]) -> dict[str, Digest]:
    """Independently: each listed platform -> the digest of the first child of that platform."""
    out: dict[str, Digest] = {}
    for child, digest in zip(children, digests, strict=True):
        platform = _expected_platform(child)
        if platform is not None and platform not in out:
            out[platform] = digest
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    children=st.lists(st.one_of(_platform, st.sampled_from([
        {"os": "linux", "architecture": "amd64"}, {"os": "Linux", "architecture": "AMD64"},
        {"os": "unknown", "architecture": "unknown"},
    ])), max_size=5),
    index_annotations=_annotations,
    media_type=_media,
    tags=_tags,
    algorithm=st.sampled_from(["sha256", "sha512"]),
    referrers=st.lists(st.binary(max_size=4), max_size=2),
)
def test_what_the_writer_writes_the_reader_reads(
    children: list[dict[str, Any]],
    index_annotations: dict[str, str],
    media_type: str,
    tags: list[str],
    algorithm: str,
    referrers: list[bytes],
) -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": str(Digest.of(str(i).encode(), algorithm)),
             "size": 1, "platform": p, "annotations": index_annotations}
            for i, p in enumerate(children)
        ],
        "annotations": index_annotations,
    }
    data = json.dumps(doc).encode()
    valid_media = _MEDIA.fullmatch(media_type) is not None
    valid_tags = all(_TAG.fullmatch(t) for t in tags)
    # the way `imagevet lock` (resolve) and `sync` in follow mode (follow_lock) build a record
    try:
        manifest = RawManifest.from_bytes(data, media_type or None, algorithm=algorithm)
        image = LockedImage(
            manifest.digest, manifest.media_type, NOW, tuple(manifest.platforms()),
            tuple(Digest.of(r, algorithm) for r in referrers),
            tuple(manifest.platform_manifests().items()),
        )
        lock = Lock((
            LockEntry(*APP, tags={t: image for t in tags}, digests={image.digest: image}),
            LockEntry(*DB, tags={"1": LockedImage(Digest.of(b"db"), OCI_MANIFEST, NOW)}),
        ))
    except ImagevetError:
        # refused on the way in, with a typed error, and only for a value a lock cannot hold
        assert not (valid_media and valid_tags)
        return
    assert valid_media and valid_tags
    event("written")
    is_manifest = media_type in (OCI_MANIFEST, DOCKER_MANIFEST)  # an index's platforms only
    assert set(image.platforms) == (set() if is_manifest else _expected_platforms(children))
    child_digests = [Digest.of(str(i).encode(), algorithm) for i in range(len(children))]
    assert image.by_platform == ({} if is_manifest else _expected_manifests(children, child_digests))
    if len(children) > len(image.manifests) and image.manifests:
        event("two children of one platform, or one left out")

    back = parse_lock(render_lock(lock))
    assert not back.unreadable, [str(e) for u in back.unreadable for e in u.errors]
    assert back == lock
    assert render_lock(back) == render_lock(lock)


# ---- one unreadable entry ------------------------------------------------------------------------

GOOD_DIGEST = Digest.of(b"good")
POISONED = f"""\
version: 1
images:
  - source: "registry.example/up/app"
    target: "docker.io/acme/app"
    tags:
      "1.0":
        digest: "{Digest.of(b"app")}"
        media_type: "application/vnd.oci.image.index.v1+json"
        platforms:
          - "Linux/amd64"
        referrers: []
        resolved_at: "2026-05-01T10:00:00Z"
  - source: "registry.example/up/db"
    target: "docker.io/acme/db"
    tags:
      "1":
        digest: "{GOOD_DIGEST}"
        media_type: "application/vnd.oci.image.manifest.v1+json"
        platforms: []
        referrers: []
        resolved_at: "2026-05-01T10:00:00Z"
"""


def test_an_unreadable_entry_is_that_entrys_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "imagevet.lock"
    path.write_text(POISONED)
    lock = read_lock(path)
    db, app = EntryKey(*DB), EntryKey(*APP)
    assert lock.image(db, "1") == LockedImage(GOOD_DIGEST, OCI_MANIFEST, NOW)
    assert lock.entry(app) is None
    (bad,) = lock.unreadable
    assert bad.key == app
    (error,) = lock.problems(app)
    assert (error.path, error.line, error.column) == (str(path), 10, 13)
    assert error.field == 'images[0].tags["1.0"].platforms[0]'
    assert "Linux/amd64" in error.message and "lowercase" in error.message
    assert lock.problems(db) == ()


def test_an_unreadable_entry_is_written_back_as_it_was(tmp_path: Path) -> None:
    """Re-writing the lock (another entry changed) keeps the unreadable entry, byte for byte."""
    path = tmp_path / "imagevet.lock"
    header = render_lock(Lock()).split("version:")[0]
    path.write_text(header + POISONED)
    lock = read_lock(path)
    write_lock(path, lock)
    assert path.read_text() == header + POISONED
    changed = lock.with_entry(
        LockEntry(*DB, tags={"2": LockedImage(Digest.of(b"db2"), OCI_MANIFEST, NOW)})
    )
    write_lock(path, changed)
    again = read_lock(path)
    assert again == changed
    assert [u.key for u in again.unreadable] == [EntryKey(*APP)]
    assert POISONED.split("  - source: \"registry.example/up/db\"")[0] in path.read_text()


def test_a_readable_record_replaces_the_unreadable_one() -> None:
    lock = parse_lock(POISONED)
    fixed = LockEntry(*APP, tags={"1.0": LockedImage(Digest.of(b"app"), OCI_INDEX, NOW, ("linux/amd64",))})
    repaired = lock.with_entry(fixed)
    assert not repaired.unreadable and repaired.entry(EntryKey(*APP)) == fixed
    assert parse_lock(render_lock(repaired)) == repaired


def test_an_entry_without_a_readable_key_is_kept_and_reported() -> None:
    text = POISONED.replace('"registry.example/up/app"', '"Registry.example/UP/app:tag@x"')
    lock = parse_lock(text, path="l.lock")
    (bad,) = lock.unreadable
    assert bad.key is None
    assert any(e.field == "images[0].source" and e.line == 3 for e in bad.errors)
    assert lock.entry(EntryKey(*DB)) is not None
    assert parse_lock(render_lock(lock)) == lock
    assert lock.only([EntryKey(*DB)]).unreadable == lock.unreadable


def test_odd_values_in_an_unreadable_entry_survive_a_rewrite() -> None:
    text = (
        "version: 1\nimages:\n"
        '  - source: "registry.example/up/app"\n'
        '    target: "docker.io/acme/app"\n'
        "    tags:\n"
        '      "x": ["\\U0001F600 \\u2028 \\x00", 1.5, 7, true, null, {}, [], {"a": {"b": [[1]]}}]\n'
        "    extra: &a {k: v}\n"
        "    more: *a\n"
    )
    lock = parse_lock(text)
    (bad,) = lock.unreadable
    assert bad.key == EntryKey(*APP)
    rendered = render_lock(lock)
    assert parse_lock(rendered) == lock
    assert render_lock(parse_lock(rendered)) == rendered


_yaml_data = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                                max_size=8), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    item=st.one_of(
        _yaml_data,
        st.dictionaries(st.sampled_from(["source", "target", "tags", "digests", "x"]), _yaml_data),
        _yaml_data.map(lambda d: {"source": "registry.example/up/app", "target": "docker.io/acme/app", "tags": d}),
    )
)
def test_any_damaged_entry_is_reported_and_kept_never_the_whole_file(item: Any) -> None:
    good = Lock((LockEntry(*DB, tags={"1": LockedImage(Digest.of(b"db"), OCI_MANIFEST, NOW)}),))
    text = render_lock(good).replace("images:\n", "images:\n" + "\n".join(
        render_lock(Lock(unreadable=(UnreadableEntry(None, item),))).split("images:\n", 1)[1].splitlines()
    ) + "\n", 1)
    lock = parse_lock(text)  # never raises for one damaged entry
    assert lock.entry(EntryKey(*DB)) == good.entry(EntryKey(*DB))
    again = parse_lock(render_lock(lock))
    assert again == lock
    assert render_lock(again) == render_lock(lock)
