"""Manifests as raw bytes with read-only parsed views: descriptors, platforms, children, blobs.

A manifest is never re-serialised for a push: :class:`RawManifest` keeps the exact bytes the
source served, and its digest is computed from those bytes, so every digest (and every signature
over one) survives a copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, ImagevetError, NotFoundError

__all__ = ["Descriptor", "ManifestFormatError", "Platform", "RawManifest", "subset_index"]


class ManifestFormatError(ImagevetError):
    """Manifest bytes that are not a JSON object of the kind their media type says."""


_PLATFORM_PART = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}", re.ASCII)
_BLANK = " \t\r\n\f\v"


def _normal_part(value: Any) -> str:
    """One platform field as containerd's ``platforms.Normalize`` leaves its case: trimmed and
    lowercased (ASCII only: a non-ASCII value stays as it is and is not a valid part); a
    missing value is empty and one that is not a string ``<int>`` and so on (both invalid)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    text = value.strip(_BLANK)
    return text.lower() if text.isascii() else text


@dataclass(frozen=True, slots=True, order=True)
class Platform:
    """An image platform: ``os/architecture[/variant]``.

    Read from a manifest (:meth:`from_json`), each part is normalised the way containerd's
    ``platforms.Normalize`` does for case: ``"os": "Linux"`` is ``linux``.  Architecture aliases
    (``x86_64``, ``aarch64``) are kept as written.  :attr:`problem` says why a platform is not a
    valid ``os/architecture[/variant]`` (each part ``[a-z0-9][a-z0-9._-]*``, at most 64
    characters); such a platform is never written to a lock.
    """

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``linux/amd64`` or ``linux/arm64/v8``; raise ValueError otherwise."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Platform:
        """The ``platform`` object of a descriptor, normalised (see the class docstring);
        ``os.version``, ``os.features`` and ``features`` are not part of it."""
        variant = _normal_part(obj.get("variant"))
        return cls(
            _normal_part(obj.get("os")), _normal_part(obj.get("architecture")), variant or None
        )

    @property
    def problem(self) -> str | None:
        """Why this is not a valid ``os/architecture[/variant]``; None when it is."""
        parts = [("os", self.os), ("architecture", self.architecture)]
        if self.variant is not None:
            parts.append(("variant", self.variant))
        for name, value in parts:
            if not _PLATFORM_PART.fullmatch(value):
                return (
                    f"invalid platform {name} {value[:80]!r}: lowercase letters, digits, "
                    "'.', '_', '-', at most 64"
                )
        return None

    def matches(self, other: Platform) -> bool:
        """Whether ``other`` satisfies this platform (a missing variant here matches any variant)."""
        return (
            self.os == other.os
            and self.architecture == other.architecture
            and (self.variant is None or self.variant == other.variant)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says about one piece of content."""

    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any) -> Descriptor:
        if not isinstance(obj, Mapping):
            raise ManifestFormatError(f"descriptor is not an object: {obj!r}"[:200])
        try:
            digest = Digest.parse(str(obj["digest"]))
            size = obj["size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ManifestFormatError(f"descriptor {digest} has invalid size {size!r}")
        except KeyError as e:
            raise ManifestFormatError(f"descriptor is missing {e.args[0]!r}") from None
        platform = obj.get("platform")
        annotations = obj.get("annotations") or {}
        if not isinstance(annotations, Mapping):
            raise ManifestFormatError(f"descriptor {digest} has annotations that are not an object")
        return cls(
            media_type=str(obj.get("mediaType", "")),
            digest=digest,
            size=size,
            platform=Platform.from_json(platform) if isinstance(platform, Mapping) else None,
            artifact_type=obj.get("artifactType"),
            annotations=dict(annotations),
        )

    def to_json(self) -> dict[str, Any]:
        """The descriptor as JSON, for manifests imagevet writes itself (referrers tag indexes)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            p: dict[str, str] = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                p["variant"] = self.platform.variant
            out["platform"] = p
        return out


@dataclass(frozen=True)
class RawManifest:
    """The exact bytes of a manifest, its media type and its digest (computed from the bytes)."""

    media_type: str
    data: bytes
    digest: Digest

    @classmethod
    def from_bytes(
        cls, data: bytes, media_type: str | None = None, *, algorithm: str = "sha256"
    ) -> RawManifest:
        """Wrap ``data``; the media type defaults to the ``mediaType`` field inside it."""
        raw = cls(media_type or "", data, Digest.of(data, algorithm))
        if not media_type:
            found = raw.json.get("mediaType")
            if not isinstance(found, str) or not found:
                raise ManifestFormatError("manifest has no mediaType and none was given")
            object.__setattr__(raw, "media_type", found)
        return raw

    def verify(self, expected: Digest, what: str = "manifest") -> None:
        """Raise DigestMismatchError unless these bytes hash to ``expected``."""
        actual = Digest.of(self.data, expected.algorithm)
        if actual != expected:
            raise DigestMismatchError(what, str(expected), str(actual))

    @cached_property
    def json(self) -> Mapping[str, Any]:
        """The parsed JSON object (read-only use; never re-serialised for a push)."""
        try:
            obj = json.loads(self.data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ManifestFormatError(f"manifest {self.digest} is not JSON: {e}") from None
        except RecursionError:
            raise ManifestFormatError(f"manifest {self.digest} nests too deep") from None
        if not isinstance(obj, dict):
            raise ManifestFormatError(f"manifest {self.digest} is not a JSON object")
        return obj

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def is_index(self) -> bool:
        return mediatype.is_index(self.media_type) or (
            self.media_type not in mediatype.MANIFEST_TYPES and "manifests" in self.json
        )

    @property
    def descriptor(self) -> Descriptor:
        """A descriptor pointing at this manifest."""
        at = self.json.get("artifactType") if self.data else None
        return Descriptor(self.media_type, self.digest, self.size, artifact_type=at)

    def children(self) -> list[Descriptor]:
        """The manifests an index lists (empty for an image manifest)."""
        if not self.is_index:
            return []
        return [Descriptor.from_json(d) for d in self.json.get("manifests") or []]

    def platforms(self) -> list[str]:
        """The platforms an index lists (``os/arch[/variant]``, normalised: see
        :class:`Platform`), without attestation entries (``unknown/unknown``) and without a
        platform that is not valid even when normalised; empty for an image manifest."""
        return [
            str(d.platform)
            for d in self.children()
            if d.platform is not None
            and d.platform.os != "unknown"
            and d.platform.problem is None
        ]

    def platform_manifests(self) -> dict[str, Digest]:
        """Each platform :meth:`platforms` names -> the digest of its platform manifest: the first
        child listed for that platform (an index may list two for one platform, e.g. Windows
        images of two ``os.version``); empty for an image manifest."""
        out: dict[str, Digest] = {}
        for child in self.children():
            platform = child.platform
            if platform is None or platform.os == "unknown" or platform.problem is not None:
                continue
            out.setdefault(str(platform), child.digest)
        return out

    def blobs(self) -> list[Descriptor]:
        """The config and layers of an image manifest (empty for an index)."""
        if self.is_index:
            return []
        out: list[Descriptor] = []
        if "config" in self.json:
            out.append(Descriptor.from_json(self.json["config"]))
        out.extend(Descriptor.from_json(d) for d in self.json.get("layers") or [])
        out.extend(Descriptor.from_json(d) for d in self.json.get("blobs") or [])  # artifact manifest
        return out

    @property
    def subject(self) -> Descriptor | None:
        """The manifest this one refers to (OCI 1.1 ``subject``), if any."""
        s = self.json.get("subject")
        return Descriptor.from_json(s) if s is not None else None

    @property
    def artifact_type(self) -> str | None:
        """``artifactType``, or for an image manifest the config media type, as the referrers API reports."""
        at = self.json.get("artifactType")
        if isinstance(at, str):
            return at
        config = self.json.get("config")
        if isinstance(config, Mapping) and not self.is_index:
            mt = config.get("mediaType")
            return str(mt) if mt else None
        return None


def subset_index(index: RawManifest, platforms: Sequence[Platform]) -> RawManifest:
    """The index a platform-subset mirror holds: ``index`` listing only ``platforms`` (and the
    attestation entries attached to them), everything else of the document kept.

    Pure and deterministic: the same source bytes and platforms always give the same bytes, so
    the digest a mirror must hold can be derived again from the source at any time (``sync``
    checks the target against it; the copy engine pushes it).  Raises NotFoundError when no
    platform matches, ManifestFormatError for a malformed entry.
    """
    entries = list(index.json.get("manifests") or [])
    keep: list[object] = []
    kept: set[str] = set()
    for entry in entries:
        desc = Descriptor.from_json(entry)
        if desc.platform and any(p.matches(desc.platform) for p in platforms):
            keep.append(entry)
            kept.add(str(desc.digest))
    for entry in entries:
        desc = Descriptor.from_json(entry)
        ref = desc.annotations.get("vnd.docker.reference.digest")
        if ref in kept and entry not in keep:
            keep.append(entry)
    if not kept:
        wanted = ", ".join(str(p) for p in platforms)
        raise NotFoundError(404, "GET", str(index.digest), body=f"no platform matches {wanted}")
    doc = dict(index.json)
    doc["manifests"] = keep
    return RawManifest.from_bytes(json.dumps(doc, indent=2).encode(), index.media_type)
