"""What the catalog shows of the evidence ``imagevet lock`` kept: the signature that verified a
digest (the lock's ``verified`` record), each item found upstream (signatures, SBOMs,
provenance, attestations) and the scan, per locked digest.

The lock names an evidence file per digest (``imagevet.evidence/sha256-<hex>.json``, see
:mod:`imagevet.evidence`); a file that is missing or damaged shows as such on the page, never
stops the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagevet.digest import Digest
from imagevet.engine.evidence import evidence_dir, read_evidence
from imagevet.errors import ImagevetError
from imagevet.evidence import Evidence as Kept
from imagevet.lock import Lock, Verified
from imagevet.report.model import Evidence, EvidenceSource

__all__ = ["evidence_views", "lock_evidence_source", "verified_view"]


def evidence_views(kept: Kept) -> list[Evidence]:
    """The report's lines for one evidence file: one per item, the scan, what was left out."""
    out = [
        Evidence(item.kind, f"{item.type} (found by {item.found})", str(item.manifest))
        for item in kept.items
    ]
    if kept.omitted:
        out.append(Evidence("other", f"{kept.omitted} more items found upstream, not recorded"))
    if kept.scan is not None:
        version = f" {kept.scan.version}" if kept.scan.version else ""
        out.append(Evidence("scan", f"{kept.scan.scanner}{version}: {kept.scan.summary()}"))
    elif kept.scan_error is not None:
        out.append(Evidence("scan", f"no verdict: {kept.scan_error}"))
    return out


def verified_view(verified: Verified) -> Evidence:
    """The line for the signature that verified a digest under its ``verify:`` rule."""
    if verified.key is not None:
        who = f"key {verified.key}"
    else:
        who = f"keyless: {verified.identity} from {verified.issuer}"
    return Evidence("signature", f"verified: cosign signature by {who}", str(verified.signature))


def lock_evidence_source(lock: Lock, lock_path: Path) -> EvidenceSource:
    """The evidence of each locked digest: its ``verified`` record, and what the file the lock
    names holds (each file read once)."""
    named: dict[Digest, Digest] = {}
    verified: dict[Digest, Verified] = {}
    for entry in lock.entries:
        for image in (*entry.tags.values(), *entry.digests.values()):
            if image.evidence is not None:
                named[image.digest] = image.evidence
            if image.verified is not None:
                verified[image.digest] = image.verified
    directory = evidence_dir(lock_path)
    seen: dict[Digest, list[Evidence]] = {}

    def source(digest: Digest) -> Sequence[Evidence]:
        out = [verified_view(verified[digest])] if digest in verified else []
        file = named.get(digest)
        if file is None:
            return out
        if file not in seen:
            try:
                seen[file] = evidence_views(read_evidence(directory, file))
            except ImagevetError as e:
                seen[file] = [Evidence("damaged", f"evidence file unreadable: {e}", str(file))]
        return out + seen[file]

    return source
