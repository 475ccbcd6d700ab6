"""OCI conformance scenarios re-created as byte-exactness traps for a copier.

Each builder returns an :class:`~tests.support.images.Image` whose bytes a correct copier must
reproduce exactly (same digests). Scenarios follow the data toggles of the distribution-spec
conformance suite (see shared/python-deps.md §7). :data:`TRAPS` maps a name to a seed -> Image
builder for parametrised tests; :data:`DISTRIBUTION_28_REJECTS` names those that Debian's
``docker-registry`` 2.8 refuses (use the fake registry for them).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.manifest import RawManifest
from tests.support.images import (
    EMPTY_JSON,
    EMPTY_JSON_DESCRIPTOR,
    Image,
    descriptor_json,
    dump_json,
    make_config,
    make_image,
    make_index,
    make_multiarch,
    random_blob,
)

__all__ = [
    "DISTRIBUTION_28_REJECTS",
    "NONDISTRIBUTABLE_LAYER",
    "TRAPS",
    "SparseIndex",
    "make_data_field_image",
    "make_dangling_subject_referrer",
    "make_empty_blob_layer_image",
    "make_index_with_subject",
    "make_nested_index",
    "make_no_layers_image",
    "make_noncanonical_image",
    "make_nondistributable_image",
    "make_sha512_image",
    "make_sparse_index",
    "make_unknown_fields_image",
]

NONDISTRIBUTABLE_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def _manifest(
    body: dict[str, Any], data: bytes | None = None, *, algorithm: str = "sha256"
) -> RawManifest:
    return RawManifest.from_bytes(
        data if data is not None else dump_json(body), body["mediaType"], algorithm=algorithm
    )


def make_nested_index(*, seed: int | str) -> Image:
    """An OCI index whose children are an image and another (multi-platform) index."""
    inner = make_multiarch(seed=f"{seed}/inner", platforms=("linux/amd64", "linux/arm64/v8"))
    leaf = make_image(seed=f"{seed}/leaf", platform="linux/s390x")
    return make_index([leaf, inner], annotations={"org.example.trap": "nested-index"})


@dataclass
class SparseIndex:
    """A sparse index: ``image.manifests``/``blobs`` hold only the children that exist."""

    image: Image
    absent: frozenset[Digest]
    absent_manifests: list[RawManifest]


def make_sparse_index(*, seed: int | str, present: int = 1, total: int = 3) -> SparseIndex:
    """An index over ``total`` platforms of which only the first ``present`` are included."""
    platforms = ["linux/amd64", "linux/arm64", "linux/ppc64le", "linux/s390x", "linux/riscv64"][
        :total
    ]
    full = make_multiarch(seed=f"{seed}/sparse", platforms=platforms)
    children = [full.manifest(d.digest) for d in full.top.children()]
    keep, drop = children[:present], children[present:]
    blobs: dict[Digest, bytes] = {}
    for m in keep:
        for d in m.blobs():
            blobs[d.digest] = full.blobs[d.digest]
    image = Image(top=full.top, manifests=[*keep, full.top], blobs=blobs)
    return SparseIndex(image, frozenset(m.digest for m in drop), drop)


def make_unknown_fields_image(*, seed: int | str) -> Image:
    """Unknown JSON fields at every level: index, descriptors, manifest, config."""
    base = make_image(
        seed=f"{seed}/unknown", config_extra={"x-unknown-config": {"kept": [1, 2.50, None]}}
    )
    body = dict(base.top.json)
    body["x-unknown-manifest"] = {"nested": {"deep": True}, "number": 1e3}
    body["config"] = {**body["config"], "x-unknown-descriptor": "yes"}
    m = _manifest(body)
    child = Image(top=m, manifests=[m], blobs=base.blobs, platform="linux/amd64")
    return make_index([child], extra={"x-unknown-index": ["a", {"b": "c"}]})


def make_noncanonical_image(*, seed: int | str, media_types: str = "oci") -> Image:
    """Manifests with 3-space indent, unsorted keys, escaped unicode and a trailing newline."""
    base = make_image(
        seed=f"{seed}/noncanon", media_types="docker" if media_types == "docker" else "oci"
    )
    body = dict(base.top.json)
    reordered = {
        "layers": body["layers"],
        "config": body["config"],
        "mediaType": body["mediaType"],
        "annotations": {"z": "\u00e9t\u00e9 \u2603", "a": "first"},
        "schemaVersion": 2,
    }
    data = json.dumps(reordered, indent=3, ensure_ascii=True).encode() + b"\n"
    m = _manifest(reordered, data)
    child = Image(top=m, manifests=[m], blobs=base.blobs, platform="linux/amd64")
    index_type = mediatype.DOCKER_MANIFEST_LIST if media_types == "docker" else mediatype.OCI_INDEX
    index_body = {"manifests": [child.descriptor()], "schemaVersion": 2, "mediaType": index_type}
    index_data = (
        b'{\n\t"manifests" : '
        + json.dumps(index_body["manifests"]).encode()
        + (b',\r\n  "schemaVersion":2 ,"mediaType":  "' + index_type.encode() + b'"  }\n\n')
    )
    top = _manifest(index_body, index_data)
    return Image(top=top, manifests=[m, top], blobs=base.blobs)


def make_no_layers_image(*, seed: int | str) -> Image:
    """An OCI image manifest with ``"layers": []``."""
    config = make_config(platform="linux/amd64", layers=[], seed=f"{seed}/nolayers")
    body = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": descriptor_json(mediatype.OCI_CONFIG, config),
        "layers": [],
    }
    m = _manifest(body)
    return Image(top=m, manifests=[m], blobs={Digest.of(config): config}, platform="linux/amd64")


def make_empty_blob_layer_image(*, seed: int | str) -> Image:
    """An image whose layers include the empty blob (size 0) between two real layers."""
    layers = [random_blob(512, f"{seed}/e0"), b"", random_blob(256, f"{seed}/e1")]
    config = make_config(platform="linux/amd64", layers=layers, seed=f"{seed}/emptyblob")
    body = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": descriptor_json(mediatype.OCI_CONFIG, config),
        "layers": [descriptor_json(mediatype.OCI_LAYER, b) for b in layers],
    }
    m = _manifest(body)
    blobs = {Digest.of(config): config, **{Digest.of(b): b for b in layers}}
    return Image(top=m, manifests=[m], blobs=blobs, platform="linux/amd64")


def make_sha512_image(*, seed: int | str, manifest_algorithm: str = "sha256") -> Image:
    """Config and layers addressed by sha512; the manifest by ``manifest_algorithm``."""
    layers = [random_blob(700, f"{seed}/s512/0"), random_blob(900, f"{seed}/s512/1")]
    config = make_config(platform="linux/amd64", layers=layers, seed=f"{seed}/sha512")
    body = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": descriptor_json(mediatype.OCI_CONFIG, config, algorithm="sha512"),
        "layers": [descriptor_json(mediatype.OCI_LAYER, b, algorithm="sha512") for b in layers],
    }
    m = _manifest(body, algorithm=manifest_algorithm)
    blobs = {Digest.of(b, "sha512"): b for b in [config, *layers]}
    return Image(top=m, manifests=[m], blobs=blobs, platform="linux/amd64")


def make_data_field_image(*, seed: int | str) -> Image:
    """Descriptors carrying the ``data`` field (base64 of the content) for config and a layer."""
    layer = random_blob(64, f"{seed}/data")
    config = make_config(platform="linux/amd64", layers=[layer], seed=f"{seed}/datafield")
    body = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": descriptor_json(
            mediatype.OCI_CONFIG, config, extra={"data": base64.b64encode(config).decode()}
        ),
        "layers": [
            descriptor_json(
                mediatype.OCI_LAYER, layer, extra={"data": base64.b64encode(layer).decode()}
            )
        ],
    }
    m = _manifest(body)
    return Image(
        top=m,
        manifests=[m],
        blobs={Digest.of(config): config, Digest.of(layer): layer},
        platform="linux/amd64",
    )


@dataclass
class NondistributableImage:
    """An image with a foreign layer; ``foreign`` holds the blob a registry need not have."""

    image: Image
    foreign: dict[Digest, bytes]


def make_nondistributable_image(
    *, seed: int | str, media_types: str = "oci"
) -> NondistributableImage:
    """An image whose second layer is non-distributable (with ``urls``); its blob is not in ``image.blobs``."""
    docker = media_types == "docker"
    own, foreign = random_blob(300, f"{seed}/nd/own"), random_blob(400, f"{seed}/nd/foreign")
    config = make_config(platform="windows/amd64", layers=[own, foreign], seed=f"{seed}/nondist")
    urls = {"urls": [f"https://example.invalid/layers/{Digest.of(foreign).hex}"]}
    body = {
        "schemaVersion": 2,
        "mediaType": mediatype.DOCKER_MANIFEST if docker else mediatype.OCI_MANIFEST,
        "config": descriptor_json(
            mediatype.DOCKER_CONFIG if docker else mediatype.OCI_CONFIG, config
        ),
        "layers": [
            descriptor_json(mediatype.DOCKER_LAYER if docker else mediatype.OCI_LAYER, own),
            descriptor_json(
                DOCKER_FOREIGN_LAYER if docker else NONDISTRIBUTABLE_LAYER, foreign, extra=urls
            ),
        ],
    }
    m = _manifest(body)
    image = Image(
        top=m,
        manifests=[m],
        blobs={Digest.of(config): config, Digest.of(own): own},
        platform="windows/amd64",
    )
    return NondistributableImage(image, {Digest.of(foreign): foreign})


def make_dangling_subject_referrer(*, seed: int | str) -> Image:
    """An artifact whose ``subject`` names a manifest that exists nowhere."""
    missing = dump_json({"schemaVersion": 2, "missing": str(seed)})
    payload = dump_json({"seed": str(seed)})
    body = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "artifactType": "application/vnd.example.dangling.v1",
        "config": dict(EMPTY_JSON_DESCRIPTOR),
        "layers": [descriptor_json("application/vnd.example.dangling.v1", payload)],
        "subject": descriptor_json(mediatype.OCI_MANIFEST, missing),
    }
    m = _manifest(body)
    return Image(
        top=m, manifests=[m], blobs={Digest.of(EMPTY_JSON): EMPTY_JSON, Digest.of(payload): payload}
    )


def make_index_with_subject(*, seed: int | str) -> tuple[Image, Image]:
    """(subject image, index with ``artifactType`` and ``subject`` over one artifact image)."""
    subject = make_image(seed=f"{seed}/subject")
    child = make_image(seed=f"{seed}/child", layer_sizes=(128,))
    idx = make_index(
        [child],
        extra={
            "artifactType": "application/vnd.example.bundle.v1",
            "subject": {
                "mediaType": subject.top.media_type,
                "digest": str(subject.digest),
                "size": subject.top.size,
            },
        },
    )
    return subject, idx


def _index_with_subject_only(*, seed: int | str) -> Image:
    subject, idx = make_index_with_subject(seed=seed)
    return Image(
        top=idx.top,
        manifests=[*subject.manifests, *idx.manifests],
        blobs={**subject.blobs, **idx.blobs},
    )


TRAPS: dict[str, Callable[..., Image]] = {
    "nested-index": make_nested_index,
    "sparse-index": lambda *, seed: make_sparse_index(seed=seed).image,
    "unknown-fields": make_unknown_fields_image,
    "noncanonical-oci": make_noncanonical_image,
    "noncanonical-docker": lambda *, seed: make_noncanonical_image(seed=seed, media_types="docker"),
    "no-layers": make_no_layers_image,
    "empty-blob-layer": make_empty_blob_layer_image,
    "sha512-blobs": make_sha512_image,
    "sha512-manifest": lambda *, seed: make_sha512_image(seed=seed, manifest_algorithm="sha512"),
    "data-field": make_data_field_image,
    "nondistributable": lambda *, seed: make_nondistributable_image(seed=seed).image,
    "nondistributable-docker": lambda *, seed: (
        make_nondistributable_image(seed=seed, media_types="docker").image
    ),
    "dangling-subject": make_dangling_subject_referrer,
    "index-with-subject": _index_with_subject_only,
}

# Checked by tests/integration/test_support_traps.py on Debian's distribution 2.8.2: it refuses an
# index whose children are absent (MANIFEST_BLOB_UNKNOWN) and a manifest PUT by a sha512 digest
# (DIGEST_INVALID: it only computes sha256 for manifests). sha512 *blobs* are accepted.
DISTRIBUTION_28_REJECTS: frozenset[str] = frozenset({"sparse-index", "sha512-manifest"})
