"""The lock file: exact text, byte-stable writes, atomic replace, located read errors, diffs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagevet.digest import Digest
from imagevet.lock import (
    Lock,
    LockedImage,
    LockEntry,
    LockRecordError,
    carry_resolved_at,
    diff_locks,
    lock_path_for,
    parse_lock,
    read_lock,
    render_lock,
    write_lock,
)
from imagevet.mediatype import OCI_INDEX, OCI_MANIFEST
from imagevet.policy import PolicyErrors
from imagevet.policy.model import EntryKey
from imagevet.reference import Reference

T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 6, 1, 12, 30, 0, tzinfo=UTC)
A, B, C, S = (Digest.of(x) for x in (b"a", b"b", b"c", b"sig"))
REDIS = (Reference.parse("bitnami/redis"), Reference.parse("docker.io/acme/redis"))
NGINX = (Reference.parse("nginx"), Reference.parse("docker.io/acme/nginx"))


def image(digest: Digest, when: datetime = T0, **kw: object) -> LockedImage:
    return LockedImage(digest, kw.pop("media_type", OCI_INDEX), when, **kw)  # type: ignore[arg-type]


def sample() -> Lock:
    return Lock(
        (
            LockEntry(
                *REDIS,
                tags={
                    "7.2.4": image(A, platforms=("linux/arm64", "linux/amd64"), referrers=(S,)),
                    "7.10": image(B, media_type=OCI_MANIFEST),
                },
                digests={C: image(C, media_type=OCI_MANIFEST)},
            ),
            LockEntry(*NGINX, tags={}),
        )
    )


EXPECTED = f"""\
# imagevet.lock: the digest vetted for every selected tag of each policy entry.
# Written by `imagevet lock`; review its changes, never edit it by hand.
version: 1
images:
  - source: "docker.io/bitnami/redis"
    target: "docker.io/acme/redis"
    tags:
      "7.10":
        digest: "{B}"
        media_type: "application/vnd.oci.image.manifest.v1+json"
        platforms: []
        referrers: []
        resolved_at: "2026-05-01T10:00:00Z"
      "7.2.4":
        digest: "{A}"
        media_type: "application/vnd.oci.image.index.v1+json"
        platforms:
          - "linux/amd64"
          - "linux/arm64"
        referrers:
          - "{S}"
        resolved_at: "2026-05-01T10:00:00Z"
    digests:
      "{C}":
        media_type: "application/vnd.oci.image.manifest.v1+json"
        platforms: []
        referrers: []
        resolved_at: "2026-05-01T10:00:00Z"
  - source: "docker.io/library/nginx"
    target: "docker.io/acme/nginx"
    tags: {{}}
"""


def test_render_is_exact_and_sorted() -> None:
    assert render_lock(sample()) == EXPECTED


def test_entry_order_does_not_matter() -> None:
    lock = sample()
    assert render_lock(Lock(tuple(reversed(lock.entries)))) == EXPECTED


def test_empty_lock() -> None:
    assert render_lock(Lock()).endswith("version: 1\nimages: []\n")
    assert parse_lock(render_lock(Lock())) == Lock()


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "imagevet.lock"
    write_lock(path, sample())
    assert read_lock(path) == sample()
    assert path.read_text() == EXPECTED


def test_write_twice_gives_identical_bytes(tmp_path: Path) -> None:
    path = tmp_path / "imagevet.lock"
    write_lock(path, sample())
    first = path.read_bytes()
    write_lock(path, read_lock(path))
    assert path.read_bytes() == first


def test_write_is_atomic_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "imagevet.lock"
    path.write_text("old")
    path.chmod(0o640)
    write_lock(path, sample())
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imagevet.lock"]  # no temporary file left


def test_write_failure_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "imagevet.lock"
    path.write_text("old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_lock(path, sample())
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imagevet.lock"]


def test_missing_file_is_an_empty_lock(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "imagevet.lock") == Lock()


def test_lock_path_next_to_policy() -> None:
    assert lock_path_for(Path("conf/imagevet.yaml")) == Path("conf/imagevet.lock")


def test_resolved_at_is_normalised() -> None:
    local = datetime(2026, 5, 1, 12, 0, 0, 999, tzinfo=UTC).astimezone()
    assert image(A, local).resolved_at == T0 + timedelta(hours=2)
    with pytest.raises(ValueError, match="timezone-aware"):
        LockedImage(A, OCI_INDEX, datetime(2026, 1, 1))


def test_carry_resolved_at_keeps_unchanged_tags() -> None:
    old = sample()
    new = Lock(
        (
            LockEntry(
                *REDIS,
                tags={
                    "7.2.4": image(A, T1, platforms=("linux/amd64", "linux/arm64"), referrers=(S,)),
                    "7.10": image(C, T1),
                },
                digests={C: image(C, T1, media_type=OCI_MANIFEST)},
            ),
            LockEntry(*NGINX, tags={"1.27": image(A, T1)}),
        )
    )
    settled = carry_resolved_at(new, old)
    redis, nginx = settled.entries  # sorted by source
    assert redis.source == REDIS[0] and nginx.source == NGINX[0]
    assert redis.tags["7.2.4"].resolved_at == T0  # same digest: the old time
    assert redis.tags["7.10"].resolved_at == T1  # re-pointed: the new time
    assert redis.digests[C].resolved_at == T0
    assert settled.image(nginx.key, "1.27") == image(A, T1)  # new tag


def test_relock_without_upstream_change_is_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "imagevet.lock"
    write_lock(path, sample())
    before = path.read_bytes()
    relocked = Lock(
        tuple(
            LockEntry(
                e.source,
                e.target,
                tags={
                    t: image(
                        i.digest,
                        T1,
                        media_type=i.media_type,
                        platforms=i.platforms,
                        referrers=i.referrers,
                    )
                    for t, i in e.tags.items()
                },
                digests={d: image(d, T1, media_type=i.media_type) for d, i in e.digests.items()},
            )
            for e in sample().entries
        )
    )
    write_lock(path, carry_resolved_at(relocked, read_lock(path)))
    assert path.read_bytes() == before


# ---- damaged lock files ----------------------------------------------------------------------

BAD_FILE = [
    ("yaml", 'version: 1\nimages: [\n', 3, 1, None, "YAML syntax error"),
    ("version", "version: 2\nimages: []\n", 1, 10, "version", "expected one of 1"),
    ("images not a list", "version: 1\nimages: {}\n", 2, 9, "images", "expected a list"),
]  # fmt: skip

BAD = [
    ("unknown key", EXPECTED.replace('        resolved_at: "2026-05-01T10:00:00Z"\n      "7.2.4"', '        resolved_at: "2026-05-01T10:00:00Z"\n        bogus: 1\n      "7.2.4"'),
     14, 9, 'images[0].tags["7.10"].bogus', "unknown key 'bogus'; allowed keys: approval, digest, evidence, manifests, media_type, platforms, referrers, resolved_at"),
    ("bad digest", EXPECTED.replace(f'"{A}"', '"sha256:abc"'), 15, 17, 'images[0].tags["7.2.4"].digest', "sha256 needs 64 lowercase hex characters"),
    ("bad time", EXPECTED.replace('"2026-05-01T10:00:00Z"', '"yesterday"', 1), 13, 22, 'images[0].tags["7.10"].resolved_at', "expected a UTC time YYYY-MM-DDTHH:MM:SSZ, got 'yesterday'"),
    ("bad tag key", EXPECTED.replace('"7.10":', '"-bad":'), 8, 7, 'images[0].tags["-bad"]', "invalid tag '-bad'"),
    ("tagged source", EXPECTED.replace('"docker.io/bitnami/redis"', '"docker.io/bitnami/redis:7"'), 5, 13, "images[0].source", "expected a repository without tag or digest"),
    ("missing digest", EXPECTED.replace(f'        digest: "{B}"\n', ""), 9, 9, 'images[0].tags["7.10"].digest', "required key is missing"),
    ("duplicate entry", EXPECTED + '  - source: "docker.io/library/nginx"\n    target: "docker.io/acme/nginx"\n', 32, 5, "images[2]",
     "second entry for docker.io/library/nginx -> docker.io/acme/nginx (first: images[1], line 29:5)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "column", "field", "message"),
    [b[1:] for b in BAD_FILE],
    ids=[b[0] for b in BAD_FILE],
)
def test_damaged_lock_file(
    tmp_path: Path, text: str, line: int, column: int, field: str | None, message: str
) -> None:
    """A file that is not a lock at all is refused whole, with the place of the problem."""
    path = tmp_path / "imagevet.lock"
    path.write_text(text)
    with pytest.raises(PolicyErrors) as info:
        read_lock(path)
    (error,) = info.value.errors
    assert (error.path, error.line, error.column, error.field) == (
        str(path),
        line,
        column,
        field,
    ), str(error)
    assert message in error.message


@pytest.mark.parametrize(
    ("text", "line", "column", "field", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_damaged_lock_entry(
    tmp_path: Path, text: str, line: int, column: int, field: str | None, message: str
) -> None:
    """A damaged entry is that entry's error (file:line:column), the other entry reads."""
    path = tmp_path / "imagevet.lock"
    path.write_text(text)
    lock = read_lock(path)
    errors = [e for u in lock.unreadable for e in u.errors]
    error = next(e for e in errors if e.field == field)
    assert (error.path, error.line, error.column, error.field) == (
        str(path),
        line,
        column,
        field,
    ), str(error)
    assert message in error.message
    bad = EntryKey(*NGINX) if field == "images[2]" else EntryKey(*REDIS)
    good = EntryKey(*REDIS) if field == "images[2]" else EntryKey(*NGINX)
    assert lock.entry(bad) is None
    if field == "images[0].source":  # no readable source -> target: the error of no entry
        assert [u.key for u in lock.unreadable] == [None]
    else:
        assert error in lock.problems(bad)
    assert lock.entry(good) == sample().entry(good) and not lock.problems(good)


# ---- platform manifests of an index ---------------------------------------------------------

AMD, ARM = Digest.of(b"amd64 manifest"), Digest.of(b"arm64 manifest", "sha512")
WITH_MANIFESTS = f"""\
version: 1
images:
  - source: "docker.io/bitnami/redis"
    target: "docker.io/acme/redis"
    tags:
      "7.2.4":
        digest: "{A}"
        media_type: "application/vnd.oci.image.index.v1+json"
        platforms:
          - "linux/amd64"
          - "linux/arm64"
        manifests:
          "linux/amd64": "{AMD}"
          "linux/arm64": "{ARM}"
        referrers: []
        resolved_at: "2026-05-01T10:00:00Z"
"""


def indexed() -> Lock:
    children = (("linux/arm64", ARM), ("linux/amd64", AMD))
    return Lock((LockEntry(*REDIS, tags={"7.2.4": image(A, platforms=("linux/arm64", "linux/amd64"),
                                                         manifests=children)}),))


def test_platform_manifests_are_written_sorted_and_read_back() -> None:
    text = render_lock(indexed())
    assert text.split("version:", 1)[1] == WITH_MANIFESTS.split("version:", 1)[1]
    back = parse_lock(text)
    assert back == indexed() and not back.unreadable
    record = back.image(EntryKey(*REDIS), "7.2.4")
    assert record is not None and record.by_platform == {"linux/amd64": AMD, "linux/arm64": ARM}
    assert not record.lacks_manifests


def test_a_lock_without_platform_manifests_reads_as_before_and_is_rewritten_the_same() -> None:
    """Locks written before ``manifests`` existed: nothing lost, no error, the same bytes."""
    lock = parse_lock(EXPECTED)
    assert not lock.unreadable and lock == sample()
    record = lock.image(EntryKey(*REDIS), "7.2.4")
    assert record is not None and record.manifests == () and record.lacks_manifests
    single = lock.image(EntryKey(*REDIS), "7.10")
    assert single is not None and not single.lacks_manifests  # no platforms: nothing to fill in
    assert render_lock(lock) == EXPECTED


def test_a_record_gaining_its_platform_manifests_is_completed_not_changed() -> None:
    old = Lock((LockEntry(*REDIS, tags={"7.2.4": image(A, platforms=("linux/amd64", "linux/arm64"))}),))
    diff = diff_locks(old, indexed())
    assert not diff.has_changes and diff.needs_write
    assert [(c.tag, c.new) for c in diff.completed] == [("7.2.4", A)]
    assert [c.tag for c in diff.unchanged] == ["7.2.4"]
    assert diff.render() == "no changes (1 unchanged, 1 given their platform manifests' digests)\n"
    assert diff.to_json()["completed"] == 1
    again = diff_locks(indexed(), indexed())
    assert not again.needs_write and again.completed == ()


def test_platform_manifests_must_match_the_platforms() -> None:
    with pytest.raises(LockRecordError, match=r"one digest for each of platforms \(not in platforms: linux/s390x"):
        image(A, platforms=("linux/amd64",), manifests=(("linux/amd64", AMD), ("linux/s390x", ARM)))
    with pytest.raises(LockRecordError, match="missing: linux/arm64"):
        image(A, platforms=("linux/amd64", "linux/arm64"), manifests=(("linux/amd64", AMD),))
    with pytest.raises(LockRecordError, match="invalid platform 'Linux/amd64'"):
        image(A, platforms=("linux/amd64",), manifests=(("Linux/amd64", AMD),))
    with pytest.raises(LockRecordError, match="given twice"):
        image(A, platforms=("linux/amd64",), manifests=(("linux/amd64", AMD), ("linux/amd64", ARM)))


BAD_MANIFESTS = [
    ("bad child digest", WITH_MANIFESTS.replace(f'"{ARM}"', '"sha256:abc"'), 14, 26,
     'images[0].tags["7.2.4"].manifests["linux/arm64"]', "sha256 needs 64 lowercase hex characters"),
    ("bad child platform", WITH_MANIFESTS.replace('"linux/arm64": ', '"Linux/arm64": '), 14, 11,
     'images[0].tags["7.2.4"].manifests["Linux/arm64"]', "invalid platform 'Linux/arm64'"),
    ("child of no platform", WITH_MANIFESTS.replace('          - "linux/arm64"\n', ""), 7, 9,
     'images[0].tags["7.2.4"]', "manifests must give one digest for each of platforms (not in platforms: linux/arm64)"),
    ("not a mapping", WITH_MANIFESTS.replace(f'          "linux/amd64": "{AMD}"\n          "linux/arm64": "{ARM}"\n', '          - "x"\n'), 13, 11,
     'images[0].tags["7.2.4"].manifests', "expected a mapping of key: value, got a list"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "column", "field", "message"),
    [b[1:] for b in BAD_MANIFESTS],
    ids=[b[0] for b in BAD_MANIFESTS],
)
def test_a_damaged_platform_manifest_is_an_error_at_its_place(
    tmp_path: Path, text: str, line: int, column: int, field: str, message: str
) -> None:
    path = tmp_path / "imagevet.lock"
    path.write_text(text)
    lock = read_lock(path)
    assert lock.entry(EntryKey(*REDIS)) is None
    errors = [str(e) for e in lock.problems(EntryKey(*REDIS))]
    assert any(e.startswith(f"{path}:{line}:{column}: {field}: ") and message in e for e in errors), errors


# ---- diff ------------------------------------------------------------------------------------


def test_diff_kinds_and_rendering() -> None:
    old = sample()
    new = Lock(
        (
            LockEntry(
                *REDIS,
                tags={
                    "7.2.4": image(A, platforms=("linux/amd64", "linux/arm64"), referrers=(S, B)),
                    "7.10": image(C, media_type=OCI_MANIFEST),
                    "7.2.5": image(B),
                },
            ),
            LockEntry(*NGINX, tags={}),
        )
    )
    diff = diff_locks(old, new)
    assert [(c.tag, c.new) for c in diff.added] == [("7.2.5", B)]
    assert [(c.name, c.old) for c in diff.removed] == [(f"@{C}", C)]
    assert [(c.tag, c.old, c.new) for c in diff.repointed] == [("7.10", B, C)]
    assert [(c.tag, c.referrers_added) for c in diff.referrers_changed] == [("7.2.4", (B,))]
    assert diff.unchanged == ()
    assert diff.has_changes
    assert diff.render() == (
        "docker.io/bitnami/redis -> docker.io/acme/redis\n"
        f"  + 7.2.5  sha256:{B.hex[:12]}\n"
        f"  ~ 7.10  sha256:{B.hex[:12]} -> sha256:{C.hex[:12]}  (re-pointed upstream)\n"
        f"  * 7.2.4  sha256:{A.hex[:12]}  referrers +1 -0\n"
        f"  - @{C}  sha256:{C.hex[:12]}\n"
        "1 added, 1 removed, 1 re-pointed, 1 with new referrers, 0 unchanged\n"
    )
    assert diff.to_json()["repointed"] == [
        {
            "source": "docker.io/bitnami/redis",
            "target": "docker.io/acme/redis",
            "tag": "7.10",
            "old": str(B),
            "new": str(C),
            "referrers_added": [],
            "referrers_removed": [],
        }
    ]


def test_diff_ignores_resolved_at_and_handles_whole_entries() -> None:
    old = sample()
    later = Lock(
        tuple(
            LockEntry(
                e.source,
                e.target,
                {
                    t: image(
                        i.digest,
                        T1,
                        media_type=i.media_type,
                        platforms=i.platforms,
                        referrers=i.referrers,
                    )
                    for t, i in e.tags.items()
                },
                e.digests,
            )
            for e in old.entries
        )
    )
    diff = diff_locks(old, later)
    assert not diff.has_changes and len(diff.unchanged) == 3
    assert diff.render() == "no changes (3 unchanged)\n"
    gone = diff_locks(old, Lock())
    assert len(gone.removed) == 3 and not gone.added
    assert len(diff_locks(Lock(), old).added) == 3


_digests = st.sampled_from([A, B, C, S])
_entries = st.dictionaries(st.sampled_from(["1", "1.1", "2", "latest"]), _digests, max_size=4)


@given(_entries, _entries)
def test_diff_partitions_every_tag(
    old_tags: dict[str, Digest], new_tags: dict[str, Digest]
) -> None:
    old = Lock((LockEntry(*REDIS, tags={t: image(d) for t, d in old_tags.items()}),))
    new = Lock((LockEntry(*REDIS, tags={t: image(d) for t, d in new_tags.items()}),))
    diff = diff_locks(old, new)
    seen = [
        c.tag
        for c in (
            *diff.added,
            *diff.removed,
            *diff.repointed,
            *diff.referrers_changed,
            *diff.unchanged,
        )
    ]
    assert sorted(seen) == sorted(old_tags.keys() | new_tags.keys())  # type: ignore[type-var]
    assert diff.has_changes == (old_tags != new_tags)


# ---- the writer's own form, read fast --------------------------------------------------------


def _located_only(text: str, monkeypatch: pytest.MonkeyPatch) -> Lock:
    """``parse_lock`` with the fast reader turned off: what the located loader reads."""
    import imagevet.lock as lock_module

    with monkeypatch.context() as m:
        m.setattr(lock_module, "_canonical_data", _refuse)
        return parse_lock(text)


def _refuse(text: str) -> object:
    from imagevet.lock import _NotCanonical

    raise _NotCanonical


def _kept_as_read() -> str:
    """A lock whose unreadable entries keep odd values (nulls, booleans, numbers, lists of
    lists, escapes, characters beyond ASCII): written back as read by render_lock."""
    odd = EXPECTED + (
        '  - source: "docker.io/library/odd"\n'
        '    target: "docker.io/acme/odd"\n'
        "    tags:\n"
        '      "1.0":\n'
        "        digest: null\n"
        "        media_type: true\n"
        "        platforms:\n"
        "          - 12\n"
        "          - -3\n"
        '          - "caf\\u00e9 \\"q\\" \\\\ \\t"\n'
        "        referrers: {}\n"
        '        resolved_at: "\\U0001f600"\n'
    )
    return render_lock(parse_lock(odd))


def test_a_valid_lock_is_read_without_the_located_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``imagevet lock`` wrote is read by the fast reader; the located loader (ruamel's
    pure-Python round trip: 10x the CPU) is never asked."""
    import imagevet.lock as lock_module

    def never(text: str, *, path: str) -> object:
        raise AssertionError("the located loader read a valid lock")

    monkeypatch.setattr(lock_module, "parse_yaml", never)
    assert parse_lock(EXPECTED) == sample()
    assert parse_lock(render_lock(Lock())) == Lock()


def test_the_fast_reader_reads_what_the_located_loader_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from imagevet.lock import _canonical_data
    from imagevet.policy.located import parse_yaml

    kept = _kept_as_read()
    assert "\\U0001f600" in kept and "caf\\u00e9" in kept  # written back in the writer's escapes
    for text in (EXPECTED, kept, render_lock(Lock()), EXPECTED.replace("\n", "\n\n")):
        try:
            data = _canonical_data(text)
        except Exception as e:  # \U escapes are left to the located loader
            assert type(e).__name__ == "_NotCanonical" and "\\U" in text
        else:
            assert data == parse_yaml(text, path="imagevet.lock").data
        assert parse_lock(text) == _located_only(text, monkeypatch)
    odd = parse_lock(kept)
    assert [u.key for u in odd.unreadable] == [EntryKey(Reference.parse("library/odd"), Reference.parse("acme/odd"))]
    assert odd.unreadable[0].data["tags"]["1.0"]["platforms"] == [12, -3, 'café "q" \\ \t']


NOT_CANONICAL = [
    ("anchor and alias", EXPECTED.replace('    tags: {}\n', '    tags: &t {}\n    digests: *t\n')),
    ("flow mapping", EXPECTED.replace("    tags: {}\n", '    tags: {"1": {digest: x}}\n')),
    ("comment after a value", EXPECTED.replace('"docker.io/acme/nginx"', '"docker.io/acme/nginx"  # mirror')),
    ("plain scalar", EXPECTED.replace('"docker.io/acme/nginx"', "docker.io/acme/nginx")),
    ("single quotes", EXPECTED.replace('"docker.io/acme/nginx"', "'docker.io/acme/nginx'")),
    ("indentless sequence", EXPECTED.replace("images:\n  - source", "images:\n- source").replace("\n    ", "\n  ")),
    ("CRLF", EXPECTED.replace("\n", "\r\n")),
    ("document marker", "---\n" + EXPECTED),
    ("float", EXPECTED.replace("version: 1", "version: 1.0")),
    ("surrogate pair", EXPECTED.replace('"docker.io/acme/nginx"', '"docker.io/acme/ng\\ud83d\\ude00"')),
    ("plain null key", EXPECTED.replace("    tags: {}\n", "    tags:\n      null: {}\n")),
    ("plain true key", EXPECTED.replace("    tags: {}\n", "    tags:\n      true: {}\n")),
]  # fmt: skip


@pytest.mark.parametrize("text", [n[1] for n in NOT_CANONICAL], ids=[n[0] for n in NOT_CANONICAL])
def test_any_other_yaml_is_read_by_the_located_loader_alike(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock edited into another YAML style reads as before (or fails as before): the fast
    reader declines it, the located loader reads it."""
    from imagevet.lock import _canonical_data, _NotCanonical

    with pytest.raises(_NotCanonical):
        _canonical_data(text)

    def outcome(read: object) -> object:
        try:
            return read()  # type: ignore[operator]
        except PolicyErrors as e:
            return [str(x) for x in e.errors]

    assert outcome(lambda: parse_lock(text)) == outcome(lambda: _located_only(text, monkeypatch))


def test_a_lock_deeper_than_the_fast_reader_follows_is_bounded_by_the_located_loader() -> None:
    """An unreadable entry nested 100 levels deep in the writer's own block form: the fast
    reader stops at its depth; the located loader refuses it past its own, with the line."""
    from imagevet.lock import _CANONICAL_DEPTH, _canonical_data, _NotCanonical

    lines = ["version: 1", "images:", '  - source: "docker.io/library/deep"', "    x:"]
    lines += [f"{'  ' * (3 + i)}k{chr(97 + i % 26)}:" for i in range(100)]
    lines.append(f"{'  ' * 103}leaf: 1")
    text = "\n".join(lines) + "\n"
    assert _CANONICAL_DEPTH < 100
    with pytest.raises(_NotCanonical):
        _canonical_data(text)
    with pytest.raises(PolicyErrors) as info:
        parse_lock(text)
    assert any("nested more than" in e.message and e.line for e in info.value.errors), info.value


def test_a_duplicate_key_is_reported_with_both_places() -> None:
    text = EXPECTED.replace('    target: "docker.io/acme/nginx"\n', '    target: "docker.io/acme/nginx"\n    target: "docker.io/acme/other"\n')
    with pytest.raises(PolicyErrors) as info:
        parse_lock(text)
    assert [(e.line, e.column) for e in info.value.errors] == [(31, 5)]
    assert "duplicate key 'target' (first at line 30:5)" in info.value.errors[0].message
