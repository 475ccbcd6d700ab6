"""Signed mirrors: after a copy, an in-toto attestation signed by the organization, pushed where
cosign finds it; and the check of it on any mirror (:func:`verify_attestation`).

What is pushed, in cosign's formats (sigstore/cosign at d6d86c2, read for this module):

* the **DSSE envelope** of the statement (:mod:`imagevet.signature.dsse`,
  :mod:`imagevet.signature.intoto`) is one layer, media type
  ``application/vnd.dsse.envelope.v1+json`` (``pkg/types``: ``DssePayloadType``), with the
  layer annotations cosign's ``static.NewAttestation`` gives it (``pkg/oci/static/signature.go``:
  ``dev.cosignproject.cosign/signature`` is ``""`` for an attestation, whose signature is inside
  the payload; ``cmd/cosign/cli/attest/attest.go``: ``predicateType``);
* on a target with the **OCI referrers API** (and an OCI layout, whose store lists referrers
  from the manifests it holds), a manifest whose ``subject`` is the mirrored manifest, as
  cosign's ``WriteAttestationsReferrer`` / ``WriteReferrer`` writes it
  (``pkg/oci/remote/write.go``): ``artifactType`` ``application/vnd.in-toto+json`` at the top
  and on the config, the config the empty descriptor ``application/vnd.oci.empty.v1+json`` of
  ``{}``, the annotation ``org.opencontainers.image.created``;
* and, on every target, the **``sha256-<hex>.att`` tag**, which is what ``cosign
  verify-attestation --key`` reads (``pkg/cosign/verify.go``: ``VerifyImageAttestations`` ->
  ``ociremote.AttestationTag``; its other path, ``GetBundles``, reads Sigstore bundles only, and
  no cosign verify path reads an in-toto referrer): an OCI image manifest made the way
  go-containerregistry's ``mutate.Append`` makes cosign's (``pkg/oci/mutate/signatures.go``
  ``AppendSignatures`` on ``pkg/oci/empty``'s base): the layers already there kept as they
  are (an upstream attestation copied along is never lost), ours appended, and the config
  re-made with the new layer's diff ID (a static layer's diff ID is its digest) and one more
  history entry.

A mirror that already carries a valid attestation by the same key saying the same (all but its
time) is not signed again (:meth:`MirrorPredicate.same_statement`); where one of its two
places lacks it, only that place gets one.  Whether a registry has the referrers API is learned
on the first push (the manifest with a subject is listed, or it is not: then it is deleted
where the registry allows) and remembered for the run.

Everything read back is hostile input: at most :data:`MAX_ATTESTATIONS` manifests, each layer
at most :data:`~imagevet.signature.dsse.MAX_ENVELOPE_BYTES`, every failure a reason, never an
exception out of :func:`verify_attestation`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from imagevet import __version__, mediatype
from imagevet.digest import Digest
from imagevet.errors import ImagevetError, NotFoundError, SignatureError
from imagevet.lock import Lock, render_lock
from imagevet.manifest import Descriptor, ManifestFormatError, RawManifest
from imagevet.plan import Copy, Noop, Update
from imagevet.policy import Policy
from imagevet.reference import Reference
from imagevet.signature.dsse import (
    INTOTO_PAYLOAD_TYPE,
    MAX_ENVELOPE_BYTES,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from imagevet.signature.intoto import (
    MIRROR_PREDICATE_TYPE,
    MirrorPredicate,
    Statement,
    parse_statement,
)
from imagevet.signature.keys import PrivateKey, PublicKey
from imagevet.store import ImageStore
from imagevet.sync import ActionOutcome, SyncReport

__all__ = [
    "ATT_SUFFIX",
    "DSSE_LAYER_MEDIA_TYPE",
    "MAX_ATTESTATIONS",
    "PREDICATE_TYPE_ANNOTATION",
    "SIGNATURE_ANNOTATION",
    "AttestResult",
    "Attestation",
    "AttestationCheck",
    "Attester",
    "Records",
    "att_manifest",
    "attestation_layer",
    "lock_records",
    "lock_sha256",
    "mirror_statement",
    "referrer_manifest",
    "sign_mirrors",
    "unsigned_last_run",
    "verify_attestation",
]

DSSE_LAYER_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE_ANNOTATION = "predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"
ATT_SUFFIX = ".att"
EMPTY_CONFIG = b"{}"
MAX_ATTESTATIONS = 32
"""Attestation manifests (referrers and the ``.att`` tag) read for one digest."""
MAX_LAYERS = 64
"""Layers of one attestation manifest looked at (cosign refuses more than 1000 at all)."""
MAX_CONFIG_BYTES = 1 << 20
MAX_ATT_LAYERS = 1000
"""cosign's ``maxLayers``: it refuses a ``.att`` image with more (``pkg/oci/mutate/signatures.go``)."""
_ZERO_TIME = "0001-01-01T00:00:00Z"  # go's zero time.Time, as go-containerregistry writes it


def lock_sha256(lock: Lock) -> str:
    """SHA-256 (hex) of the lock file's bytes as :func:`imagevet.lock.write_lock` writes them."""
    return hashlib.sha256(render_lock(lock).encode("utf-8")).hexdigest()


Records = Callable[[str, str | None], tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]]
"""``(entry name, tag) -> (signature record, scan record)``: what the lock says about how the
upstream digest was verified and scanned, for the predicate (None: nothing recorded)."""


def lock_records(policy: Policy, lock: Lock, source_digest: Digest) -> Records:
    """The default :data:`Records`: what ``lock`` says about the digest an entry's tag is locked
    at (``verified``: the signature that verified it; ``evidence``: the evidence file, whose
    scan counts and upstream items it names by digest), when it is ``source_digest``."""

    def records(entry_name: str, tag: str | None) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
        try:
            locked = lock.entry(policy.entry(entry_name).key)
        except KeyError:
            return None, None
        image = None
        if locked is not None:
            image = locked.tags.get(tag) if tag is not None else locked.digests.get(source_digest)
        if image is None or image.digest != source_digest:
            return None, None
        signature: dict[str, Any] | None = None
        if image.verified is not None:
            v = image.verified
            signature = {"signature": str(v.signature)}
            signature.update({k: x for k, x in (("key", v.key), ("identity", v.identity), ("issuer", v.issuer)) if x})
        scan = {"evidence": str(image.evidence)} if image.evidence is not None else None
        return signature, scan

    return records


def mirror_statement(
    policy: Policy,
    action: Copy | Update,
    mirrored: Digest,
    *,
    lock_hash: str,
    now: datetime,
    signature: Mapping[str, Any] | None = None,
    scan: Mapping[str, Any] | None = None,
) -> Statement:
    """The statement about the mirror ``action`` made: subject ``mirrored`` in the target
    repository, predicate from the policy entry and its approval."""
    entry = policy.entry(action.entry)
    approval = entry.approval
    tag = action.target.tag
    source = action.source.repo().with_tag(tag) if tag else action.source.repo()
    predicate = MirrorPredicate(
        source=str(source),
        source_digest=action.digest,
        entry=entry.name,
        approved_by=approval.approved_by,
        lock_sha256=lock_hash,
        time=now.astimezone(UTC).replace(microsecond=0),
        imagevet_version=__version__,
        reason=approval.reason,
        ticket=approval.ticket,
        expires=approval.expires.isoformat() if approval.expires else None,
        signature=signature,
        scan=scan,
    )
    return Statement(action.target.repo().name, mirrored, predicate)


# ---- the manifests, exactly as cosign writes them ---------------------------------------------


def attestation_layer(envelope: bytes, predicate_type: str = MIRROR_PREDICATE_TYPE) -> Descriptor:
    """The descriptor of a DSSE envelope layer, with cosign's attestation annotations."""
    return Descriptor(
        DSSE_LAYER_MEDIA_TYPE, Digest.of(envelope), len(envelope),
        annotations={SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type},
    )


def _desc_json(desc: Descriptor, *, artifact_type: str | None = None) -> dict[str, Any]:
    """A descriptor in go-containerregistry's field order (mediaType, size, digest, ...)."""
    out: dict[str, Any] = {"mediaType": desc.media_type, "size": desc.size, "digest": str(desc.digest)}
    if desc.annotations:
        out["annotations"] = dict(sorted(desc.annotations.items()))
    if artifact_type:
        out["artifactType"] = artifact_type
    return out


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def referrer_manifest(subject: Descriptor, layer: Descriptor, created: datetime) -> RawManifest:
    """The OCI 1.1 referrer cosign's ``WriteAttestationsReferrer`` writes for attestations."""
    config = Descriptor(mediatype.OCI_EMPTY, Digest.of(EMPTY_CONFIG), len(EMPTY_CONFIG))
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": _desc_json(config, artifact_type=INTOTO_PAYLOAD_TYPE),
        "layers": [_desc_json(layer)],
        "annotations": {CREATED_ANNOTATION: created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "subject": {"mediaType": subject.media_type, "size": subject.size, "digest": str(subject.digest)},
        "artifactType": INTOTO_PAYLOAD_TYPE,
    }
    return RawManifest.from_bytes(_dumps(doc), mediatype.OCI_MANIFEST)


def att_manifest(
    existing: RawManifest | None, existing_config: Mapping[str, Any] | None, layer: Descriptor
) -> tuple[RawManifest, bytes]:
    """The ``.att`` manifest with ``layer`` appended, and its config bytes.

    As ``mutate.Append`` on cosign's ``empty.Signatures()`` base: OCI manifest and config media
    types for a new tag; an existing tag keeps its media types, annotations and layers (each
    descriptor as it was), its config's diff IDs and history, and gains ours.  SignatureError
    (nothing written) for an existing tag that is not an image manifest, or that already has
    cosign's maximum of layers.
    """
    doc: dict[str, Any] = {}
    layers: list[Any] = []
    config_type = mediatype.OCI_CONFIG
    manifest_type = mediatype.OCI_MANIFEST
    if existing is not None:
        what = f"the .att manifest {existing.digest}"
        if not mediatype.is_manifest(existing.media_type):
            raise SignatureError(what, f"is a {existing.media_type[:100]}, not an image manifest: left as it is")
        doc = dict(existing.json)
        if isinstance(doc.get("layers"), list) and len(doc["layers"]) >= MAX_ATT_LAYERS:
            raise SignatureError(what, f"has {len(doc['layers'])} layers already (cosign reads at most {MAX_ATT_LAYERS})")
        raw_layers = doc.get("layers")
        layers = list(raw_layers) if isinstance(raw_layers, list) else []
        old_config = doc.get("config")
        if isinstance(old_config, dict) and isinstance(old_config.get("mediaType"), str):
            config_type = old_config["mediaType"]
        manifest_type = existing.media_type or manifest_type
    base = existing_config or {}
    rootfs = base.get("rootfs") if isinstance(base.get("rootfs"), dict) else {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    history = base.get("history")
    config: dict[str, Any] = {
        "architecture": base.get("architecture", "") if isinstance(base.get("architecture"), str) else "",
        "created": base.get("created", _ZERO_TIME) if isinstance(base.get("created"), str) else _ZERO_TIME,
        "history": [*(history if isinstance(history, list) else []), {"created": _ZERO_TIME}],
        "os": base.get("os", "") if isinstance(base.get("os"), str) else "",
        "rootfs": {
            "type": "layers",
            "diff_ids": [*(diff_ids if isinstance(diff_ids, list) else []), str(layer.digest)],
        },
        "config": base.get("config", {}) if isinstance(base.get("config"), dict) else {},
    }
    config_bytes = _dumps(config)
    out: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "size": len(config_bytes), "digest": str(Digest.of(config_bytes))},
        "layers": [*layers, _desc_json(layer)],
    }
    for key, value in doc.items():  # what else the manifest said (annotations, subject), kept
        if key not in out:
            out[key] = value
    return RawManifest.from_bytes(_dumps(out), manifest_type), config_bytes


# ---- reading attestations back ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    """One DSSE envelope attached to a subject, and every place it was found."""

    envelope: bytes
    referrers: tuple[Digest, ...] = ()
    """The referrer manifests holding it."""
    att_tag: str | None = None
    """The ``sha256-<hex>.att`` tag holding it."""

    @property
    def where(self) -> str:
        """``referrer sha256:..., tag sha256-<hex>.att``: where the envelope was found."""
        places = [f"referrer {d}" for d in self.referrers]
        if self.att_tag is not None:
            places.append(f"tag {self.att_tag}")
        return ", ".join(places)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _read_blob(store: ImageStore, repo: Reference, desc: Descriptor, limit: int) -> bytes:
    if desc.size > limit:
        raise SignatureError(f"{repo.name}@{desc.digest}", f"{desc.size} bytes is over {limit}")
    parts: list[bytes] = []
    async with store.open_blob(repo, desc) as stream:
        async for chunk in stream:
            parts.append(chunk)
    return b"".join(parts)


def _dsse_layers(manifest: RawManifest) -> list[Descriptor]:
    """The layers that may be imagevet attestations: DSSE envelopes whose predicateType
    annotation, if any, is ours (an upstream SLSA provenance is not looked into)."""
    raw = manifest.json.get("layers")
    out: list[Descriptor] = []
    for item in (raw if isinstance(raw, list) else [])[:MAX_LAYERS]:
        try:
            desc = Descriptor.from_json(item)
        except (ManifestFormatError, ImagevetError):
            continue
        kind = desc.annotations.get(PREDICATE_TYPE_ANNOTATION)
        if desc.media_type == DSSE_LAYER_MEDIA_TYPE and kind in (None, MIRROR_PREDICATE_TYPE):
            out.append(desc)
    return out


async def _find(store: ImageStore, repo: Reference, subject: Digest) -> tuple[list[_Found], list[str]]:
    """Every DSSE envelope attached to ``subject`` (referrers, then the ``.att`` tag), and
    what could not be read."""
    problems: list[str] = []
    manifests: list[tuple[str, Reference]] = []
    tag = subject.tag(ATT_SUFFIX)
    if tag is not None:  # first: what cosign reads is read whatever else is attached
        manifests.append((f"tag {tag}", repo.with_tag(tag)))
    try:
        for desc in await store.referrers(repo, subject):
            if desc.artifact_type in (None, "", INTOTO_PAYLOAD_TYPE) and mediatype.is_manifest(desc.media_type):
                manifests.append((f"referrer {desc.digest}", repo.with_digest(desc.digest)))
    except ImagevetError as e:
        problems.append(f"referrers of {subject}: {e}")
    if len(manifests) > MAX_ATTESTATIONS:
        problems.append(f"{len(manifests)} attestation manifests: only the first {MAX_ATTESTATIONS} were read")
        manifests = manifests[:MAX_ATTESTATIONS]
    by_digest: dict[Digest, _Found] = {}
    for where, ref in manifests:
        try:
            manifest = await store.get_manifest(ref)
        except NotFoundError:
            continue
        except ImagevetError as e:
            problems.append(f"{where}: {e}")
            continue
        for desc in _dsse_layers(manifest):
            seen = by_digest.get(desc.digest)
            if seen is None:
                try:
                    seen = _Found(await _read_blob(store, repo, desc, MAX_ENVELOPE_BYTES))
                except ImagevetError as e:
                    problems.append(f"{where}: layer {desc.digest}: {e}")
                    continue
            if ref.tag is not None:  # the .att tag
                seen = replace(seen, att_tag=ref.tag)
            elif ref.digest is not None:
                seen = replace(seen, referrers=(*seen.referrers, ref.digest))
            by_digest[desc.digest] = seen
    found = list(by_digest.values())
    return found, problems


@dataclass(frozen=True, slots=True)
class Attestation:
    """One imagevet attestation that verified: where it is, the key, what it says."""

    where: str
    """``referrer sha256:...``, ``tag sha256-<hex>.att``, or both (comma-separated)."""
    key_id: str
    statement: Statement
    referrers: tuple[Digest, ...] = ()
    att_tag: str | None = None

    @property
    def predicate(self) -> MirrorPredicate:
        return self.statement.predicate


@dataclass(frozen=True, slots=True)
class AttestationCheck:
    """What :func:`verify_attestation` found for one image."""

    ref: Reference
    digest: Digest | None
    """The digest checked (None: the image was not found)."""
    attestations: tuple[Attestation, ...] = ()
    """Those that verified, newest first."""
    problems: tuple[str, ...] = ()
    """Why each other envelope was refused, or why nothing was found."""

    @property
    def ok(self) -> bool:
        return bool(self.attestations)

    @property
    def latest(self) -> Attestation | None:
        return self.attestations[0] if self.attestations else None

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.ref),
            "digest": str(self.digest) if self.digest else None,
            "ok": self.ok,
            "attestations": [
                {"where": a.where, "key_id": a.key_id, "subject": a.statement.subject_name,
                 "predicate": a.predicate.to_json()}
                for a in self.attestations
            ],
            "problems": list(self.problems),
        }


def _check(found: _Found, subject: Digest, keys: Sequence[PublicKey], what: str) -> Attestation:
    envelope = parse_envelope(found.envelope, what=what)
    payload, key = verify_envelope(envelope, keys, payload_type=INTOTO_PAYLOAD_TYPE, what=what)
    statement, subjects = parse_statement(payload, what=what)
    if subject not in subjects:
        named = ", ".join(str(d) for d in subjects[:4])
        raise SignatureError(what, f"the statement is about {named}, not {subject}")
    return Attestation(found.where, key.key_id, statement, found.referrers, found.att_tag)


async def _checked(
    store: ImageStore, repo: Reference, subject: Digest, keys: Sequence[PublicKey]
) -> tuple[list[Attestation], list[str]]:
    found, problems = await _find(store, repo, subject)
    good: list[Attestation] = []
    for item in found:
        try:
            good.append(_check(item, subject, keys, f"{repo.name}@{subject} ({item.where})"))
        except SignatureError as e:
            problems.append(str(e))
    good.sort(key=lambda a: a.predicate.time, reverse=True)
    return good, problems


async def verify_attestation(
    store: ImageStore, ref: Reference, key: PublicKey | Sequence[PublicKey]
) -> AttestationCheck:
    """Find the imagevet attestations of the image ``ref`` names (its digest, else what its tag
    points at) and check them: the DSSE signature with ``key``, an in-toto statement of
    :data:`MIRROR_PREDICATE_TYPE` whose subject is that digest.  Never raises for what the
    store holds: every refusal is a reason in ``problems``; ``ok`` when one verified."""
    keys = [key] if isinstance(key, PublicKey) else list(key)
    digest = ref.digest
    if digest is None:
        try:
            head = await store.head_manifest(ref)
        except ImagevetError as e:
            return AttestationCheck(ref, None, problems=(str(e),))
        if head is None:
            return AttestationCheck(ref, None, problems=(f"{ref}: no such image",))
        digest = head.digest
    try:
        good, problems = await _checked(store, ref.repo(), digest, keys)
    except ImagevetError as e:
        return AttestationCheck(ref, digest, problems=(str(e),))
    if not good and not problems:
        problems = [f"{ref.repo().name}@{digest}: no imagevet attestation (no referrer, no {digest.tag(ATT_SUFFIX)} tag)"]
    return AttestationCheck(ref, digest, tuple(good), tuple(problems))


# ---- signing after a copy -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttestResult:
    """What :meth:`Attester.attest` did for one mirrored digest."""

    subject: Digest
    status: str
    """``signed`` (pushed now) or ``present`` (a valid one says the same already)."""
    where: str
    """``referrer sha256:..., tag sha256-<hex>.att`` (the referrer only where the target has
    the referrers API)."""

    def to_json(self) -> dict[str, str]:
        return {"subject": str(self.subject), "status": self.status, "where": self.where}


class Attester:
    """Signs and pushes attestations to one target store with one key, for one run.

    One per run: it remembers which registries turned out to have no referrers API, and what
    it signed (two tags of one digest in a run make one attestation).
    """

    def __init__(self, store: ImageStore, key: PrivateKey) -> None:
        self.store = store
        self.key = key
        self._no_referrers_api: set[str] = set()
        self._done: dict[tuple[str, Digest, str], AttestResult] = {}
        self._busy: dict[tuple[str, Digest], asyncio.Lock] = {}
        self._api_known: set[str] = set()
        self._probing: dict[str, asyncio.Lock] = {}

    async def attest(self, repo: Reference, subject: Digest, statement: Statement) -> AttestResult:
        """Make sure the mirror ``repo@subject`` carries ``statement`` signed by the key.

        Raises ImagevetError (a SignatureError, a registry error) when it cannot; nothing
        already attached is removed.
        """
        repo = repo.repo()
        # one subject at a time: its .att tag is a read-modify-write
        async with self._busy.setdefault((repo.name, subject), asyncio.Lock()):
            return await self._attest(repo, subject, statement)

    async def _attest(self, repo: Reference, subject: Digest, statement: Statement) -> AttestResult:
        mark = (repo.name, subject, _statement_key(statement))
        if mark in self._done:
            return self._done[mark]
        good, _ = await _checked(self.store, repo, subject, [self.key.public])
        same = [a for a in good if a.predicate.same_statement(statement.predicate)]
        registry = repo.registry or repo.name
        want_referrer = registry not in self._no_referrers_api and not any(a.referrers for a in same)
        want_tag = not any(a.att_tag for a in same)
        if not want_referrer and not want_tag:
            result = AttestResult(subject, "present", ", ".join(a.where for a in same))
            self._done[mark] = result
            return result
        envelope = sign_envelope(INTOTO_PAYLOAD_TYPE, statement.to_bytes(), self.key).to_json()
        layer = attestation_layer(envelope)
        places: list[str] = []
        if want_referrer:
            pushed = await self._referrer_once_known(repo, subject, envelope, layer, statement.predicate.time)
            if pushed is not None:
                places.append(f"referrer {pushed}")
        if want_tag:
            places.append(await self._push_att(repo, subject, envelope, layer))
        result = AttestResult(subject, "signed", ", ".join(places))
        self._done[mark] = result
        return result

    async def _referrer_once_known(
        self, repo: Reference, subject: Digest, envelope: bytes, layer: Descriptor, created: datetime
    ) -> Digest | None:
        """Push the referrer; the first push to a registry goes alone (it learns whether the
        registry has the referrers API: the images signed at the same time wait for it)."""
        registry = repo.registry or repo.name
        if registry in self._api_known:
            return await self._push_referrer(repo, subject, envelope, layer, created)
        async with self._probing.setdefault(registry, asyncio.Lock()):
            if registry in self._no_referrers_api:
                return None
            pushed = await self._push_referrer(repo, subject, envelope, layer, created)
            if pushed is not None:
                self._api_known.add(registry)
            return pushed

    async def _push_referrer(
        self, repo: Reference, subject: Digest, envelope: bytes, layer: Descriptor, created: datetime
    ) -> Digest | None:
        """Push the referrer; its digest, or None when the registry turned out to have no
        referrers API (then the manifest nothing lists is deleted where the registry allows)."""
        head = await self.store.head_manifest(repo.with_digest(subject))
        if head is None:
            raise SignatureError(f"{repo.name}@{subject}", "the mirrored image is not in the target")
        await self._blob(repo, Descriptor(mediatype.OCI_EMPTY, Digest.of(EMPTY_CONFIG), len(EMPTY_CONFIG)), EMPTY_CONFIG)
        await self._blob(repo, layer, envelope)
        manifest = referrer_manifest(Descriptor(head.media_type, head.digest, head.size), layer, created)
        await self.store.put_manifest(repo.with_digest(manifest.digest), manifest)
        listed = await self.store.referrers(repo, subject, tag_schema=False)
        if any(d.digest == manifest.digest for d in listed):
            return manifest.digest
        self._no_referrers_api.add(repo.registry or repo.name)
        with suppress(ImagevetError):
            await self.store.delete_manifest(repo.with_digest(manifest.digest))
        return None

    async def _push_att(self, repo: Reference, subject: Digest, envelope: bytes, layer: Descriptor) -> str:
        tag = subject.tag(ATT_SUFFIX)
        if tag is None:
            raise SignatureError(f"{repo.name}@{subject}", "the digest is too long for a .att tag")
        tag_ref = repo.with_tag(tag)
        existing: RawManifest | None = None
        config: Mapping[str, Any] | None = None
        with suppress(NotFoundError):
            existing = await self.store.get_manifest(tag_ref)
        if existing is not None:
            config = await self._config(repo, existing)
        manifest, config_bytes = att_manifest(existing, config, layer)
        config_desc = Descriptor.from_json(manifest.json["config"])
        await self._blob(repo, config_desc, config_bytes)
        await self._blob(repo, layer, envelope)
        await self.store.put_manifest(tag_ref, manifest)
        return f"tag {tag}"

    async def _config(self, repo: Reference, manifest: RawManifest) -> Mapping[str, Any] | None:
        """The existing ``.att`` config as JSON, or None when it cannot be read as one (then
        a new config is written: the layers, which cosign reads, are kept whatever it was)."""
        try:
            desc = Descriptor.from_json(manifest.json.get("config"))
            data = await _read_blob(self.store, repo, desc, MAX_CONFIG_BYTES)
            doc = json.loads(data)
        except (ImagevetError, ValueError, UnicodeDecodeError):
            return None
        return doc if isinstance(doc, dict) else None

    async def _blob(self, repo: Reference, desc: Descriptor, data: bytes) -> None:
        if await self.store.head_blob(repo, desc.digest) is None:
            await self.store.push_blob(repo, desc, _chunks(data))


def _statement_key(statement: Statement) -> str:
    doc = statement.predicate.to_json()
    doc.pop("time", None)
    doc.pop("imagevet", None)
    return json.dumps([statement.subject_name, doc], sort_keys=True)


NOT_SIGNED = "copied, but not signed: "
"""How an image's outcome message starts when its copy stood and its signing failed."""


def unsigned_last_run(summary: Mapping[str, Any] | None) -> dict[tuple[str, Digest], Digest]:
    """From a run summary (``last-sync.json``): the images it copied but could not sign, as
    ``(target reference, mirrored digest) -> source digest``, for the next run to sign even
    when they are then up to date.  Anything malformed is skipped (it is our own file, but
    a file)."""
    out: dict[tuple[str, Digest], Digest] = {}
    actions = summary.get("actions") if isinstance(summary, Mapping) else None
    for item in actions if isinstance(actions, list) else []:
        if not isinstance(item, dict) or item.get("status") != "failed":
            continue
        message, copy, target = item.get("message"), item.get("copy"), item.get("target")
        if not (isinstance(message, str) and message.startswith(NOT_SIGNED)):
            continue
        if not isinstance(copy, dict) or not isinstance(target, str):
            continue
        try:
            mirrored = Digest.parse(str(copy.get("digest")))
            source = Digest.parse(str(copy.get("source_digest")))
        except ImagevetError:
            continue
        out[(target, mirrored)] = source
    return out


async def sign_mirrors(
    policy: Policy,
    report: SyncReport,
    *,
    target: ImageStore,
    key: PrivateKey,
    lock: Lock,
    now: datetime,
    records: Records | None = None,
    concurrency: int = 4,
    retry: Mapping[tuple[str, Digest], Digest] | None = None,
) -> tuple[SyncReport, tuple[AttestResult, ...]]:
    """Sign every image this run copied or updated; the report with each outcome saying so.

    Only ``done`` copies and updates are signed (a no-op, a hold, a failure: nothing).  The
    subject is the digest the target now holds (``CopyResult.digest``); ``lock`` is the lock
    as the run writes it (its hash goes in the predicate; ``records``, by default
    :func:`lock_records`, its ``verified`` and ``evidence`` records).  An image that cannot be signed
    becomes ``failed`` with ``copied, but not signed: <why>`` (the copy stands; the run is not
    ok); the others are unaffected.  ``retry`` (:func:`unsigned_last_run` of the last run):
    an image the last run copied but could not sign is signed now even when it is up to date
    (a no-op otherwise signs nothing).
    """
    attester = Attester(target, key)
    lock_hash = lock_sha256(lock)
    outcomes = list(report.outcomes)
    results: dict[int, AttestResult] = {}
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int, outcome: ActionOutcome, action: Copy | Update, mirrored: Digest, retried: bool) -> None:
        async with gate:
            try:
                look = records or lock_records(policy, lock, action.digest)
                signature, scan = look(action.entry, action.target.tag)
                statement = mirror_statement(
                    policy, action, mirrored, lock_hash=lock_hash, now=now, signature=signature, scan=scan
                )
                result = await attester.attest(action.target, mirrored, statement)
            except ImagevetError as e:
                outcomes[i] = replace(outcome, status="failed", message=f"{NOT_SIGNED}{e}", error=e)
                return
            except Exception as e:  # a bug must not abort the run before its records are written
                outcomes[i] = replace(
                    outcome, status="failed", message=f"{NOT_SIGNED}unexpected {type(e).__name__}: {e}"
                )
                return
        results[i] = result
        note = f"attestation {result.status} ({result.where})"
        if retried:
            note += " for the last run's copy"
        outcomes[i] = replace(outcome, message=f"{outcome.message}; {note}" if outcome.message else note)

    jobs = []
    for i, o in enumerate(outcomes):
        act = o.action
        if o.status == "done" and isinstance(act, Copy | Update) and o.result is not None:
            jobs.append(one(i, o, act, o.result.digest, False))
        elif isinstance(act, Noop) and retry and (str(act.target), act.digest) in retry:
            try:
                entry = policy.entry(act.entry)
            except KeyError:
                continue
            source_digest = retry[(str(act.target), act.digest)]
            copy = Copy(act.entry, entry.source.with_tag(act.target.tag).with_digest(source_digest)
                        if act.target.tag else entry.source.with_digest(source_digest),
                        act.target, source_digest)
            jobs.append(one(i, o, copy, act.digest, True))
    await asyncio.gather(*jobs)
    signed = replace(report, outcomes=tuple(outcomes))
    return signed, tuple(results[i] for i in sorted(results))
