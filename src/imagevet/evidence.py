"""Evidence kept with an approval: what was found upstream for one locked digest, as data.

Pure: values, their canonical JSON and the rules that classify what a registry holds.  Finding
it in a store is :mod:`imagevet.engine.evidence`; see docs/evidence.md.

An :class:`Evidence` record lists, for one image digest, every :class:`EvidenceItem` found:

* ``kind``: ``sbom``, ``provenance``, ``signature``, ``attestation`` (an in-toto statement of
  another predicate, or one whose predicate is not said) or ``other``;
* ``type``: the in-toto predicate type when it is known (``https://slsa.dev/provenance/v1``),
  else the artifact type or the layer's media type;
* ``manifest``: the digest of the manifest holding it, and ``layer``, the digest of the layer
  when it was read from the manifest's layers;
* ``found``: ``referrer`` (OCI referrers API or its ``sha256-<hex>`` fallback tag), ``tag``
  (cosign's ``sha256-<hex>.sig`` / ``.att`` / ``.sbom``) or ``index`` (a BuildKit attestation
  manifest inside the image index); ``subject``: for ``index``, the platform manifest the
  attestation is about (``vnd.docker.reference.digest``).

and, when the policy asks for it, the vulnerability scan: the scanner's counts by severity
(:class:`~imagevet.scanreport.ScanReport`) or why the scan gave no verdict.

The file form (:meth:`Evidence.to_bytes`) is canonical: JSON with sorted keys, two-space
indentation, ASCII only, items sorted and unique, absent values left out, one final newline.
The same evidence always gives the same bytes, so the file can be named by its own digest and
the lock can name it (``evidence: "sha256:…"``): the lock's diff changes exactly when the
evidence does.  :func:`parse_evidence` accepts only that form (and the digest named), so a file
edited by hand or damaged is reported, never half-read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imagevet.digest import Digest
from imagevet.errors import EvidenceError, InvalidDigestError
from imagevet.scanreport import SEVERITIES, ScanReport

__all__ = [
    "ANNOTATION_BUNDLE_PREDICATE",
    "ANNOTATION_COSIGN_PREDICATE",
    "ANNOTATION_INTOTO_PREDICATE",
    "ANNOTATION_REFERENCE_DIGEST",
    "ANNOTATION_REFERENCE_TYPE",
    "ATTESTATION_MANIFEST",
    "EVIDENCE_VERSION",
    "FOUND",
    "KINDS",
    "MAX_EVIDENCE_BYTES",
    "MAX_ITEMS",
    "Evidence",
    "EvidenceItem",
    "ScanVerdict",
    "classify_artifact",
    "classify_layer",
    "clean_text",
    "kind_of_predicate",
    "parse_evidence",
    "scan_hold_reason",
    "tag_kind",
]

EVIDENCE_VERSION = 1
KINDS: tuple[str, ...] = ("sbom", "provenance", "signature", "attestation", "other")
FOUND: tuple[str, ...] = ("referrer", "tag", "index")
MAX_ITEMS = 256
"""Items kept per digest; more are counted in :attr:`Evidence.omitted` (a hostile listing of
thousands of referrers costs one line, not a huge file)."""
MAX_EVIDENCE_BYTES = 1 << 20
"""The largest evidence file read (256 items and a scan are well under 200 KiB)."""
_MAX_TYPE = 256

# BuildKit attestation storage (docs.docker.com/build/metadata/attestations/attestation-storage)
ANNOTATION_REFERENCE_TYPE = "vnd.docker.reference.type"
ANNOTATION_REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"
ANNOTATION_INTOTO_PREDICATE = "in-toto.io/predicate-type"
# cosign's .att layers (specs/ATTESTATION_SPEC.md) and sigstore bundles as referrers (BUNDLE_SPEC.md)
ANNOTATION_COSIGN_PREDICATE = "predicateType"
ANNOTATION_BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"
_PREDICATE_ANNOTATIONS = (
    ANNOTATION_INTOTO_PREDICATE,
    ANNOTATION_BUNDLE_PREDICATE,
    ANNOTATION_COSIGN_PREDICATE,
)

_SIGNATURE_TYPES = frozenset(
    {
        "application/vnd.dev.cosign.simplesigning.v1+json",  # cosign .sig layers
        "application/vnd.dev.cosign.artifact.sig.v1+json",  # cosign signatures as OCI 1.1 referrers
        "application/vnd.cncf.notary.signature",  # Notary Project (notation)
    }
)
_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"  # .v0.3+json, +json;version=0.3
_SBOM_TYPES = frozenset(
    {
        "text/spdx",
        "text/spdx+json",
        "application/spdx+json",
        "application/spdx+xml",
        "application/spdx+yaml",
        "application/vnd.cyclonedx",
        "application/vnd.cyclonedx+json",
        "application/vnd.cyclonedx+xml",
        "application/vnd.syft+json",
        "application/vnd.dev.cosign.artifact.sbom.v1+json",
    }
)
_STATEMENT_TYPES = frozenset(
    {"application/vnd.in-toto+json", "application/vnd.dsse.envelope.v1+json"}
)
_PROVENANCE_PREFIXES = ("https://slsa.dev/provenance/",)
_SBOM_PREFIXES = ("https://spdx.dev/document", "https://cyclonedx.org/bom")
_CONTROL = re.compile(r"[^\x20-\x7e]")


def clean_text(value: object) -> str:
    """A type name fit to keep: printable ASCII (anything else escaped), at most 256 characters.
    Annotations and artifact types are upstream input like any other."""
    text = value if isinstance(value, str) else ""
    text = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text[:_MAX_TYPE]


def kind_of_predicate(predicate: str) -> str:
    """``provenance`` for SLSA provenance, ``sbom`` for SPDX and CycloneDX documents,
    ``attestation`` for any other in-toto predicate."""
    p = predicate.lower()
    if p.startswith(_PROVENANCE_PREFIXES):
        return "provenance"
    if p.startswith(_SBOM_PREFIXES):
        return "sbom"
    return "attestation"


def _predicate(annotations: Mapping[str, str]) -> str | None:
    for name in _PREDICATE_ANNOTATIONS:
        value = annotations.get(name)
        if isinstance(value, str) and value:
            return clean_text(value)
    return None


def classify_artifact(artifact_type: str | None, annotations: Mapping[str, str]) -> tuple[str, str]:
    """``(kind, type)`` of a referrer (or a layer) from its artifact (or media) type and its
    annotations: a predicate-type annotation wins; then signatures (cosign, sigstore bundles,
    notation), SBOM documents, in-toto statements and DSSE envelopes; anything else is
    ``other``."""
    predicate = _predicate(annotations)
    if predicate is not None:
        return kind_of_predicate(predicate), predicate
    at = clean_text(artifact_type or "")
    base = at.split(";", 1)[0].strip().lower()
    if base in _SIGNATURE_TYPES or base.startswith(_BUNDLE_PREFIX):
        return "signature", at
    if base in _SBOM_TYPES:
        return "sbom", at
    if base in _STATEMENT_TYPES:
        return "attestation", at
    return "other", at


def classify_layer(media_type: str, annotations: Mapping[str, str], suffix: str) -> tuple[str, str]:
    """``(kind, type)`` of one layer of a cosign attachment tag (``suffix``: ``.sig``, ``.att``,
    ``.sbom``): what the tag says, refined by the layer's predicate annotation or media type."""
    kind, typ = classify_artifact(media_type, annotations)
    if kind != "other":
        return kind, typ
    return tag_kind(suffix), typ


def tag_kind(suffix: str) -> str:
    """The kind cosign's tag suffix stands for: ``.sig`` signature, ``.att`` attestation,
    ``.sbom`` sbom."""
    return {".sig": "signature", ".att": "attestation", ".sbom": "sbom"}.get(suffix, "other")


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """One thing found upstream about an image (see the module docstring)."""

    kind: str
    type: str
    manifest: Digest
    found: str
    layer: Digest | None = None
    subject: Digest | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.found not in FOUND:
            raise ValueError(f"found must be one of {', '.join(FOUND)}, not {self.found!r}")
        if clean_text(self.type) != self.type:
            raise ValueError(f"type {self.type[:80]!r}: printable ASCII, at most {_MAX_TYPE}")

    def sort_key(self) -> tuple[str, ...]:
        return (
            self.found, str(self.manifest), str(self.layer or ""), str(self.subject or ""),
            self.kind, self.type,
        )

    def to_json(self) -> dict[str, str]:
        out = {"kind": self.kind, "type": self.type, "manifest": str(self.manifest), "found": self.found}
        if self.layer is not None:
            out["layer"] = str(self.layer)
        if self.subject is not None:
            out["subject"] = str(self.subject)
        return out


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything kept for one locked digest (``subject``): items found, how many more were
    left out (past :data:`MAX_ITEMS`), and the scan (a report, or why there is none)."""

    subject: Digest
    items: tuple[EvidenceItem, ...] = ()
    omitted: int = 0
    scan: ScanReport | None = None
    scan_error: str | None = None
    """Why the scanner gave no verdict (it failed, timed out, printed no report)."""

    def __post_init__(self) -> None:
        if self.omitted < 0:
            raise ValueError("omitted must not be negative")
        unique = {i.sort_key(): i for i in self.items}
        items = [unique[k] for k in sorted(unique)]
        omitted = self.omitted + max(0, len(items) - MAX_ITEMS)
        object.__setattr__(self, "items", tuple(items[:MAX_ITEMS]))
        object.__setattr__(self, "omitted", omitted)
        if self.scan is not None and self.scan_error is not None:
            raise ValueError("a scan has a report or an error, not both")
        if self.scan_error is not None:
            object.__setattr__(self, "scan_error", clean_text(self.scan_error)[:_MAX_ERROR])

    @property
    def empty(self) -> bool:
        """Nothing found and no scan: no file is written, the lock names none."""
        return not self.items and not self.omitted and self.scan is None and self.scan_error is None

    @property
    def scanned(self) -> bool:
        """Whether a scan gave a verdict (a report; an error is no verdict)."""
        return self.scan is not None

    def kinds(self) -> dict[str, int]:
        """How many items of each kind."""
        out: dict[str, int] = {}
        for item in self.items:
            out[item.kind] = out.get(item.kind, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": EVIDENCE_VERSION,
            "subject": str(self.subject),
            "items": [i.to_json() for i in self.items],
        }
        if self.omitted:
            out["omitted"] = self.omitted
        if self.scan is not None:
            scan: dict[str, Any] = {
                "scanner": self.scan.scanner,
                "counts": {s: self.scan.count(s) for s in SEVERITIES},
            }
            if self.scan.version is not None:
                scan["version"] = self.scan.version
            out["scan"] = scan
        elif self.scan_error is not None:
            out["scan"] = {"error": self.scan_error}
        return out

    def to_bytes(self) -> bytes:
        """The canonical file form (see the module docstring)."""
        return (json.dumps(self.to_json(), sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()

    @property
    def digest(self) -> Digest:
        """The digest of :meth:`to_bytes`: what the lock records and the file is named after."""
        return Digest.of(self.to_bytes())

    def with_scan(self, scan: ScanReport | None, error: str | None) -> Evidence:
        return Evidence(self.subject, self.items, self.omitted, scan, error)


_MAX_ERROR = 600


class _Bad(Exception):
    pass


def _digest(value: Any, where: str) -> Digest:
    if not isinstance(value, str):
        raise _Bad(f"{where} is not a digest")
    try:
        return Digest.parse(value)
    except InvalidDigestError as e:
        raise _Bad(f"{where}: {e}") from None


def _object(value: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{where} is not an object")
    extra = set(value) - allowed
    if extra:
        raise _Bad(f"{where}: unknown field {sorted(extra)[0]!r}")
    missing = required - set(value)
    if missing:
        raise _Bad(f"{where}: missing {sorted(missing)[0]!r}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{where} is not a string")
    return value


def _from_json(data: Any) -> Evidence:
    top = _object(data, "the file", {"version", "subject", "items", "omitted", "scan"},
                  {"version", "subject", "items"})
    if top["version"] != EVIDENCE_VERSION:
        raise _Bad(f"version {top['version']!r} is not {EVIDENCE_VERSION}")
    subject = _digest(top["subject"], "subject")
    raw_items = top["items"]
    if not isinstance(raw_items, list) or len(raw_items) > MAX_ITEMS:
        raise _Bad(f"items is not a list of at most {MAX_ITEMS}")
    items = []
    for n, raw in enumerate(raw_items):
        where = f"items[{n}]"
        obj = _object(raw, where, {"kind", "type", "manifest", "found", "layer", "subject"},
                      {"kind", "type", "manifest", "found"})
        try:
            items.append(
                EvidenceItem(
                    _str(obj["kind"], f"{where}.kind"), _str(obj["type"], f"{where}.type"),
                    _digest(obj["manifest"], f"{where}.manifest"), _str(obj["found"], f"{where}.found"),
                    _digest(obj["layer"], f"{where}.layer") if "layer" in obj else None,
                    _digest(obj["subject"], f"{where}.subject") if "subject" in obj else None,
                )
            )
        except ValueError as e:
            raise _Bad(f"{where}: {e}") from None
    omitted = top.get("omitted", 0)
    if not isinstance(omitted, int) or isinstance(omitted, bool) or omitted < 0:
        raise _Bad("omitted is not a whole number")
    scan: ScanReport | None = None
    error: str | None = None
    if "scan" in top:
        raw_scan = top["scan"]
        if isinstance(raw_scan, dict) and "error" in raw_scan:
            error = _str(_object(raw_scan, "scan", {"error"}, {"error"})["error"], "scan.error")
        else:
            obj = _object(raw_scan, "scan", {"scanner", "counts", "version"}, {"scanner", "counts"})
            counts = obj["counts"]
            if not isinstance(counts, dict):
                raise _Bad("scan.counts is not an object")
            try:
                scan = ScanReport(
                    _str(obj["scanner"], "scan.scanner"), counts,
                    _str(obj["version"], "scan.version") if "version" in obj else None,
                )
            except ValueError as e:
                raise _Bad(f"scan: {e}") from None
    return Evidence(subject, tuple(items), omitted, scan, error)


def parse_evidence(data: bytes, expected: Digest, *, what: str = "evidence") -> Evidence:
    """The evidence in ``data``, which must hash to ``expected`` and be in the canonical form
    :meth:`Evidence.to_bytes` writes; EvidenceError (with ``what``) otherwise."""
    if len(data) > MAX_EVIDENCE_BYTES:
        raise EvidenceError(what, f"larger than {MAX_EVIDENCE_BYTES} bytes")
    actual = Digest.of(data, expected.algorithm)
    if actual != expected:
        raise EvidenceError(what, f"its content is {actual}, not the {expected} the lock names")
    try:
        evidence = _from_json(json.loads(data))
    except (ValueError, RecursionError) as e:
        raise EvidenceError(what, "not JSON" if not isinstance(e, _Bad) else str(e)) from None
    except _Bad as e:
        raise EvidenceError(what, str(e)) from None
    if evidence.to_bytes() != data:
        raise EvidenceError(what, "not in the canonical form imagevet writes")
    return evidence


@dataclass(frozen=True, slots=True)
class ScanVerdict:
    """What the planner knows of a digest's scan: the report, or why there is none (the scan
    failed, the evidence file is missing or damaged, no scan was recorded)."""

    report: ScanReport | None = None
    problem: str | None = field(default=None)


def scan_hold_reason(verdict: ScanVerdict | None, fail_on: str, digest: Digest) -> str | None:
    """Why a tag whose source is ``digest`` is held by its scan (None: it passes).

    Fail closed: no verdict holds it, as a report at or above ``fail_on`` does:
    ``scan: 2 critical, 5 high (fail_on: high)``."""
    short = f"{digest.algorithm}:{digest.hex[:12]}"
    if verdict is None:
        return (
            f"scan: no scan is recorded for {short}: run `imagevet lock` (it runs the scanner) "
            "and review the evidence"
        )
    if verdict.report is None:
        return f"scan: no verdict for {short}: {verdict.problem or 'unknown'}"
    failing = verdict.report.failing(fail_on)
    if not failing:
        return None
    counts = ", ".join(f"{n} {s}" for s, n in failing.items())
    return f"scan: {counts} (fail_on: {fail_on})"
