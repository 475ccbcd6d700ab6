"""Reference parsing and normalisation, as Docker's distribution/reference does it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagevet.digest import Digest
from imagevet.errors import InvalidReferenceError
from imagevet.reference import Reference

H = "a" * 64
D = f"sha256:{H}"

# text -> (registry, repository, tag, digest, familiar)
VALID = [
    ("nginx", "docker.io", "library/nginx", None, None, "nginx"),
    ("nginx:1.27", "docker.io", "library/nginx", "1.27", None, "nginx:1.27"),
    ("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", None, "bitnami/redis:7.2"),
    ("docker.io/nginx", "docker.io", "library/nginx", None, None, "nginx"),
    ("index.docker.io/library/nginx", "docker.io", "library/nginx", None, None, "nginx"),
    ("registry-1.docker.io/bitnami/redis", "docker.io", "bitnami/redis", None, None, "bitnami/redis"),
    ("registry.hub.docker.com/foo", "docker.io", "library/foo", None, None, "foo"),
    ("docker.io/library/a/b", "docker.io", "library/a/b", None, None, "library/a/b"),
    ("localhost/foo", "localhost", "foo", None, None, "localhost/foo"),
    ("localhost:5000/foo/bar:v1", "localhost:5000", "foo/bar", "v1", None, "localhost:5000/foo/bar:v1"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", None, None, "127.0.0.1:5000/x"),
    ("[::1]:5000/x", "[::1]:5000", "x", None, None, "[::1]:5000/x"),
    ("ghcr.io/org/app@" + D, "ghcr.io", "org/app", None, D, "ghcr.io/org/app@" + D),
    ("quay.io/a/b:t@" + D, "quay.io", "a/b", "t", D, "quay.io/a/b:t@" + D),
    ("nginx@" + D, "docker.io", "library/nginx", None, D, "nginx@" + D),
    ("foo:5000", "docker.io", "library/foo", "5000", None, "foo:5000"),
    ("a__b/c--d/e.f", "docker.io", "a__b/c--d/e.f", None, None, "a__b/c--d/e.f"),
    ("Example.COM/x", "Example.COM", "x", None, None, "Example.COM/x"),
    ("reg/name:_Tag.1-x", "docker.io", "reg/name", "_Tag.1-x", None, "reg/name:_Tag.1-x"),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest", "familiar"), VALID)
def test_parse_valid(text: str, registry: str, repository: str, tag: str | None,
                     digest: str | None, familiar: str) -> None:
    ref = Reference.parse(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest
    assert ref.familiar == familiar
    assert Reference.parse(str(ref)) == ref


INVALID = [
    ("", "empty reference"),
    (" nginx", "white space"),
    ("docker.io/Nginx", "must be lowercase"),
    ("NGINX", "must be lowercase"),
    ("nginx:", "invalid tag"),
    ("nginx:-bad", "invalid tag"),
    ("nginx:" + "t" * 129, "invalid tag"),
    ("nginx@sha256:abc", "invalid digest"),
    ("nginx@sha256:" + "A" * 64, "lowercase hex"),
    ("nginx@md5:" + "a" * 32, "unsupported algorithm"),
    ("a" * 64, "image ID"),
    ("foo//bar", "invalid repository name"),
    ("foo/bar/", "invalid repository name"),
    ("-foo", "invalid repository name"),
    ("foo_/bar", "invalid repository name"),
    ("exa_mple.com/foo", "invalid registry host"),
    ("docker.io/" + "a" * 256, "longer than 255"),
    ("localhost:5000/", "invalid repository name"),
]


@pytest.mark.parametrize(("text", "why"), INVALID)
def test_parse_invalid_says_why(text: str, why: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    assert why in str(info.value)
    assert isinstance(info.value, ValueError)


def test_path_length_excludes_domain() -> None:
    path = "/".join(["a" * 50] * 5)  # 254 characters
    ref = Reference.parse(f"registry.example.com:5000/{path}")
    assert ref.repository == path


def test_identifier_defaults_to_latest_and_digest_wins() -> None:
    assert Reference.parse("nginx").identifier == "latest"
    assert Reference.parse("nginx:1").identifier == "1"
    assert Reference.parse(f"nginx:1@{D}").identifier == D


def test_helpers() -> None:
    ref = Reference.parse("bitnami/redis:7.2")
    assert ref.scope("pull", "push") == "repository:bitnami/redis:pull,push"
    assert ref.scope() == "repository:bitnami/redis:pull"
    assert ref.repo() == Reference("docker.io", "bitnami/redis")
    assert str(ref.with_digest(Digest.parse(D))) == f"docker.io/bitnami/redis:7.2@{D}"
    assert ref.with_digest(Digest.parse(D)).with_tag("8").digest is None
    with pytest.raises(InvalidReferenceError):
        ref.with_tag("bad tag")


# no '.' in components: a first component with a dot is a registry host, in Docker too
_component = st.from_regex(r"\A[a-z0-9]{1,8}(?:(?:_|__|-+)[a-z0-9]{1,8}){0,2}\Z")
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")


@given(
    host=st.sampled_from(["", "docker.io/", "localhost:5000/", "reg.example.com/", "10.0.0.1:443/"]),
    parts=st.lists(_component, min_size=1, max_size=3),
    tag=st.none() | _tag,
    digest=st.none() | st.from_regex(r"\A[0-9a-f]{64}\Z"),
)
def test_round_trip_property(host: str, parts: list[str], tag: str | None, digest: str | None) -> None:
    text = host + "/".join(parts) + (f":{tag}" if tag else "") + (f"@sha256:{digest}" if digest else "")
    if not host and len(parts) == 1 and len(parts[0]) == 64:
        return
    ref = Reference.parse(text)
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.familiar) == ref


# -- schemes: oci: and oci-archive: layouts, docker:// ------------------------------------------

# text -> (scheme, repository (the path), tag, digest)
LAYOUTS = [
    ("oci:out", "oci", "out", None, None),
    ("oci:out:v1", "oci", "out", "v1", None),
    ("oci:/srv/mirror/nginx:1.27", "oci", "/srv/mirror/nginx", "1.27", None),
    ("oci:./a/b/../c/", "oci", "a/c", None, None),
    ("oci:out@" + D, "oci", "out", None, D),
    ("oci:out:v1@" + D, "oci", "out", "v1", D),
    ("oci:a:b/c", "oci", "a:b/c", None, None),  # the part after ':' has a '/': all path
    ("oci:a:b/c:t", "oci", "a:b/c", "t", None),
    ("oci:dir:bad tag", "oci", "dir:bad tag", None, None),  # not a valid tag: all path
    ("oci-archive:x.tar", "oci-archive", "x.tar", None, None),
    ("oci-archive:/tmp/x.tar:latest", "oci-archive", "/tmp/x.tar", "latest", None),
    ("oci-archive:x.tar@" + D, "oci-archive", "x.tar", None, D),
]


@pytest.mark.parametrize(("text", "scheme", "path", "tag", "digest"), LAYOUTS)
def test_parse_layout(text: str, scheme: str, path: str, tag: str | None, digest: str | None) -> None:
    ref = Reference.parse(text)
    assert (ref.scheme, ref.registry, ref.repository, ref.tag) == (scheme, "", path, tag)
    assert ref.digest == (Digest.parse(digest) if digest else None)
    assert ref.is_layout and not ref.is_docker_hub
    assert ref.name == f"{scheme}:{path}"
    assert ref.familiar == str(ref)
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("oci:", "missing layout path"),
        ("oci::v1", "missing layout path"),
        ("oci-archive:@" + D, "missing layout path"),
        ("oci:a:b/c/..", "would read as a tag"),  # normalises to "a:b"
        ("oci:a\x00b", "NUL"),
    ],
)
def test_parse_layout_invalid_says_why(text: str, why: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    assert why in str(info.value)


def test_layout_helpers_keep_the_scheme() -> None:
    ref = Reference.parse("oci:/srv/m/nginx:1.27")
    assert ref.with_tag("1.28") == Reference("", "/srv/m/nginx", "1.28", None, "oci")
    assert str(ref.with_digest(Digest.parse(D))) == f"oci:/srv/m/nginx:1.27@{D}"
    assert str(ref.repo()) == "oci:/srv/m/nginx"
    assert ref.identifier == "1.27"
    with pytest.raises(InvalidReferenceError):
        ref.with_tag("bad tag")


def test_docker_transport_prefix_is_a_registry_reference() -> None:
    assert Reference.parse("docker://nginx:1.27") == Reference.parse("nginx:1.27")
    assert Reference.parse("docker://localhost:5000/a/b").scheme == "docker"
    assert Reference("docker.io", "library/nginx") == Reference.parse("nginx")  # positional still works


_path_part = st.from_regex(r"\A[A-Za-z0-9_.@:+-]{1,10}\Z")


@given(
    scheme=st.sampled_from(["oci", "oci-archive"]),
    absolute=st.booleans(),
    parts=st.lists(_path_part, min_size=1, max_size=4),
    tag=st.none() | _tag,
    digest=st.none() | st.from_regex(r"\A[0-9a-f]{64}\Z"),
)
def test_layout_round_trip_property(
    scheme: str, absolute: bool, parts: list[str], tag: str | None, digest: str | None
) -> None:
    text = (
        f"{scheme}:{'/' if absolute else ''}{'/'.join(parts)}"
        + (f":{tag}" if tag else "")
        + (f"@sha256:{digest}" if digest else "")
    )
    try:
        ref = Reference.parse(text)
    except InvalidReferenceError:
        return  # a path that would read back differently, or none at all
    assert ref.scheme == scheme and ref.registry == ""
    assert Reference.parse(str(ref)) == ref
    assert ref.with_tag("t").scheme == scheme and ref.repo().scheme == scheme
    if tag is not None and digest is not None:
        assert (ref.tag, str(ref.digest)) == (tag, f"sha256:{digest}")
