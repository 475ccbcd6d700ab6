"""What the catalog shows of the evidence ``imagevet lock`` kept beside the lock: each item
found upstream (signatures, SBOMs, provenance, attestations) and the scan, per locked digest.

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
from imagevet.lock import Lock
from imagevet.report.model import Evidence, EvidenceSource

__all__ = ["evidence_views", "lock_evidence_source"]


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


def lock_evidence_source(lock: Lock, lock_path: Path) -> EvidenceSource:
    """The evidence of each locked digest, read from the files the lock names (once each)."""
    named: dict[Digest, Digest] = {}
    for entry in lock.entries:
        for image in (*entry.tags.values(), *entry.digests.values()):
            if image.evidence is not None:
                named[image.digest] = image.evidence
    directory = evidence_dir(lock_path)
    seen: dict[Digest, list[Evidence]] = {}

    def source(digest: Digest) -> Sequence[Evidence]:
        file = named.get(digest)
        if file is None:
            return ()
        if file not in seen:
            try:
                seen[file] = evidence_views(read_evidence(directory, file))
            except ImagevetError as e:
                seen[file] = [Evidence("damaged", f"evidence file unreadable: {e}", str(file))]
        return seen[file]

    return source
