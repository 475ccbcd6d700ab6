"""Deterministic synthetic images for tests: single manifests, indexes, referrers, cosign signatures.

Everything is derived from a seed (``int`` or ``str``), so the same call gives the same bytes and
digests in every run. Layers are incompressible random bytes (not real tarballs: registries never
look inside). Manifests are serialised compactly in a fixed key order; the conformance traps in
:mod:`tests.support.traps` produce the odd encodings (they are also reachable as attributes of this
module, e.g. ``images.make_nested_index``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.manifest import RawManifest

__all__ = [
    "COSIGN_SIGNATURE_ANNOTATION",
    "COSIGN_SIMPLESIGNING",
    "CREATED",
    "EMPTY_JSON",
    "EMPTY_JSON_DESCRIPTOR",
    "Image",
    "MediaTypes",
    "cosign_tag",
    "descriptor_json",
    "dump_json",
    "make_config",
    "make_cosign_signature",
    "make_image",
    "make_index",
    "make_multiarch",
    "make_referrer",
    "make_referrers_tag_index",
    "random_blob",
]

MediaTypes = Literal["oci", "docker"]
CREATED = "2024-01-01T00:00:00Z"
EMPTY_JSON = b"{}"
EMPTY_JSON_DESCRIPTOR: dict[str, Any] = {
    "mediaType": mediatype.OCI_EMPTY,
    "digest": str(Digest.of(EMPTY_JSON)),
    "size": 2,
}
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"

_TYPES: dict[str, dict[str, str]] = {
    "oci": {
        "index": mediatype.OCI_INDEX,
        "manifest": mediatype.OCI_MANIFEST,
        "config": mediatype.OCI_CONFIG,
        "layer": mediatype.OCI_LAYER,
    },
    "docker": {
        "index": mediatype.DOCKER_MANIFEST_LIST,
        "manifest": mediatype.DOCKER_MANIFEST,
        "config": mediatype.DOCKER_CONFIG,
        "layer": mediatype.DOCKER_LAYER,
    },
}


@dataclass
class Image:
    """A pushable image: its top manifest, every manifest (children before parents) and blobs."""

    top: RawManifest
    manifests: list[RawManifest]
    blobs: dict[Digest, bytes] = field(default_factory=dict)
    platform: str | None = None

    @property
    def digest(self) -> Digest:
        """The digest of the top manifest."""
        return self.top.digest

    @property
    def media_type(self) -> str:
        return self.top.media_type

    def descriptor(self, *, platform: str | None = None) -> dict[str, Any]:
        """A JSON descriptor of the top manifest (with a platform when given or known)."""
        return descriptor_json(
            self.top.media_type, self.top.data, platform=platform or self.platform
        )

    def manifest(self, digest: Digest | str) -> RawManifest:
        """The manifest of this image with ``digest``."""
        for m in self.manifests:
            if str(m.digest) == str(digest):
                return m
        raise KeyError(str(digest))

    def size(self) -> int:
        """Total bytes of blobs and manifests."""
        return sum(len(b) for b in self.blobs.values()) + sum(m.size for m in self.manifests)


def random_blob(size: int, seed: int | str) -> bytes:
    """``size`` incompressible bytes, always the same for the same seed."""
    return random.Random(f"imagevet-blob/{seed}").randbytes(size)


def dump_json(obj: Any) -> bytes:
    """Compact JSON in the key order given (what most tools push)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def descriptor_json(
    media_type: str,
    data: bytes,
    *,
    algorithm: str = "sha256",
    platform: str | None = None,
    annotations: Mapping[str, str] | None = None,
    artifact_type: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A descriptor for ``data`` as JSON (keys in the usual order)."""
    out: dict[str, Any] = {
        "mediaType": media_type,
        "digest": str(Digest.of(data, algorithm)),
        "size": len(data),
    }
    if artifact_type:
        out["artifactType"] = artifact_type
    if annotations:
        out["annotations"] = dict(annotations)
    if platform:
        parts = platform.split("/")
        plat = {"architecture": parts[1], "os": parts[0]}
        if len(parts) > 2:
            plat["variant"] = parts[2]
        out["platform"] = plat
    if extra:
        out.update(extra)
    return out


def make_config(
    *,
    platform: str | None,
    layers: Sequence[bytes],
    seed: int | str,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """An image config JSON for ``layers`` (diff_ids are the layer digests: layers are opaque)."""
    os_, arch, variant = "linux", "amd64", None
    if platform:
        parts = platform.split("/")
        os_, arch = parts[0], parts[1]
        variant = parts[2] if len(parts) > 2 else None
    cfg: dict[str, Any] = {"architecture": arch, "os": os_}
    if variant:
        cfg["variant"] = variant
    cfg.update(
        {
            "created": CREATED,
            "config": {"Env": [f"IMAGEVET_SEED={seed}"], "Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(b)) for b in layers]},
            "history": [
                {"created": CREATED, "created_by": f"layer {i}"} for i in range(len(layers))
            ],
        }
    )
    if extra:
        cfg.update(extra)
    return dump_json(cfg)


def make_image(
    *,
    seed: int | str,
    layer_sizes: Sequence[int] = (1024, 2048),
    media_types: MediaTypes = "oci",
    platform: str | None = "linux/amd64",
    shared_layers: Iterable[bytes] = (),
    config_extra: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """A single-platform image: config + ``shared_layers`` + fresh random layers of ``layer_sizes``."""
    types = _TYPES[media_types]
    layers = [
        *shared_layers,
        *(random_blob(n, f"{seed}/layer/{i}") for i, n in enumerate(layer_sizes)),
    ]
    config = make_config(platform=platform, layers=layers, seed=seed, extra=config_extra)
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": descriptor_json(types["config"], config),
        "layers": [descriptor_json(types["layer"], layer) for layer in layers],
    }
    if annotations:
        body["annotations"] = dict(annotations)
    top = RawManifest.from_bytes(dump_json(body), types["manifest"])
    blobs = {Digest.of(config): config, **{Digest.of(layer): layer for layer in layers}}
    return Image(top=top, manifests=[top], blobs=blobs, platform=platform)


def make_index(
    children: Sequence[Image],
    *,
    media_types: MediaTypes = "oci",
    annotations: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Image:
    """An index (OCI index or Docker manifest list) over ``children``, which it includes."""
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": _TYPES[media_types]["index"],
        "manifests": [child.descriptor() for child in children],
    }
    if annotations:
        body["annotations"] = dict(annotations)
    if extra:
        body.update(extra)
    top = RawManifest.from_bytes(dump_json(body), body["mediaType"])
    manifests: list[RawManifest] = []
    blobs: dict[Digest, bytes] = {}
    for child in children:
        for m in child.manifests:
            if m.digest not in {x.digest for x in manifests}:
                manifests.append(m)
        blobs.update(child.blobs)
    return Image(top=top, manifests=[*manifests, top], blobs=blobs)


def make_multiarch(
    *,
    seed: int | str,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    layer_sizes: Sequence[int] = (1024, 2048),
    media_types: MediaTypes = "oci",
    shared_layers: Iterable[bytes] = (),
) -> Image:
    """A multi-platform index over one image per platform (distinct layers per platform)."""
    shared = list(shared_layers)
    children = [
        make_image(
            seed=f"{seed}/{p}",
            layer_sizes=layer_sizes,
            media_types=media_types,
            platform=p,
            shared_layers=shared,
        )
        for p in platforms
    ]
    return make_index(children, media_types=media_types)


def make_referrer(
    subject: RawManifest,
    *,
    artifact_type: str = "application/vnd.example.sbom.v1+json",
    seed: int | str,
    payload: bytes | None = None,
    annotations: Mapping[str, str] | None = None,
    layer_media_type: str | None = None,
) -> Image:
    """An OCI 1.1 artifact (image manifest with ``artifactType``, empty config, ``subject``)."""
    payload = (
        payload if payload is not None else dump_json({"seed": str(seed), "kind": artifact_type})
    )
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": dict(EMPTY_JSON_DESCRIPTOR),
        "layers": [descriptor_json(layer_media_type or artifact_type, payload)],
        "subject": {
            "mediaType": subject.media_type,
            "digest": str(subject.digest),
            "size": subject.size,
        },
        "annotations": {"org.opencontainers.image.created": CREATED, **(annotations or {})},
    }
    top = RawManifest.from_bytes(dump_json(body), mediatype.OCI_MANIFEST)
    return Image(
        top=top,
        manifests=[top],
        blobs={Digest.of(EMPTY_JSON): EMPTY_JSON, Digest.of(payload): payload},
    )


def make_cosign_signature(
    subject: RawManifest, *, seed: int | str, docker_reference: str = "example.invalid/app"
) -> Image:
    """A cosign simple-signing signature manifest for ``subject`` (push it at ``cosign_tag``)."""
    payload = dump_json(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": str(subject.digest)},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )
    signature = base64.b64encode(hashlib.sha512(f"sig/{seed}".encode()).digest()[:71]).decode()
    config = dump_json(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(payload))]},
            "config": {},
        }
    )
    body = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": descriptor_json(mediatype.OCI_CONFIG, config),
        "layers": [
            descriptor_json(
                COSIGN_SIMPLESIGNING, payload, annotations={COSIGN_SIGNATURE_ANNOTATION: signature}
            )
        ],
    }
    top = RawManifest.from_bytes(dump_json(body), mediatype.OCI_MANIFEST)
    return Image(
        top=top, manifests=[top], blobs={Digest.of(config): config, Digest.of(payload): payload}
    )


def cosign_tag(digest: Digest, suffix: str = "sig") -> str:
    """The tag cosign uses for ``digest``: ``sha256-<hex>.sig`` (``.att``, ``.sbom``)."""
    return f"{digest.algorithm}-{digest.hex}.{suffix}"


def make_referrers_tag_index(referrers: Sequence[Image]) -> RawManifest:
    """The OCI referrers tag-schema fallback index (push at ``sha256-<hex>`` of the subject)."""
    manifests = []
    for r in referrers:
        d = descriptor_json(r.top.media_type, r.top.data, artifact_type=r.top.artifact_type)
        ann = r.top.json.get("annotations")
        if ann:
            d["annotations"] = dict(ann)
        manifests.append(d)
    body = {"schemaVersion": 2, "mediaType": mediatype.OCI_INDEX, "manifests": manifests}
    return RawManifest.from_bytes(dump_json(body), mediatype.OCI_INDEX)


def __getattr__(name: str) -> Any:
    """Expose the conformance-trap builders of :mod:`tests.support.traps` here too."""
    from tests.support import traps

    if name in traps.__all__:
        return getattr(traps, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
