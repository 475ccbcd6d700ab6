"""Verify upstream cosign signatures: find the signatures of a digest in a store, check each
against the entry's ``verify:`` rule, and say which one verified it, or why none did.

Where signatures are looked for, in this order (docs/verify.md):

1. cosign's tag ``sha256-<hex>.sig`` in the image's repository: one manifest GET (absent: one
   404);
2. the OCI referrers of the digest (``ImageStore.referrers``: the referrers API, else the
   ``sha256-<hex>`` tag index) whose artifact type is a cosign signature
   (``application/vnd.dev.cosign.artifact.sig.v1+json``) or a Sigstore bundle
   (``application/vnd.dev.sigstore.bundle.v0.3+json``): one listing, then one manifest GET each.

Each simple-signing layer (or bundle layer) is a :class:`Candidate`: its payload blob is read
(bounded: :data:`~imagevet.signature.cosign.MAX_PAYLOAD_BYTES`, a bundle
:data:`~imagevet.signature.cosign.MAX_BUNDLE_BYTES`) and checked by :func:`check_candidate`, the
one place that decides whether a signature verifies under a rule.  The first that verifies ends
the search.  Bounded whatever a registry holds: at most :attr:`Limits.manifests` signature
manifests and :attr:`Limits.candidates` signatures are examined per digest (cosign's own bound of
1000 layers per manifest is refused whole), and a run checks each (repository, digest, rule)
once, however many entries or tags share it (:class:`Checker`).

What is signed is the digest being mirrored: for a multi-platform image, cosign signs the index
digest (``cosign sign image@sha256:<index>``), and that is the digest imagevet locks and copies;
a platform-subset entry still verifies the source index it derives its mirror from.

A keyless rule (``verify: {identity: ..., issuer: ...}``) takes the same path: discovery, bounds,
the lock record (``identity`` and ``issuer`` instead of ``key``) and holds are the same; only
:func:`check_candidate` checks the Fulcio certificate and the transparency-log proof offline
(:mod:`imagevet.signature.keyless`) instead of a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from imagevet.digest import Digest
from imagevet.errors import ImagevetError, NotFoundError, SignatureError
from imagevet.lock import LockedImage, LockEntry, Verified
from imagevet.manifest import Descriptor, ManifestFormatError, RawManifest
from imagevet.policy.model import Entry, Mode, VerifyRule
from imagevet.reference import Reference
from imagevet.signature.cosign import (
    BUNDLE_MEDIA_TYPES,
    MAX_BUNDLE_BYTES,
    MAX_PAYLOAD_BYTES,
    BundleContent,
    check_statement,
    is_signature_referrer,
    parse_bundle,
    parse_payload,
    signature_layers,
)
from imagevet.signature.keys import PublicKey
from imagevet.store import ImageStore

if TYPE_CHECKING:
    from imagevet.signature.keyless import IdentityRule
    from imagevet.signature.trustroot import TrustRoot

__all__ = [
    "Candidate",
    "Checker",
    "Keyless",
    "Limits",
    "Verifier",
    "VerifyHold",
    "VerifyResult",
    "check_candidate",
    "entry_verdicts",
    "verify_digest",
    "verify_lock_entry",
]

_SHOWN_REASONS = 3


def _short(digest: Digest) -> str:
    return f"{digest.algorithm}:{digest.hex[:12]}"


def _fields(manifest: RawManifest) -> Mapping[str, object]:
    """The manifest's JSON object; empty when its bytes are not one (a hostile registry)."""
    try:
        return manifest.json
    except (ManifestFormatError, RecursionError):
        return {}


@dataclass(frozen=True, slots=True)
class Keyless:
    """A keyless rule made ready: whose certificate (``identity``) and the trust root its
    certificate chain, SCT and transparency-log proof are checked against."""

    identity: IdentityRule
    trust: TrustRoot = field(repr=False)


@dataclass(frozen=True, slots=True)
class Verifier:
    """A ``verify:`` rule with its keys (or its keyless identity and trust root) read; the CLI
    reads them (``cli/verify.py``)."""

    rule: VerifyRule
    keys: tuple[PublicKey, ...] = ()
    keyless: Keyless | None = None

    def accepts(self, record: Verified | None) -> bool:
        """Whether a lock's ``verified`` record was made under this rule (then it is not
        verified again): its key is one of the rule's, or its identity and issuer are the
        rule's identity."""
        if record is None:
            return False
        if self.keyless is not None:
            return (
                record.key is None and record.identity is not None and record.issuer is not None
                and self.keyless.identity.matches(record.identity, record.issuer)
            )
        return record.key in {k.key_id for k in self.keys}

    def describe(self) -> str:
        if self.keyless is not None:
            return str(self.keyless.identity)
        return ", ".join(k.key_id for k in self.keys)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One signature of a digest, as found: what it signs (``payload``: a simple-signing
    payload, or a bundle's in-toto statement), the signature and the bytes it is over
    (``signed``: the payload itself, or DSSE's PAE for a bundle), and for keyless verification
    the certificate, chain and Rekor bundle annotations, or the whole Sigstore bundle."""

    manifest: Digest
    """The signature manifest holding it (what the lock records)."""
    found_by: str
    """``tag sha256-<hex>.sig`` or ``referrer``."""
    layer: int
    kind: Literal["simple-signing", "bundle"]
    payload: bytes
    signature: bytes
    signed: bytes
    certificate_pem: str | None = None
    chain_pem: str | None = None
    rekor_bundle: str | None = None
    bundle: BundleContent | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"{self.found_by} {_short(self.manifest)} layer {self.layer}"


def check_candidate(candidate: Candidate, verifier: Verifier, digest: Digest) -> Verified:
    """The one dispatch point: whether ``candidate`` is a valid signature of ``digest`` under
    ``verifier``'s rule; the lock record when it is, SignatureError (why) when not.

    First who signed it (the signature over ``candidate.signed``), then what it says it signs
    (the payload's digest, or the bundle statement's subject, must be ``digest``)."""
    what = candidate.describe()
    if verifier.keyless is not None:
        return _check_keyless(candidate, verifier.keyless, digest, what)
    signer = next((k for k in verifier.keys if k.verify(candidate.signature, candidate.signed)), None)
    if signer is None:
        keys = verifier.describe()
        raise SignatureError(what, f"the signature does not verify with {'the key' if len(verifier.keys) == 1 else 'any of the keys'} {keys}")
    _claims(candidate, digest, what)
    return Verified(candidate.manifest, signer.key_id)


def _check_keyless(candidate: Candidate, keyless: Keyless, digest: Digest, what: str) -> Verified:
    """A keyless signature: the Fulcio certificate (chained to the trust root, with its SCT),
    its identity, the signature, and the transparency-log proof, all offline
    (:mod:`imagevet.signature.keyless`); then what it signs must be ``digest``."""
    from imagevet.signature.keyless import verify_bundle, verify_keyless

    if candidate.bundle is not None:
        if candidate.bundle.certificate_der is None:
            raise SignatureError(what, "the bundle carries a public key, no certificate: not a keyless signature")
        got = verify_bundle(
            candidate.bundle.raw, artifact_digest=str(digest), trust=keyless.trust,
            identity=keyless.identity, what=what,
        )
    else:
        if candidate.certificate_pem is None:
            raise SignatureError(what, "no certificate: not a keyless signature (signed with a key?)")
        got = verify_keyless(
            payload=candidate.payload, signature=candidate.signature,
            certificate_pem=candidate.certificate_pem.encode(),
            chain_pem=candidate.chain_pem.encode() if candidate.chain_pem is not None else None,
            rekor=candidate.rekor_bundle.encode() if candidate.rekor_bundle is not None else None,
            trust=keyless.trust, identity=keyless.identity, image_digest=str(digest), what=what,
        )
    _claims(candidate, digest, what)
    return Verified(candidate.manifest, identity=got.subject, issuer=got.issuer)


def _claims(candidate: Candidate, digest: Digest, what: str) -> None:
    """SignatureError unless what the signature signs is ``digest``."""
    if candidate.bundle is not None:
        check_statement(candidate.bundle, digest, what=what)
        return
    payload = parse_payload(candidate.payload, what=what)
    if payload.manifest_digest != digest:
        raise SignatureError(what, f"the payload is for {payload.manifest_digest}, not {digest}")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one digest's verification examines at most, whatever the registry holds."""

    manifests: int = 16
    """Signature manifests (the ``.sig`` tag and signature referrers)."""
    candidates: int = 32
    """Signatures (payload blobs read)."""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Whether ``digest`` verified: the record (which signature, whose key) and where it was
    found, or ``reasons`` (one per signature examined, or why none was found)."""

    digest: Digest
    verified: Verified | None
    found_by: str | None = None
    reasons: tuple[str, ...] = ()
    examined: int = 0

    @property
    def ok(self) -> bool:
        return self.verified is not None

    @property
    def reason(self) -> str:
        """Why it did not verify, in one line."""
        if self.ok:
            return ""
        if not self.reasons:
            return "no cosign signature (neither the tag sha256-<hex>.sig nor a signature referrer)"
        shown = "; ".join(self.reasons[:_SHOWN_REASONS])
        more = len(self.reasons) - _SHOWN_REASONS
        return shown + (f" (and {more} more)" if more > 0 else "")


async def _read_bounded(store: ImageStore, repo: Reference, desc: Descriptor, limit: int, what: str) -> bytes:
    if desc.size > limit:
        raise SignatureError(what, f"its blob is {desc.size} bytes (at most {limit} are read)")
    out = bytearray()
    async with store.open_blob(repo, desc) as reader:
        async for chunk in reader:
            out += chunk
            if len(out) > limit:
                raise SignatureError(what, f"its blob is over {limit} bytes")
    return bytes(out)


class _Search:
    """One digest's search: the manifests seen, the candidates examined, the reasons."""

    def __init__(self, store: ImageStore, repo: Reference, digest: Digest, verifier: Verifier, limits: Limits) -> None:
        self.store = store
        self.repo = repo
        self.digest = digest
        self.verifier = verifier
        self.limits = limits
        self.seen: set[Digest] = set()
        self.reasons: list[str] = []
        self.examined = 0

    def full(self) -> bool:
        return self.examined >= self.limits.candidates

    async def manifest(self, manifest: RawManifest, found_by: str) -> VerifyResult | None:
        """Check every signature of one signature manifest; the result when one verifies."""
        if manifest.digest in self.seen:
            return None
        self.seen.add(manifest.digest)
        where = f"{found_by} {_short(manifest.digest)}"
        if len(self.seen) > self.limits.manifests:
            self.reasons.append(f"{where}: not examined (at most {self.limits.manifests} signature manifests are)")
            return None
        artifact = _fields(manifest).get("artifactType")
        try:
            if artifact in BUNDLE_MEDIA_TYPES:
                found = await self._bundles(manifest, found_by)
            else:
                found = await self._layers(manifest, found_by)
        except SignatureError as e:
            self.reasons.append(f"{where}: {e.reason}")
            return None
        return found

    async def _layers(self, manifest: RawManifest, found_by: str) -> VerifyResult | None:
        layers = signature_layers(manifest, what=f"{found_by} {_short(manifest.digest)}")
        if not layers:
            self.reasons.append(f"{found_by} {_short(manifest.digest)}: no simple-signing layer")
        for layer in layers:
            where = f"{found_by} {_short(manifest.digest)} layer {layer.index}"
            if layer.problem is not None:
                self.reasons.append(f"{found_by} {_short(manifest.digest)} {layer.problem}")
                continue
            if not self._admit(where):
                return None
            try:
                payload = await _read_bounded(self.store, self.repo, layer.payload, MAX_PAYLOAD_BYTES, where)
            except (SignatureError, ImagevetError) as e:
                self.reasons.append(f"{where}: cannot read its payload: {getattr(e, 'reason', e)}")
                continue
            candidate = Candidate(
                manifest.digest, found_by, layer.index, "simple-signing", payload, layer.signature, payload,
                layer.certificate_pem, layer.chain_pem, layer.rekor_bundle,
            )
            result = self._check(candidate)
            if result is not None:
                return result
        return None

    async def _bundles(self, manifest: RawManifest, found_by: str) -> VerifyResult | None:
        layers = _fields(manifest).get("layers")
        items = layers if isinstance(layers, list) else []
        for i, item in enumerate(items[:self.limits.candidates]):
            where = f"{found_by} {_short(manifest.digest)} layer {i}"
            if not isinstance(item, dict) or item.get("mediaType") not in BUNDLE_MEDIA_TYPES:
                continue
            if not self._admit(where):
                return None
            try:
                data = await _read_bounded(self.store, self.repo, Descriptor.from_json(item), MAX_BUNDLE_BYTES, where)
                content = parse_bundle(data, what=where)
            except (SignatureError, ImagevetError) as e:
                self.reasons.append(f"{where}: {getattr(e, 'reason', e)}")
                continue
            candidate = Candidate(
                manifest.digest, found_by, i, "bundle", content.payload, content.signature, content.signed,
                bundle=content,
            )
            result = self._check(candidate)
            if result is not None:
                return result
        return None

    def _admit(self, where: str) -> bool:
        """Count one more signature examined; False (the reason noted) once the bound is reached."""
        if self.full():
            self.reasons.append(f"{where}: not examined (at most {self.limits.candidates} signatures are)")
            return False
        self.examined += 1
        return True

    def _check(self, candidate: Candidate) -> VerifyResult | None:
        try:
            verified = check_candidate(candidate, self.verifier, self.digest)
        except SignatureError as e:
            self.reasons.append(f"{e.what}: {e.reason}")
            return None
        return VerifyResult(self.digest, verified, candidate.found_by, tuple(self.reasons), self.examined)

    def result(self) -> VerifyResult:
        return VerifyResult(self.digest, None, None, tuple(self.reasons), self.examined)


async def verify_digest(
    store: ImageStore, repo: Reference, digest: Digest, verifier: Verifier, *, limits: Limits = Limits(),
) -> VerifyResult:
    """Find the cosign signatures of ``digest`` in ``repo`` (see the module docstring) and check
    each under ``verifier`` until one verifies.  Never raises for what the registry holds or
    answers: a signature or a request that fails is a reason of the result."""
    search = _Search(store, repo.repo(), digest, verifier, limits)
    tag = digest.tag(".sig")
    if tag is not None:
        found_by = f"tag {tag}"
        try:
            manifest = await store.get_manifest(search.repo.with_tag(tag))
        except NotFoundError:
            manifest = None
        except ImagevetError as e:
            search.reasons.append(f"{found_by}: cannot read it: {e}")
            manifest = None
        if manifest is not None:
            found = await search.manifest(manifest, found_by)
            if found is not None:
                return found
    try:
        referrers = await store.referrers(search.repo, digest)
    except ImagevetError as e:
        search.reasons.append(f"referrers of {_short(digest)}: cannot list them: {e}")
        referrers = []
    signatures = [d for d in referrers if is_signature_referrer(d)]
    for desc in signatures:
        if search.full() or len(search.seen) >= limits.manifests:
            left = len(signatures) - signatures.index(desc)
            search.reasons.append(f"{left} more signature referrers not examined (bounds: {limits.manifests} manifests, {limits.candidates} signatures)")
            break
        try:
            manifest = await store.get_manifest(search.repo.with_digest(desc.digest))
        except ImagevetError as e:
            search.reasons.append(f"referrer {_short(desc.digest)}: cannot read it: {e}")
            continue
        subject = _fields(manifest).get("subject")
        if not isinstance(subject, Mapping) or subject.get("digest") != str(digest):
            search.reasons.append(f"referrer {_short(desc.digest)}: its subject is not {_short(digest)}")
            continue
        found = await search.manifest(manifest, "referrer")
        if found is not None:
            return found
    return search.result()


class Checker:
    """Verifies digests for a run: each (repository, digest, rule) once, shared by every entry
    and tag that needs it (concurrent callers wait for the same check), a few at a time."""

    def __init__(self, store: ImageStore, *, limits: Limits = Limits(), concurrency: int = 4) -> None:
        self.store = store
        self.limits = limits
        self._gate = asyncio.Semaphore(concurrency)
        self._tasks: dict[tuple[str, Digest, VerifyRule], asyncio.Task[VerifyResult]] = {}

    async def verify(self, repo: Reference, digest: Digest, verifier: Verifier) -> VerifyResult:
        key = (repo.repo().name, digest, verifier.rule)
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.ensure_future(self._run(repo, digest, verifier))
        return await asyncio.shield(task)

    async def _run(self, repo: Reference, digest: Digest, verifier: Verifier) -> VerifyResult:
        async with self._gate:
            return await verify_digest(self.store, repo, digest, verifier, limits=self.limits)


# ---- lock and sync ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyHold:
    """A selected tag (or explicit digest, ``tag`` None) whose upstream digest did not verify:
    not locked; ``kept`` is the digest the lock keeps for it (None: none)."""

    entry: str
    tag: str | None
    digest: Digest
    reason: str
    kept: Digest | None = None

    def describe(self) -> str:
        name = self.tag if self.tag is not None else f"@{self.digest}"
        kept = f"; the lock keeps {_short(self.kept)}" if self.kept is not None else "; not locked"
        return f"{self.entry} {name} {_short(self.digest)}: not verified: {self.reason}{kept}"


NO_KEYS = "the keys of its verify rule were not given"


async def verify_lock_entry(
    checker: Checker, entry: Entry, new: LockEntry, old: LockEntry | None,
    verifiers: Mapping[VerifyRule, Verifier],
) -> tuple[LockEntry, list[VerifyHold]]:
    """``new`` (just resolved) with a ``verified`` record on every digest whose signature
    verifies under the entry's rule; a record already verified under the rule is not checked
    again.  A tag whose digest does not verify keeps its old record (the previous digest) or is
    left out, and is a :class:`VerifyHold`.  Without a rule, ``new`` as it is."""
    if entry.verify is None:
        return new, []
    verifier = verifiers.get(entry.verify)
    holds: list[VerifyHold] = []

    async def one(tag: str | None, image: LockedImage, previous: LockedImage | None) -> LockedImage | None:
        if verifier is not None and verifier.accepts(image.verified):
            return image
        if verifier is None:
            reason = NO_KEYS
        else:
            result = await checker.verify(entry.source, image.digest, verifier)
            if result.verified is not None:
                return replace(image, verified=result.verified)
            reason = result.reason
        holds.append(VerifyHold(entry.name, tag, image.digest, reason,
                                previous.digest if previous is not None else None))
        return previous

    async def tags() -> dict[str, LockedImage]:
        items = sorted(new.tags.items())
        got = await asyncio.gather(*(one(t, i, old.tags.get(t) if old else None) for t, i in items))
        return {t: i for (t, _), i in zip(items, got, strict=True) if i is not None}

    async def digests() -> dict[Digest, LockedImage]:
        items = sorted(new.digests.items(), key=lambda kv: str(kv[0]))
        got = await asyncio.gather(*(one(None, i, old.digests.get(d) if old else None) for d, i in items))
        return {d: i for (d, _), i in zip(items, got, strict=True) if i is not None}

    t, d = await asyncio.gather(tags(), digests())
    holds.sort(key=lambda h: (h.tag is None, h.tag or "", str(h.digest)))
    return LockEntry(new.source, new.target, t, d), holds


async def entry_verdicts(
    checker: Checker, entry: Entry, verifier: Verifier | None, locked: LockEntry | None,
    digests: Iterable[Digest],
) -> dict[Digest, Verified | str]:
    """For sync: per digest the entry would mirror, its ``verified`` record (the lock's, made
    under the rule) or why it may not be mirrored.  Under ``follow`` a digest the lock has not
    verified is verified now; under ``pinned`` only ``imagevet lock`` verifies."""
    out: dict[Digest, Verified | str] = {}

    async def one(digest: Digest) -> None:
        record = locked.find_digest(digest) if locked is not None else None
        if verifier is not None and record is not None and verifier.accepts(record.verified):
            assert record.verified is not None
            out[digest] = record.verified
        elif verifier is None:
            out[digest] = f"not verified: {NO_KEYS}"
        elif entry.mode is Mode.FOLLOW:
            result = await checker.verify(entry.source, digest, verifier)
            out[digest] = result.verified if result.verified is not None else f"not verified: {result.reason}"
        else:
            out[digest] = "not verified: the lock has no signature verified under its verify rule: run `imagevet lock`"

    await asyncio.gather(*(one(d) for d in set(digests)))
    return out
