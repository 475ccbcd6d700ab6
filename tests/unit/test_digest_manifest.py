"""Digests, raw manifests and rate-limit headers: the pure value types."""

from __future__ import annotations

import hashlib
import json

import pytest

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, InvalidDigestError
from imagevet.manifest import Descriptor, ManifestFormatError, Platform, RawManifest
from imagevet.ratelimit import RateLimit


def test_digest_parse_and_compute() -> None:
    d = Digest.of(b"hello")
    assert str(d) == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert Digest.parse(str(d)) == d
    d512 = Digest.of(b"hello", "sha512")
    assert Digest.parse(str(d512)) == d512


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("sha256", "expected <algorithm>:<hex>"),
        ("sha256:abc", "64 lowercase hex"),
        ("sha256:" + "G" * 64, "64 lowercase hex"),
        ("sha512:" + "a" * 64, "128 lowercase hex"),
        ("md5:" + "a" * 32, "unsupported algorithm"),
    ],
)
def test_digest_invalid(text: str, why: str) -> None:
    with pytest.raises(InvalidDigestError, match=why):
        Digest.parse(text)


def test_verifier_checks_digest_and_size() -> None:
    data = b"x" * 1000
    v = Digest.of(data).verifier()
    v.update(data[:500])
    v.update(data[500:])
    v.verify("blob", 1000)
    bad = Digest.of(data).verifier()
    bad.update(data[:-1] + b"y")
    with pytest.raises(DigestMismatchError, match="digest mismatch"):
        bad.verify("blob", 1000)
    short = Digest.of(data).verifier()
    short.update(data[:10])
    with pytest.raises(DigestMismatchError, match="1000 bytes"):
        short.verify("blob", 1000)


def test_raw_manifest_keeps_bytes_and_reads_views() -> None:
    layer = {"mediaType": mediatype.OCI_LAYER, "digest": str(Digest.of(b"l")), "size": 1}
    config = {"mediaType": mediatype.OCI_CONFIG, "digest": str(Digest.of(b"c")), "size": 1}
    doc = {"schemaVersion": 2, "mediaType": mediatype.OCI_MANIFEST, "config": config,
           "layers": [layer], "x-unknown": {"kept": True}}
    data = json.dumps(doc, indent=3).encode() + b"\n\n"
    m = RawManifest.from_bytes(data)
    assert m.data == data and m.digest == Digest.of(data)
    assert m.media_type == mediatype.OCI_MANIFEST and not m.is_index
    assert [b.digest for b in m.blobs()] == [Digest.of(b"c"), Digest.of(b"l")]
    assert m.children() == [] and m.subject is None
    assert m.artifact_type == mediatype.OCI_CONFIG
    m.verify(Digest.of(data))
    with pytest.raises(DigestMismatchError):
        m.verify(Digest.of(b"other"))


def test_index_children_and_platforms() -> None:
    child = {"mediaType": mediatype.OCI_MANIFEST, "digest": str(Digest.of(b"m")), "size": 1,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
    idx = RawManifest.from_bytes(json.dumps({"schemaVersion": 2, "manifests": [child]}).encode(),
                                 mediatype.OCI_INDEX)
    assert idx.is_index
    (d,) = idx.children()
    assert d.platform == Platform("linux", "arm64", "v8")
    assert str(d.platform) == "linux/arm64/v8"
    assert Platform.parse("linux/arm64").matches(d.platform)
    assert not Platform.parse("linux/arm64/v7").matches(d.platform)
    assert Descriptor.from_json(d.to_json()) == d
    with pytest.raises(ValueError):
        Platform.parse("linux")


def test_malformed_manifests_are_refused() -> None:
    with pytest.raises(ManifestFormatError):
        RawManifest.from_bytes(b"not json")
    with pytest.raises(ManifestFormatError):
        RawManifest.from_bytes(b"[]", mediatype.OCI_MANIFEST).blobs()
    with pytest.raises(ManifestFormatError, match="missing"):
        Descriptor.from_json({"mediaType": "x"})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "76;w=21600",
          "docker-ratelimit-source": "1.2.3.4"}, RateLimit(100, 76, 21600, "1.2.3.4")),
        ({"ratelimit-limit": "200", "ratelimit-remaining": "0"}, RateLimit(200, 0, None)),
        ({"ratelimit-limit": "garbage"}, None),
    ],
)
def test_ratelimit_headers(headers: dict[str, str], expected: RateLimit | None) -> None:
    assert RateLimit.from_headers(headers) == expected


def test_digest_tags() -> None:
    d = Digest.of(b"x")
    assert d.tag() == f"sha256-{d.hex}"
    assert d.tag(".sig") == f"sha256-{d.hex}.sig"
    long = Digest.of(b"x", "sha512")
    assert long.tag() == f"sha512-{long.hex}"[:128]  # the referrers fallback tag is cut to fit
    assert long.tag(".sig") is None  # a cosign tag for sha512 cannot be a valid tag


def test_one_digest_tag_parser_for_attachment_tags() -> None:
    from imagevet.digest import digest_tag_subject, is_digest_tag

    d = Digest.of(b"x")
    assert is_digest_tag(f"sha256-{d.hex}") and is_digest_tag(f"sha256-{d.hex}.sig")
    assert digest_tag_subject(f"sha256-{d.hex}.att") == d
    long = Digest.of(b"x", "sha512")
    cut = long.tag()
    assert cut is not None and len(cut) == 128
    # a sha512 referrers tag cut to 128 characters is still an attachment tag (never pruned, never
    # copied as an image), but it names no whole digest
    assert is_digest_tag(cut) and digest_tag_subject(cut) is None
    assert not is_digest_tag("sha256-short") and not is_digest_tag("v1.0")


@pytest.mark.parametrize("annotations", ["not a mapping", ["a", "b"], 7])
def test_descriptor_with_annotations_that_are_not_a_mapping_is_a_format_error(annotations: object) -> None:
    """A registry's descriptor with ``"annotations": "xy"`` raised a bare ValueError (or
    TypeError), which no caller of from_json expects."""
    with pytest.raises(ManifestFormatError, match="annotations"):
        Descriptor.from_json({"mediaType": "x", "digest": str(Digest.of(b"a")), "size": 1,
                              "annotations": annotations})


def test_a_manifest_nested_too_deep_is_a_format_error() -> None:
    """A registry's manifest of 50,000 nested arrays raised RecursionError from json.loads (no
    ImagevetError: a hostile source could crash a whole run instead of failing one image)."""
    data = b"[" * 50_000 + b"]" * 50_000
    with pytest.raises(ManifestFormatError, match="nests too deep"):
        _ = RawManifest(mediatype.OCI_MANIFEST, data, Digest.of(data)).json
