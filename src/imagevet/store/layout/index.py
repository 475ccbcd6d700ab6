"""The index of an OCI layout: ``index.json`` parsed and bounded, and the ``oci-layout`` check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import ImagevetError, LayoutError
from imagevet.manifest import Descriptor
from imagevet.store.layout.files import LayoutFiles

LAYOUT_VERSION = "1.0.0"
REF_NAME = "org.opencontainers.image.ref.name"
MAX_INDEX_SIZE = 32 << 20
"""Largest ``index.json`` read (bytes)."""
MAX_INDEX_ENTRIES = 100_000
"""Most entries an ``index.json`` may list."""
MAX_SMALL_FILE = 64 << 10
"""Largest ``oci-layout`` file read."""


@dataclass(frozen=True, slots=True)
class Index:
    """A parsed ``index.json``: the document as read (kept for rewrites) and its entries."""

    doc: dict[str, Any]
    entries: tuple[Descriptor, ...]

    def find_tag(self, tag: str) -> Descriptor | None:
        found = None
        for d in self.entries:
            if d.annotations.get(REF_NAME) == tag:
                found = d
        return found

    def find_digest(self, digest: Digest) -> Descriptor | None:
        for d in self.entries:
            if d.digest == digest:
                return d
        return None


def empty_index_doc() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mediatype.OCI_INDEX, "manifests": []}


def parse_index(data: bytes, label: str) -> Index:
    """Parse ``index.json`` bytes; LayoutError saying what is wrong."""
    what = f"{label}: index.json"
    if len(data) > MAX_INDEX_SIZE:
        raise LayoutError(what, f"larger than {MAX_INDEX_SIZE >> 20} MiB")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise LayoutError(what, f"is not JSON ({str(e)[:100]})") from None
    if not isinstance(doc, dict):
        raise LayoutError(what, "is not a JSON object")
    manifests = doc.get("manifests")
    if manifests is None:
        manifests = doc["manifests"] = []
    if not isinstance(manifests, list):
        raise LayoutError(what, "'manifests' is not a list")
    if len(manifests) > MAX_INDEX_ENTRIES:
        raise LayoutError(what, f"lists {len(manifests)} manifests; at most {MAX_INDEX_ENTRIES}")
    entries = []
    for i, obj in enumerate(manifests):
        try:
            entries.append(Descriptor.from_json(obj))
        except (ImagevetError, TypeError, ValueError) as e:
            raise LayoutError(what, f"manifests[{i}]: {str(e)[:200]}") from e
    return Index(doc, tuple(entries))


def check_layout_file(files: LayoutFiles) -> None:
    """Refuse an ``oci-layout`` file that is not JSON or names another layout version."""
    what = f"{files.label}: oci-layout"
    f = files.open("oci-layout")
    if f is None:
        return
    try:
        if f.size > MAX_SMALL_FILE:
            raise LayoutError(what, f"larger than {MAX_SMALL_FILE} bytes")
        data = f.read_all()
    finally:
        f.close()
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise LayoutError(what, "is not JSON") from None
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if version != LAYOUT_VERSION:
        raise LayoutError(what, f"imageLayoutVersion {str(version)[:40]!r} is not {LAYOUT_VERSION!r}")


def read_index(files: LayoutFiles) -> Index | None:
    """The layout's index, None when no layout is there (blocking: call in a thread)."""
    if not files.present():
        return None
    check_layout_file(files)
    f = files.open("index.json")
    if f is None:
        return Index(empty_index_doc(), ())
    try:
        if f.size > MAX_INDEX_SIZE:
            raise LayoutError(f"{files.label}: index.json", f"larger than {MAX_INDEX_SIZE >> 20} MiB")
        data = f.read_all()
    finally:
        f.close()
    return parse_index(data, files.label)


def sniff_media_type(data: bytes) -> str | None:
    """The ``mediaType`` of manifest JSON, or None when ``data`` is not a manifest."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    if "manifests" in doc:
        return mediatype.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mediatype.OCI_MANIFEST
    return None
