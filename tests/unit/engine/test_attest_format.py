"""The attestation manifests imagevet pushes, field for field, against what cosign writes.

The expected values are read off sigstore/cosign (d6d86c2) and go-containerregistry, which
cosign builds them with; they are spelled out here, not computed with the code under test:

* ``pkg/oci/remote/write.go`` ``WriteAttestationsReferrer`` -> ``WriteReferrer``: artifactType
  ``application/vnd.in-toto+json`` (top level and on the config), config
  ``application/vnd.oci.empty.v1+json`` over ``{}``, annotation ``org.opencontainers.image.created``,
  ``subject``;
* ``pkg/oci/static`` ``NewAttestation``: layer ``application/vnd.dsse.envelope.v1+json`` with the
  annotations ``dev.cosignproject.cosign/signature: ""`` and ``predicateType``;
* the ``.att`` image: ``pkg/oci/empty`` (OCI manifest, OCI config media type) + ggcr
  ``mutate.Append``: config ``{"architecture":"","created":"0001-01-01T00:00:00Z","history":
  [{"created":...}],"os":"","rootfs":{"type":"layers","diff_ids":[...]},"config":{}}``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from imagevet.digest import Digest
from imagevet.engine.attest import att_manifest, attestation_layer, referrer_manifest
from imagevet.errors import SignatureError
from imagevet.manifest import Descriptor, RawManifest

ENVELOPE = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"AA=="}]}'
ENVELOPE_DIGEST = "sha256:" + hashlib.sha256(ENVELOPE).hexdigest()
SUBJECT = Descriptor("application/vnd.oci.image.index.v1+json", Digest.parse("sha256:" + "a" * 64), 1234)
ZERO = "0001-01-01T00:00:00Z"


def test_the_dsse_layer_descriptor() -> None:
    layer = attestation_layer(ENVELOPE)
    assert layer.media_type == "application/vnd.dsse.envelope.v1+json"
    assert str(layer.digest) == ENVELOPE_DIGEST and layer.size == len(ENVELOPE)
    assert dict(layer.annotations) == {
        "dev.cosignproject.cosign/signature": "",
        "predicateType": "https://imagevet.dev/mirror/v1",
    }


def test_the_referrer_manifest_is_cosigns_oci_1_1_attestation() -> None:
    raw = referrer_manifest(SUBJECT, attestation_layer(ENVELOPE), datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    doc = json.loads(raw.data)
    assert doc == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "size": 2,
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "artifactType": "application/vnd.in-toto+json",
        },
        "layers": [{
            "mediaType": "application/vnd.dsse.envelope.v1+json",
            "size": len(ENVELOPE),
            "digest": ENVELOPE_DIGEST,
            "annotations": {"dev.cosignproject.cosign/signature": "", "predicateType": "https://imagevet.dev/mirror/v1"},
        }],
        "annotations": {"org.opencontainers.image.created": "2026-11-30T10:00:00Z"},
        "subject": {"mediaType": "application/vnd.oci.image.index.v1+json", "size": 1234, "digest": "sha256:" + "a" * 64},
        "artifactType": "application/vnd.in-toto+json",
    }
    # go's encoding/json order for cosign's referrerManifest (v1.Manifest fields, then ArtifactType)
    assert list(doc) == ["schemaVersion", "mediaType", "config", "layers", "annotations", "subject", "artifactType"]
    assert list(doc["config"]) == ["mediaType", "size", "digest", "artifactType"]
    assert raw.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert raw.subject is not None and raw.subject.digest == SUBJECT.digest
    assert raw.artifact_type == "application/vnd.in-toto+json"


def test_a_new_att_tag_is_cosigns_empty_signatures_image_with_one_layer() -> None:
    raw, config = att_manifest(None, None, attestation_layer(ENVELOPE))
    assert json.loads(config) == {
        "architecture": "", "created": ZERO, "history": [{"created": ZERO}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": [ENVELOPE_DIGEST]}, "config": {},
    }
    assert list(json.loads(config)) == ["architecture", "created", "history", "os", "rootfs", "config"]
    assert json.loads(raw.data) == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
        },
        "layers": [{
            "mediaType": "application/vnd.dsse.envelope.v1+json",
            "size": len(ENVELOPE),
            "digest": ENVELOPE_DIGEST,
            "annotations": {"dev.cosignproject.cosign/signature": "", "predicateType": "https://imagevet.dev/mirror/v1"},
        }],
    }
    assert "subject" not in json.loads(raw.data)  # the tag names the subject, not the manifest


def test_appending_to_an_upstream_att_keeps_every_layer_as_it_was() -> None:
    upstream_layer = {
        "mediaType": "application/vnd.dsse.envelope.v1+json", "size": 999,
        "digest": "sha256:" + "b" * 64,
        "annotations": {
            "dev.cosignproject.cosign/signature": "",
            "dev.sigstore.cosign/bundle": '{"SignedEntryTimestamp":"x"}',
            "predicateType": "https://slsa.dev/provenance/v1",
        },
    }
    upstream_config = {
        "architecture": "", "created": "2024-05-01T12:00:00Z", "history": [{"created": ZERO}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "b" * 64]}, "config": {},
    }
    existing = RawManifest.from_bytes(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 10, "digest": "sha256:" + "c" * 64},
        "layers": [upstream_layer],
        "annotations": {"org.example": "kept"},
    }).encode())
    raw, config = att_manifest(existing, upstream_config, attestation_layer(ENVELOPE))
    doc = json.loads(raw.data)
    assert doc["layers"][0] == upstream_layer  # byte-for-byte the same descriptor
    assert doc["layers"][1]["digest"] == ENVELOPE_DIGEST and len(doc["layers"]) == 2
    assert doc["annotations"] == {"org.example": "kept"}
    assert json.loads(config) == {
        "architecture": "", "created": "2024-05-01T12:00:00Z",
        "history": [{"created": ZERO}, {"created": ZERO}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "b" * 64, ENVELOPE_DIGEST]}, "config": {},
    }
    assert doc["config"]["digest"] == "sha256:" + hashlib.sha256(config).hexdigest()


def test_an_unreadable_upstream_config_still_keeps_the_layers_and_a_docker_manifest_keeps_its_types() -> None:
    existing = RawManifest.from_bytes(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 10, "digest": "sha256:" + "c" * 64},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "size": 5, "digest": "sha256:" + "d" * 64}],
    }).encode())
    raw, config = att_manifest(existing, None, attestation_layer(ENVELOPE))
    doc = json.loads(raw.data)
    assert raw.media_type == doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert doc["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert [layer["digest"] for layer in doc["layers"]] == ["sha256:" + "d" * 64, ENVELOPE_DIGEST]
    assert json.loads(config)["rootfs"]["diff_ids"] == [ENVELOPE_DIGEST]


def test_an_att_tag_that_is_not_an_image_manifest_or_is_full_is_left_alone() -> None:
    index = RawManifest.from_bytes(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [],
    }).encode())
    with pytest.raises(SignatureError, match="not an image manifest"):
        att_manifest(index, None, attestation_layer(ENVELOPE))
    layer = {"mediaType": "application/vnd.dsse.envelope.v1+json", "size": 5, "digest": "sha256:" + "d" * 64}
    full = RawManifest.from_bytes(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 10, "digest": "sha256:" + "c" * 64},
        "layers": [layer] * 1000,
    }).encode())
    with pytest.raises(SignatureError, match="1000 layers already"):
        att_manifest(full, None, attestation_layer(ENVELOPE))
