"""subset_index: the index a platform-subset mirror holds, derivable again from the source bytes."""

from __future__ import annotations

import json

import pytest

from imagevet.digest import Digest
from imagevet.errors import NotFoundError
from imagevet.manifest import Platform, RawManifest, subset_index
from imagevet.mediatype import OCI_INDEX, OCI_MANIFEST


def _desc(seed: str, platform: dict[str, str], **extra: object) -> dict[str, object]:
    return {"mediaType": OCI_MANIFEST, "digest": str(Digest.of(seed.encode())), "size": 10,
            "platform": platform, **extra}


AMD, ARM = _desc("amd", {"os": "linux", "architecture": "amd64"}), _desc(
    "arm", {"os": "linux", "architecture": "arm64", "variant": "v8"}
)
ATT = _desc("att", {"os": "unknown", "architecture": "unknown"}, annotations={
    "vnd.docker.reference.type": "attestation-manifest",
    "vnd.docker.reference.digest": ARM["digest"],
})
SOURCE = RawManifest.from_bytes(json.dumps({
    "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [AMD, ARM, ATT],
    "annotations": {"org.opencontainers.image.source": "x"},
}).encode())


def test_keeps_the_platforms_asked_and_their_attestations_and_is_deterministic() -> None:
    out = subset_index(SOURCE, [Platform("linux", "arm64")])
    assert out.json["manifests"] == [ARM, ATT]
    assert out.json["annotations"] == SOURCE.json["annotations"]
    assert out.media_type == OCI_INDEX and out.digest == Digest.of(out.data)
    again = RawManifest.from_bytes(SOURCE.data)  # the same bytes read another time
    assert subset_index(again, [Platform("linux", "arm64")]).data == out.data
    both = subset_index(SOURCE, [Platform("linux", "amd64"), Platform("linux", "arm64", "v8")])
    assert both.json["manifests"] == [AMD, ARM, ATT] and both.digest != SOURCE.digest


def test_no_matching_platform_is_an_error() -> None:
    with pytest.raises(NotFoundError, match="no platform matches linux/s390x"):
        subset_index(SOURCE, [Platform("linux", "s390x")])
