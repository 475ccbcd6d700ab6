"""Evidence kept with the approval and the scanner hook, as a user runs them (`imagevet lock`,
`plan`, `sync`) against real registries: what upstream holds about an image (cosign tags, an
OCI referrer SBOM, BuildKit attestation manifests inside the index) is recorded exactly, in a
file beside the lock that the lock names by hash; a scan above the threshold holds the tag."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.lock import read_lock
from imagevet.manifest import RawManifest
from tests.integration.test_sync import imagevet, seed, write_policy
from tests.support.images import (
    COSIGN_SIGNATURE_ANNOTATION,
    Image,
    descriptor_json,
    dump_json,
    make_config,
    make_cosign_signature,
    make_image,
    make_referrer,
    make_referrers_tag_index,
    random_blob,
)
from tests.support.pusher import get_manifest_bytes, push_image, push_manifest
from tests.support.registry_process import RunningRegistry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scanners"
SPDX = "https://spdx.dev/Document"
SLSA = "https://slsa.dev/provenance/v0.2"


def statement(subject: Digest, predicate_type: str) -> bytes:
    return dump_json({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": "app", "digest": {"sha256": subject.hex}}],
        "predicate": {"seed": predicate_type},
    })


def buildkit_index(seed: str) -> tuple[Image, Image, Image]:
    """An index as BuildKit pushes it (docs.docker.com, attestation storage): two platform
    images and an attestation manifest for linux/amd64 holding an SPDX SBOM and SLSA
    provenance as in-toto layers."""
    amd = make_image(seed=f"{seed}/amd64", platform="linux/amd64")
    arm = make_image(seed=f"{seed}/arm64", platform="linux/arm64")
    layers = [statement(amd.digest, SPDX), statement(amd.digest, SLSA)]
    config = make_config(platform=None, layers=[], seed=f"{seed}/att")
    att_top = RawManifest.from_bytes(dump_json({
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": descriptor_json(mediatype.OCI_CONFIG, config),
        "layers": [
            descriptor_json("application/vnd.in-toto+json", body,
                            annotations={"in-toto.io/predicate-type": pt})
            for body, pt in zip(layers, (SPDX, SLSA), strict=True)
        ],
    }), mediatype.OCI_MANIFEST)
    att = Image(att_top, [att_top], {Digest.of(config): config, **{Digest.of(b): b for b in layers}})
    att_desc = descriptor_json(mediatype.OCI_MANIFEST, att_top.data, annotations={
        "vnd.docker.reference.digest": str(amd.digest),
        "vnd.docker.reference.type": "attestation-manifest",
    })
    att_desc["platform"] = {"architecture": "unknown", "os": "unknown"}
    top = RawManifest.from_bytes(dump_json({
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_INDEX,
        "manifests": [amd.descriptor(), arm.descriptor(), att_desc],
    }), mediatype.OCI_INDEX)
    index = Image(top, [amd.top, arm.top, att_top, top], {**amd.blobs, **arm.blobs, **att.blobs})
    return index, amd, att


def cosign_attestation(subject: Digest, seed: str) -> Image:
    """A cosign ``.att`` manifest (cosign specs/ATTESTATION_SPEC.md): a DSSE envelope layer
    with its ``predicateType`` annotation."""
    envelope = dump_json({
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(statement(subject, SLSA)).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(random_blob(64, seed)).decode()}],
    })
    config = make_config(platform=None, layers=[envelope], seed=f"{seed}/cfg")
    top = RawManifest.from_bytes(dump_json({
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": descriptor_json(mediatype.OCI_CONFIG, config),
        "layers": [descriptor_json("application/vnd.dsse.envelope.v1+json", envelope, annotations={
            COSIGN_SIGNATURE_ANNOTATION: "", "predicateType": SLSA})],
    }), mediatype.OCI_MANIFEST)
    return Image(top, [top], {Digest.of(config): config, Digest.of(envelope): envelope})


def evidence_of(tmp_path: Path, tag: str = "1") -> tuple[Digest, dict[str, Any]]:
    lock = read_lock(tmp_path / "imagevet.lock")
    (entry,) = lock.entries
    named = entry.tags[tag].evidence
    assert named is not None
    data = (tmp_path / "imagevet.evidence" / f"sha256-{named.hex}.json").read_bytes()
    assert Digest.of(data) == named  # content-addressed
    return named, json.loads(data)


async def test_lock_records_exactly_what_upstream_holds(
    plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    repo = f"{unique_repo}/app"
    index, amd, att = buildkit_index("evidence")
    await seed(plain_registry, repo, {"1": index})
    sig = make_cosign_signature(index.top, seed="sig")
    await push_image(plain_registry, repo, sig, f"sha256-{index.digest.hex}.sig")
    catt = cosign_attestation(index.digest, "att")
    await push_image(plain_registry, repo, catt, f"sha256-{index.digest.hex}.att")
    sbom = make_referrer(index.top, artifact_type="application/spdx+json", seed="sbom")
    await push_image(plain_registry, repo, sbom, str(sbom.digest))
    # docker-registry 2.8 has no referrers API: the OCI fallback tag lists the referrer
    await push_manifest(plain_registry, repo, make_referrers_tag_index([sbom]), f"sha256-{index.digest.hex}")
    policy = write_policy(tmp_path, plain_registry.host,
                          f"  - source: {plain_registry.host}/{repo}\n    tags:\n      tags: ['1']\n")

    out = imagevet("lock", policy=policy)
    assert out.returncode == 0, out.stdout + out.stderr
    lock_text = (tmp_path / "imagevet.lock").read_text()
    named, evidence = evidence_of(tmp_path)
    assert f'        evidence: "{named}"\n' in lock_text
    assert evidence["subject"] == str(index.digest)
    sig_layer = sig.top.json["layers"][0]["digest"]
    att_layers = [d["digest"] for d in att.top.json["layers"]]
    expected = [
        {"found": "index", "kind": "sbom", "type": SPDX, "manifest": str(att.digest),
         "layer": att_layers[0], "subject": str(amd.digest)},
        {"found": "index", "kind": "provenance", "type": SLSA, "manifest": str(att.digest),
         "layer": att_layers[1], "subject": str(amd.digest)},
        {"found": "referrer", "kind": "sbom", "type": "application/spdx+json", "manifest": str(sbom.digest)},
        {"found": "tag", "kind": "signature", "type": "application/vnd.dev.cosign.simplesigning.v1+json",
         "manifest": str(sig.digest), "layer": sig_layer},
        {"found": "tag", "kind": "provenance", "type": SLSA, "manifest": str(catt.digest),
         "layer": catt.top.json["layers"][0]["digest"]},
    ]
    key = lambda i: json.dumps(i, sort_keys=True)  # noqa: E731
    assert sorted(evidence["items"], key=key) == sorted(expected, key=key)
    assert "scan" not in evidence and "omitted" not in evidence

    # nothing moved: the same bytes, the same file
    again = imagevet("lock", policy=policy)
    assert again.returncode == 0 and again.stdout.strip().endswith("up to date"), again.stdout
    assert (tmp_path / "imagevet.lock").read_text() == lock_text
    assert sorted(p.name for p in (tmp_path / "imagevet.evidence").iterdir()) == [f"sha256-{named.hex}.json"]

    # a damaged evidence file is reported and collected again, byte for byte
    path = tmp_path / "imagevet.evidence" / f"sha256-{named.hex}.json"
    good = path.read_bytes()
    path.write_bytes(good.replace(b"provenance", b"harmless!!", 1))
    repaired = imagevet("lock", policy=policy)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "evidence:" in repaired.stderr and "not the" in repaired.stderr
    assert "collected again from upstream" in repaired.stderr
    assert path.read_bytes() == good and (tmp_path / "imagevet.lock").read_text() == lock_text
    path.unlink()  # a missing one too
    missing = imagevet("lock", policy=policy)
    assert missing.returncode == 0 and "missing (the lock names it)" in missing.stderr
    assert path.read_bytes() == good


async def test_an_image_with_no_evidence_locks_as_before(
    plain_registry: RunningRegistry, unique_repo: str, tmp_path: Path
) -> None:
    await seed(plain_registry, f"{unique_repo}/plain", {"1": make_image(seed="no-evidence")})
    policy = write_policy(tmp_path, plain_registry.host,
                          f"  - source: {plain_registry.host}/{unique_repo}/plain\n    tags:\n      tags: ['1']\n")
    out = imagevet("lock", policy=policy)
    assert out.returncode == 0, out.stderr
    assert "evidence:" not in (tmp_path / "imagevet.lock").read_text()
    assert not (tmp_path / "imagevet.evidence").exists()


def hostile_source(fake_registry_factory: Any, referrers: int) -> tuple[Any, Image]:
    source = fake_registry_factory()
    image = make_image(seed="hostile-referrers", layer_sizes=(64,))
    source.seed("lib/app", image, "1")
    for n in range(referrers):  # in memory: what the referrers API then lists
        source.seed("lib/app", make_referrer(image.top, artifact_type="application/vnd.example.odd",
                                             seed=f"r{n}"))
    return source, image


async def test_thousands_of_referrers_are_bounded(fake_registry_factory: Any, tmp_path: Path) -> None:
    source, image = hostile_source(fake_registry_factory, 3000)
    policy = write_policy(tmp_path, source.host, f"  - source: {source.host}/lib/app\n    tags:\n      tags: ['1']\n")
    out = imagevet("lock", policy=policy)
    assert out.returncode == 0, out.stdout + out.stderr
    _, evidence = evidence_of(tmp_path)
    assert len(evidence["items"]) == 256 and evidence["omitted"] == 3000 - 256
    assert {i["kind"] for i in evidence["items"]} == {"other"}
    # referrers whose descriptor says nothing useful are read at most 16 times, never their blobs
    reads = [r for r in source.requests if r.method == "GET" and "/manifests/sha256:" in r.path
             and r.path.rsplit("/", 1)[1] != str(image.digest)]
    assert len(reads) <= 16
    assert not [r for r in source.requests if "/blobs/" in r.path]


async def test_a_referrers_listing_that_is_not_json_fails_that_entry_cleanly(
    fake_registry_factory: Any, tmp_path: Path
) -> None:
    source = fake_registry_factory(referrers_api=False)
    image = make_image(seed="bad-referrers", layer_sizes=(64,))
    source.seed("lib/app", image, "1")
    source.put_manifest("lib/app", RawManifest.from_bytes(b'{"manifests": [{"digest": ', mediatype.OCI_INDEX),
                        f"sha256-{image.digest.hex}")
    policy = write_policy(tmp_path, source.host, f"  - source: {source.host}/lib/app\n    tags:\n      tags: ['1']\n")
    out = imagevet("lock", policy=policy)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "not JSON" in out.stderr
    assert not (tmp_path / "imagevet.evidence").exists()


# ---- the scanner hook ------------------------------------------------------------------------------


def fake_scanner(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A scanner script: prints the report file's content (a published Trivy report), or fails
    when the report file says so; records its arguments."""
    script, report, calls = tmp_path / "scanner.py", tmp_path / "report.json", tmp_path / "calls.txt"
    script.write_text(
        "import sys\n"
        f"open({str(calls)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"body = open({str(report)!r}).read()\n"
        "if body.startswith('FAIL'):\n"
        "    sys.stderr.write('FATAL: unable to pull ' + sys.argv[-1] + '\\n'); sys.exit(3)\n"
        "sys.stdout.write(body)\n"
    )
    return script, report, calls


def hold_reasons(policy: Path) -> dict[str, str]:
    planned = imagevet("plan", "--json", policy=policy)
    assert planned.returncode == 0, planned.stderr
    return {a["tag"]: a["reason"] for a in json.loads(planned.stdout)["actions"] if a["kind"] == "hold"}


async def test_scan_holds_a_tag_above_the_threshold_and_releases_it_below(
    plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    target = registry_factory(auth="none")
    image = make_image(seed="scanned")
    repo = f"{unique_repo}/scanned"
    await seed(plain_registry, repo, {"1": image})
    script, report, calls = fake_scanner(tmp_path)
    policy = write_policy(
        tmp_path, target.host,
        f"  - source: {plain_registry.host}/{repo}\n    tags:\n      tags: ['1']\n",
        defaults=(f"  scan:\n    command: [{json.dumps(sys.executable)}, {json.dumps(str(script))}, image, "
                  "--format, json, '{ref}']\n    fail_on: high\n    timeout: 60s\n"),
    )
    pinned = f"{plain_registry.host}/{repo}@{image.digest}"

    # a scanner that fails: the tag is held with the reason (fail closed)
    report.write_text("FAIL")
    out = imagevet("lock", policy=policy)
    assert out.returncode == 0, out.stdout + out.stderr
    assert calls.read_text() == f"image --format json {pinned}\n"
    _, evidence = evidence_of(tmp_path)
    assert evidence["scan"]["error"].startswith("the scanner python")
    assert "exited with status 3; stderr: FATAL: unable to pull " + pinned in evidence["scan"]["error"]
    reason = hold_reasons(policy)["1"]
    assert reason.startswith(f"scan: no verdict for sha256:{image.digest.hex[:12]}: the scanner python")

    # a report with a critical and a high: counted exactly, held with the counts
    report.write_text((FIXTURES / "trivy-fluentd-multiple-lockfiles.json").read_text())
    out = imagevet("lock", policy=policy)  # no verdict yet: scanned again
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"scan {pinned}: 1 critical, 1 high, 1 low" in out.stdout
    assert "! 1" in out.stdout and "evidence changed" in out.stdout
    _, evidence = evidence_of(tmp_path)
    assert evidence["scan"] == {"scanner": "trivy", "version": "dev", "counts": {
        "critical": 1, "high": 1, "medium": 0, "low": 1, "negligible": 0, "unknown": 0}}
    assert hold_reasons(policy) == {"1": "scan: 1 critical, 1 high (fail_on: high)"}
    synced = imagevet("sync", policy=policy)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "1 hold" in synced.stdout
    try:
        await get_manifest_bytes(target, "acme/scanned", "1")
        raise AssertionError("a held tag was mirrored")
    except Exception as e:  # the target has no such tag
        assert "404" in str(e) or "not found" in str(e).lower() or "NAME_UNKNOWN" in str(e), e

    # a verdict is kept: locking again does not scan again
    assert imagevet("lock", policy=policy).returncode == 0
    assert len(calls.read_text().splitlines()) == 2

    # rescanned with a report under the threshold: released, mirrored
    report.write_text((FIXTURES / "trivy-centos-7.json").read_text())
    out = imagevet("lock", "--rescan", policy=policy)
    assert out.returncode == 0, out.stdout + out.stderr
    _, evidence = evidence_of(tmp_path)
    assert evidence["scan"]["counts"] == {"critical": 0, "high": 0, "medium": 1, "low": 2,
                                          "negligible": 0, "unknown": 0}
    assert hold_reasons(policy) == {}
    assert imagevet("sync", policy=policy).returncode == 0
    body, _, _ = await get_manifest_bytes(target, "acme/scanned", "1")
    assert body == image.top.data
    # only the evidence the lock names is kept
    named, _ = evidence_of(tmp_path)
    assert [p.name for p in (tmp_path / "imagevet.evidence").iterdir()] == [f"sha256-{named.hex}.json"]
