"""Find the evidence of a locked digest in its source store, run the scan, keep the files.

What is looked at, for one image digest (``imagevet lock``, when the digest is new to the lock,
or its evidence file is missing or damaged; see docs/evidence.md):

* its referrers (the OCI referrers API, else the ``sha256-<hex>`` fallback tag), as
  :meth:`~imagevet.engine.observe.Upstream.inspect` already listed them: classified from each
  descriptor's ``artifactType`` and annotations; a referrer whose descriptor does not say what
  it holds (an in-toto statement, a DSSE envelope, a sigstore bundle without a predicate
  annotation, no artifact type) is read (one manifest GET) for its layers' annotations;
* cosign's tags ``sha256-<hex>.sig``, ``.att``, ``.sbom``, when the tag listing has them: one
  manifest GET each; each layer is an item (``.att`` layers carry ``predicateType``);
* BuildKit attestation manifests inside the index (``vnd.docker.reference.type:
  attestation-manifest``): one manifest GET each; each layer is an item by its
  ``in-toto.io/predicate-type``, about the platform manifest ``vnd.docker.reference.digest``
  names.

Bounded: at most :data:`MAX_READS` manifest GETs per digest (small manifests, verified against
their digests; never a blob), and at most :data:`~imagevet.evidence.MAX_ITEMS` items kept
(the rest counted).  A read that fails leaves its item as the descriptor or tag says it, with a
warning: the evidence of one attachment never fails the lock.

The files live beside the lock, ``imagevet.evidence/<alg>-<hex>.json`` (named after their own
digest, :meth:`~imagevet.evidence.Evidence.to_bytes`), written atomically, never through a
symbolic link.  :class:`EvidenceKeeper` is what ``imagevet lock`` uses: it reads the old files,
collects, scans (once per digest and command), and holds the new files until the lock is
written; :func:`scan_verdicts` is what the planner is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from imagevet.digest import Digest
from imagevet.errors import EvidenceError, ImagevetError, InvalidDigestError, ScanError, StateError
from imagevet.evidence import (
    ANNOTATION_REFERENCE_DIGEST,
    ANNOTATION_REFERENCE_TYPE,
    ATTESTATION_MANIFEST,
    MAX_EVIDENCE_BYTES,
    MAX_ITEMS,
    Evidence,
    EvidenceItem,
    ScanVerdict,
    classify_artifact,
    classify_layer,
    parse_evidence,
    tag_kind,
)
from imagevet.lock import Lock, LockedImage, lock_path_for
from imagevet.manifest import Descriptor, ManifestFormatError, RawManifest
from imagevet.policy.model import Entry, Policy, Scan
from imagevet.reference import Reference
from imagevet.scanreport import ScanReport
from imagevet.statefiles import read_state_file, write_state_file
from imagevet.store import ImageStore

__all__ = [
    "MAX_LAYERS",
    "MAX_READS",
    "EvidenceKeeper",
    "Scanner",
    "collect_evidence",
    "evidence_dir",
    "evidence_file",
    "lock_evidence",
    "prune_evidence",
    "read_evidence",
    "scan_verdicts",
    "scan_verdicts_for",
    "write_evidence",
]

log = logging.getLogger(__name__)

MAX_READS = 16
"""Manifest GETs spent on one digest's evidence (attestation manifests, cosign tags, referrers)."""
MAX_LAYERS = 32
"""Layers of one attachment manifest kept as items."""
_SUFFIXES = (".sig", ".att", ".sbom")
_FILE_RE = re.compile(r"^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})\.json\Z")
_UNSAID = frozenset({"attestation", "other"})

Scanner = Callable[[Scan, str], Awaitable[ScanReport]]
"""Runs a scan (:func:`imagevet.engine.scan.run_scanner` in real runs)."""


# ---- files -------------------------------------------------------------------------------------


def evidence_dir(lock_path: Path) -> Path:
    """The directory of a lock's evidence files: ``imagevet.lock`` -> ``imagevet.evidence``."""
    return lock_path.with_suffix(".evidence")


def evidence_file(directory: Path, digest: Digest) -> Path:
    return directory / f"{digest.algorithm}-{digest.hex}.json"


def read_evidence(directory: Path, digest: Digest) -> Evidence:
    """The evidence file the lock names by ``digest``; EvidenceError when it is missing,
    damaged, not what the lock names, or cannot be read."""
    path = evidence_file(directory, digest)
    try:
        data = read_state_file(path, limit=MAX_EVIDENCE_BYTES)
    except StateError as e:
        raise EvidenceError(str(path), str(e)) from None
    if data is None:
        raise EvidenceError(str(path), "missing (the lock names it)")
    return parse_evidence(data, digest, what=str(path))


def write_evidence(directory: Path, data: bytes) -> Digest:
    """Write one evidence file (its canonical bytes) atomically; its digest names it."""
    digest = Digest.of(data)
    path = evidence_file(directory, digest)
    try:
        if read_state_file(path, limit=MAX_EVIDENCE_BYTES) == data:
            return digest  # already there, byte for byte
    except StateError:
        pass  # damaged or odd: written again below (a symlink is refused there)
    write_state_file(path, data)
    return digest


def _referenced(value: Any) -> Iterator[str]:
    """Every ``evidence`` value in plain data (unreadable lock entries are kept as read)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "evidence" and isinstance(v, str):
                yield v
            else:
                yield from _referenced(v)
    elif isinstance(value, list):
        for v in value:
            yield from _referenced(v)


def lock_evidence(lock: Lock) -> set[Digest]:
    """Every evidence digest ``lock`` names (unreadable entries included)."""
    out: set[Digest] = set()
    for entry in lock.entries:
        for image in (*entry.tags.values(), *entry.digests.values()):
            if image.evidence is not None:
                out.add(image.evidence)
    for bad in lock.unreadable:
        for text in _referenced(bad.data):
            with contextlib.suppress(InvalidDigestError):
                out.add(Digest.parse(text))
    return out


def prune_evidence(directory: Path, keep: Iterable[Digest]) -> list[Path]:
    """Remove the evidence files (by their name's form only) that ``keep`` does not name;
    the removed paths.  Nothing else in the directory is touched."""
    wanted = {evidence_file(directory, d).name for d in keep}
    removed: list[Path] = []
    try:
        names = sorted(p.name for p in directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        if _FILE_RE.match(name) and name not in wanted:
            path = directory / name
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


# ---- collecting ----------------------------------------------------------------------------------


class _Reader:
    """Manifest GETs within one digest's budget."""

    def __init__(self, store: ImageStore, repo: Reference, gate: asyncio.Semaphore | None) -> None:
        self.store = store
        self.repo = repo
        self.gate = gate
        self.left = MAX_READS

    async def get(self, ref: Reference) -> RawManifest | None:
        if self.left <= 0:
            return None
        self.left -= 1
        try:
            if self.gate is None:
                return await self.store.get_manifest(ref)
            async with self.gate:
                return await self.store.get_manifest(ref)
        except ImagevetError as e:
            log.warning("evidence: cannot read %s: %s", ref, e)
            return None


def _layers(manifest: RawManifest) -> list[Descriptor]:
    try:
        raw = manifest.json.get("layers")
        layers = raw if isinstance(raw, list) else []
        return [Descriptor.from_json(d) for d in layers[:MAX_LAYERS]]
    except (ManifestFormatError, InvalidDigestError):
        return []


def _annotations(manifest: RawManifest) -> dict[str, str]:
    try:
        raw = manifest.json.get("annotations")
    except ManifestFormatError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


async def _from_referrers(
    reader: _Reader, referrers: Iterable[Descriptor], items: list[EvidenceItem]
) -> None:
    for d in referrers:
        kind, typ = classify_artifact(d.artifact_type, d.annotations)
        said = kind not in _UNSAID and bool(typ)
        manifest = None if said else await reader.get(reader.repo.with_digest(d.digest))
        layers = _layers(manifest) if manifest is not None else []
        if manifest is None or not layers:
            items.append(EvidenceItem(kind, typ, d.digest, "referrer"))
            continue
        top = {**_annotations(manifest), **d.annotations}
        fallback = (kind, typ) if kind != "other" or typ else classify_artifact(manifest.artifact_type, top)
        for layer in layers:
            found = classify_artifact(layer.media_type, {**top, **layer.annotations})
            lk, lt = fallback if found[0] == "other" else found
            items.append(EvidenceItem(lk, lt, d.digest, "referrer", layer.digest))


async def _from_tags(
    reader: _Reader, digest: Digest, listed: Collection[str], items: list[EvidenceItem]
) -> None:
    for suffix in _SUFFIXES:
        tag = digest.tag(suffix)
        if tag is None or tag not in listed:
            continue
        ref = reader.repo.with_tag(tag)
        manifest = await reader.get(ref)
        if manifest is None:
            head = await _head(reader, ref)
            if head is not None:
                items.append(EvidenceItem(tag_kind(suffix), "", head, "tag"))
            continue
        layers = _layers(manifest)
        for layer in layers:
            kind, typ = classify_layer(layer.media_type, layer.annotations, suffix)
            items.append(EvidenceItem(kind, typ, manifest.digest, "tag", layer.digest))
        if not layers:
            items.append(EvidenceItem(tag_kind(suffix), "", manifest.digest, "tag"))


async def _head(reader: _Reader, ref: Reference) -> Digest | None:
    try:
        found = await reader.store.head_manifest(ref)
    except ImagevetError as e:
        log.warning("evidence: cannot read %s: %s", ref, e)
        return None
    return found.digest if found is not None else None


async def _from_index(reader: _Reader, manifest: RawManifest, items: list[EvidenceItem]) -> None:
    if not manifest.is_index:
        return
    try:
        children = manifest.children()
    except (ManifestFormatError, InvalidDigestError):
        return
    for child in children:
        if child.annotations.get(ANNOTATION_REFERENCE_TYPE) != ATTESTATION_MANIFEST:
            continue
        try:
            subject: Digest | None = Digest.parse(str(child.annotations.get(ANNOTATION_REFERENCE_DIGEST)))
        except InvalidDigestError:
            subject = None
        att = await reader.get(reader.repo.with_digest(child.digest))
        layers = _layers(att) if att is not None else []
        for layer in layers:
            kind, typ = classify_artifact(layer.media_type, layer.annotations)
            items.append(EvidenceItem(kind, typ, child.digest, "index", layer.digest, subject))
        if not layers:
            items.append(EvidenceItem("attestation", ATTESTATION_MANIFEST, child.digest, "index", None, subject))


async def collect_evidence(
    store: ImageStore,
    repo: Reference,
    manifest: RawManifest,
    referrers: Iterable[Descriptor],
    listed: Collection[str],
    *,
    gate: asyncio.Semaphore | None = None,
) -> Evidence:
    """The evidence of ``manifest`` (the image, read from ``repo``) from its ``referrers``,
    cosign's tags among ``listed`` and the attestation manifests of its index (see the module
    docstring); ``gate`` bounds the GETs in flight across the run."""
    reader = _Reader(store, repo.repo(), gate)
    items: list[EvidenceItem] = []
    listed_referrers = list(referrers)
    omitted = max(0, len(listed_referrers) - MAX_ITEMS)
    await _from_index(reader, manifest, items)
    await _from_tags(reader, manifest.digest, listed, items)
    await _from_referrers(reader, listed_referrers[:MAX_ITEMS], items)
    return Evidence(manifest.digest, tuple(items), omitted)


# ---- what ``imagevet lock`` keeps ---------------------------------------------------------------


class EvidenceKeeper:
    """The evidence of one ``imagevet lock`` run: the old files it reads, the new files it will
    write (:attr:`files`, written by the caller before the lock), the problems it reports."""

    def __init__(
        self,
        directory: Path,
        scanner: Scanner | None = None,
        *,
        rescan: bool = False,
        scan_jobs: int = 2,
    ) -> None:
        self.directory = directory
        self.scanner = scanner
        self.rescan = rescan
        self.files: dict[Digest, bytes] = {}
        self.problems: list[str] = []
        self.scanned: list[tuple[str, str]] = []
        """(pinned reference, outcome) of every scan run, for the command's output."""
        self._gate = asyncio.Semaphore(scan_jobs)
        self._scans: dict[tuple[Digest, tuple[str, ...]], asyncio.Task[tuple[ScanReport | None, str | None]]] = {}
        self._read: dict[Digest, Evidence | None] = {}

    def old(self, image: LockedImage) -> Evidence | None:
        """The evidence file ``image`` names, read once; None (and a problem) when it is
        missing or damaged."""
        if image.evidence is None:
            return None
        if image.evidence not in self._read:
            try:
                self._read[image.evidence] = read_evidence(self.directory, image.evidence)
            except EvidenceError as e:
                self.problems.append(f"{e}; collected again from upstream")
                self._read[image.evidence] = None
        return self._read[image.evidence]

    def needs_collecting(self, image: LockedImage) -> bool:
        """Whether ``image`` names an evidence file that cannot be read (it is collected again)."""
        return image.evidence is not None and self.old(image) is None

    async def _scan(self, scan: Scan, ref: str) -> tuple[ScanReport | None, str | None]:
        assert self.scanner is not None
        async with self._gate:
            try:
                report = await self.scanner(scan, ref)
            except ScanError as e:
                self.scanned.append((ref, f"no verdict: {e.reason}"))
                return None, e.reason
        self.scanned.append((ref, report.summary()))
        return report, None

    async def keep(self, entry: Entry, image: LockedImage, found: Evidence | None) -> LockedImage:
        """``image`` naming its evidence: ``found`` (just collected) or its old file's, scanned
        when the entry asks for a scan and there is no verdict yet (or ``rescan``)."""
        evidence = found if found is not None else self.old(image)
        if evidence is None:
            evidence = Evidence(image.digest)
        if entry.scan is not None and self.scanner is not None and (self.rescan or not evidence.scanned):
            key = (image.digest, entry.scan.command)
            task = self._scans.get(key)
            if task is None:
                ref = str(entry.source.with_digest(image.digest))
                task = self._scans[key] = asyncio.ensure_future(self._scan(entry.scan, ref))
            report, error = await asyncio.shield(task)
            evidence = evidence.with_scan(report, error)
        if evidence.empty:
            return replace(image, evidence=None)
        data = evidence.to_bytes()
        digest = Digest.of(data)
        self.files[digest] = data
        return replace(image, evidence=digest)

    def write(self, keep: Iterable[Digest]) -> None:
        """Write the new files ``keep`` names (those the lock about to be written names)."""
        for digest in sorted(set(keep)):
            data = self.files.get(digest)
            if data is not None:
                write_evidence(self.directory, data)


def scan_verdicts(policy: Policy, lock: Lock, directory: Path) -> dict[Digest, ScanVerdict]:
    """For each digest the lock records under an entry with a scan: its scan's verdict, or
    why there is none (a failed scan, a missing or damaged evidence file).  A digest without
    an evidence file, or whose file holds no scan, is left out (the planner holds it: no scan
    is recorded)."""
    out: dict[Digest, ScanVerdict] = {}
    for entry in policy.entries:
        if entry.scan is None:
            continue
        locked = lock.entry(entry.key)
        if locked is None:
            continue
        for image in (*locked.tags.values(), *locked.digests.values()):
            if image.evidence is None or image.digest in out:
                continue
            try:
                evidence = read_evidence(directory, image.evidence)
            except EvidenceError as e:
                out[image.digest] = ScanVerdict(problem=f"the evidence file cannot be read: {e.reason}")
                continue
            if evidence.scan is not None:
                out[image.digest] = ScanVerdict(evidence.scan)
            elif evidence.scan_error is not None:
                out[image.digest] = ScanVerdict(problem=evidence.scan_error)
    return out


def scan_verdicts_for(policy: Policy, lock: Lock) -> Mapping[Digest, ScanVerdict] | None:
    """:func:`scan_verdicts` for the lock beside ``policy`` when an entry asks for a scan;
    None (nothing read) when none does."""
    if not any(e.scan is not None for e in policy.entries):
        return None
    return scan_verdicts(policy, lock, evidence_dir(lock_path_for(policy.path)))
