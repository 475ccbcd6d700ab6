"""OCI layouts as first-class sources and targets, the way a user meets them: the quick start's
policy mirrored into layouts (with a local registry standing in for Docker Hub), pushed on with
``imagevet copy`` and with skopeo, and every real-world image carried registry -> layout ->
registry (and through an archive) with the same digests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from imagevet.cli import app
from imagevet.digest import Digest
from tests.support.images import (
    cosign_tag,
    make_cosign_signature,
    make_multiarch,
    make_referrer,
    make_referrers_tag_index,
)
from tests.support.layouts import REALWORLD, load_layouts, push_layout
from tests.support.pusher import (
    fetch_image_sync,
    get_manifest_bytes_sync,
    list_tags_sync,
    push_image_sync,
    push_manifest_sync,
    run_sync,
)
from tests.support.registry_process import RunningRegistry

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"

runner = CliRunner()


def referrers_tag(digest: Digest) -> str:
    """The OCI referrers tag-schema fallback tag of ``digest``."""
    return f"{digest.algorithm}-{digest.hex}"


def _layout_tags(layout: Path) -> dict[str, str]:
    """tag -> digest, as ``index.json`` of an OCI layout names them."""
    index = json.loads((layout / "index.json").read_text())
    out: dict[str, str] = {}
    for m in index["manifests"]:
        name = m.get("annotations", {}).get("org.opencontainers.image.ref.name")
        if name:
            out[name] = m["digest"]
    return out


@pytest.fixture
def upstream(registry_factory: Any) -> RunningRegistry:
    """A registry of its own standing in for Docker Hub: the quick start's three repositories."""
    reg: RunningRegistry = registry_factory(auth="none")
    return reg


def test_the_quick_start_mirrors_into_layouts_and_the_layouts_push_on(
    upstream: RunningRegistry, registry_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's first command, ``imagevet sync -p examples/quickstart/imagevet.yaml``, with
    ``UPSTREAM`` pointing at a local registry: no account, no target registry.  Each vetted image
    lands in ``mirror/acme/<name>`` as an OCI layout (the whole index when every platform is
    vetted, a derived subset index otherwise), the lock records it, a second run does nothing,
    and the layouts push on to a registry with the same digests (imagevet and skopeo)."""
    whoami = make_multiarch(seed="qs/whoami", platforms=("linux/amd64", "linux/arm64", "linux/riscv64"))
    busybox = make_multiarch(seed="qs/busybox", platforms=("linux/amd64", "linux/arm64"))
    hello = make_multiarch(seed="qs/hello", platforms=("linux/amd64", "linux/arm64", "linux/arm/v7"))
    push_image_sync(upstream, "traefik/whoami", whoami, "v1.10.2")
    push_image_sync(upstream, "traefik/whoami", make_multiarch(seed="qs/whoami-old"), "v1.10.1")
    push_image_sync(upstream, "traefik/whoami", make_multiarch(seed="qs/whoami-next"), "v1.11.0")
    push_image_sync(upstream, "library/busybox", busybox, "1.36")
    push_image_sync(upstream, "library/hello-world", hello, "latest")

    work = tmp_path / "quickstart"
    work.mkdir()
    shutil.copy(QUICKSTART / "imagevet.yaml", work / "imagevet.yaml")
    monkeypatch.setenv("UPSTREAM", upstream.host)
    monkeypatch.delenv("IMAGEVET_HUB_URL", raising=False)
    policy = str(work / "imagevet.yaml")

    first = runner.invoke(app, ["sync", "-p", policy, "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["counts"].get("copy") == 3, summary

    mirror = work / "mirror" / "acme"
    assert _layout_tags(mirror / "hello-world") == {"latest": str(hello.digest)}
    assert _layout_tags(mirror / "whoami").keys() == {"v1.10.2"}  # keep: 1, the newest v1.10.x
    assert _layout_tags(mirror / "busybox").keys() == {"1.36"}
    for name in ("hello-world", "whoami", "busybox"):
        assert json.loads((mirror / name / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    # platform subsets are derived indexes: only the vetted platforms, children byte for byte
    sub = json.loads(
        (mirror / "whoami" / "blobs" / "sha256" / _layout_tags(mirror / "whoami")["v1.10.2"].split(":")[1]).read_bytes()
    )
    assert sorted(m["platform"]["architecture"] for m in sub["manifests"]) == ["amd64", "arm64"]
    lock = (work / "imagevet.lock").read_text()
    assert str(hello.digest) in lock and "v1.10.2" in lock
    assert (work / ".imagevet" / "ledger.jsonl").is_file()

    again = runner.invoke(app, ["sync", "-p", policy, "--json"])
    assert again.exit_code == 0, again.output
    counts = json.loads(again.stdout)["counts"]
    assert "copy" not in counts and "update" not in counts and counts.get("noop") == 3, counts

    # serve it on: imagevet copy, and an independent tool (skopeo), from the layout to a registry
    dest: RunningRegistry = registry_factory(auth="none")
    out = runner.invoke(
        app, ["copy", f"oci:{mirror / 'hello-world'}:latest", f"{dest.host}/acme/hello-world:latest"]
    )
    assert out.exit_code == 0, out.output
    body, _, digest = get_manifest_bytes_sync(dest, "acme/hello-world", "latest")
    assert digest == str(hello.digest) and body == hello.top.data
    assert fetch_image_sync(dest, "acme/hello-world", "latest").blobs == hello.blobs
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is required (./scripts/test installs it)"
    done = subprocess.run(
        [skopeo, "--insecure-policy", "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
         f"oci:{mirror / 'busybox'}:1.36", f"docker://{dest.host}/acme/busybox:1.36"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    _, _, digest = get_manifest_bytes_sync(dest, "acme/busybox", "1.36")
    assert digest == _layout_tags(mirror / "busybox")["1.36"]

    # air-gap import: a policy whose sources are the layouts syncs them into a registry
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "imagevet.yaml").write_text(
        "version: 1\n"
        f"target: {{registry: '{dest.host}', namespace: imported}}\n"
        "defaults:\n  mode: follow\n"
        "  approval: {approved_by: you@example.com, expires: 2027-12-31}\n"
        "images:\n"
        f"  - source: oci:{mirror / 'whoami'}\n    tags: {{tags: [v1.10.2]}}\n"
        f"  - source: oci:{mirror / 'hello-world'}\n    tags: {{tags: [latest]}}\n"
    )
    imported = runner.invoke(app, ["sync", "-p", str(inside / "imagevet.yaml"), "--json"])
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["counts"].get("copy") == 2
    for name, tag in (("whoami", "v1.10.2"), ("hello-world", "latest")):
        _, _, digest = get_manifest_bytes_sync(dest, f"imported/{name}", tag)
        assert digest == _layout_tags(mirror / name)[tag], name
    assert fetch_image_sync(dest, "imported/hello-world", "latest").blobs == hello.blobs


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
def test_every_real_world_image_goes_registry_to_layout_to_registry_byte_for_byte(
    kind: str, plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    """Air-gap export and import with ``imagevet copy --all-tags``: each real-world layout,
    pushed to a registry, is exported to a layout (directory or archive) and imported into
    another registry.  Every good image keeps its digest and blobs at both hops; a broken image
    fails alone, with the same reason each hop, and never as another image's failure."""
    dest: RunningRegistry = registry_factory(auth="none")
    checked = 0
    for n, layout in enumerate(load_layouts()):
        pushed = run_sync(push_layout(plain_registry, layout, f"{unique_repo}/{n}"))
        if not pushed.good:
            continue
        where = tmp_path / (f"export-{n}" if kind == "oci" else f"export-{n}.tar")
        src = f"{plain_registry.host}/{pushed.repository}"
        out = runner.invoke(app, ["copy", "--all-tags", "--json", src, f"{kind}:{where}"])
        export = json.loads(out.stdout)
        exported = {r["target"].rsplit(":", 1)[1]: r["digest"] for r in export["results"]}
        assert exported == {t: str(d) for t, d in pushed.good.items()}, (layout.name, export["errors"])
        assert {e["target"].rsplit(":", 1)[1] for e in export["errors"]} == set(pushed.broken), layout.name

        back = f"{dest.host}/{unique_repo}/{n}"
        out = runner.invoke(app, ["copy", "--all-tags", "--json", f"{kind}:{where}", back])
        assert out.exit_code == 0, (layout.name, out.output)
        imported = {r["target"].rsplit(":", 1)[1]: r["digest"] for r in json.loads(out.stdout)["results"]}
        assert imported == exported, layout.name
        assert sorted(list_tags_sync(dest, f"{unique_repo}/{n}")) == sorted(pushed.good)
        for tag in pushed.good:
            got = fetch_image_sync(dest, f"{unique_repo}/{n}", tag)
            want = fetch_image_sync(plain_registry, pushed.repository, tag)
            assert got.top.data == want.top.data and got.blobs == want.blobs, (layout.name, tag)
            checked += 1
    assert checked >= 8, f"only {checked} real-world images were good: is {REALWORLD} complete?"


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
def test_attachments_travel_through_a_layout(
    kind: str, plain_registry: RunningRegistry, registry_factory: Any, unique_repo: str, tmp_path: Path
) -> None:
    """Signatures and SBOMs come along on an export to a layout and back: the cosign ``.sig``
    tag, and referrers (of the index and of a child manifest) found by their ``subject`` in the
    layout, reach the second registry with the same bytes (as the referrers tag index there,
    distribution 2.8 having no referrers API)."""
    image = make_multiarch(seed=f"att/{kind}")
    sig = make_cosign_signature(image.top, seed=f"att/{kind}")
    sbom = make_referrer(image.top, seed=f"att/{kind}/sbom")
    child_sbom = make_referrer(image.manifests[0], seed=f"att/{kind}/child")
    push_image_sync(plain_registry, unique_repo, image, "v1")
    push_image_sync(plain_registry, unique_repo, sig, cosign_tag(image.digest, "sig"))
    for referrer, subject in ((sbom, image.digest), (child_sbom, image.manifests[0].digest)):
        push_image_sync(plain_registry, unique_repo, referrer)
        push_manifest_sync(plain_registry, unique_repo, make_referrers_tag_index([referrer]), referrers_tag(subject))

    where = tmp_path / ("layout" if kind == "oci" else "images.tar")
    out = runner.invoke(app, ["copy", f"{plain_registry.host}/{unique_repo}:v1", f"{kind}:{where}:v1"])
    assert out.exit_code == 0, out.output
    dest: RunningRegistry = registry_factory(auth="none")
    out = runner.invoke(app, ["copy", f"{kind}:{where}:v1", f"{dest.host}/{unique_repo}:v1"])
    assert out.exit_code == 0, out.output

    tags = list_tags_sync(dest, unique_repo)
    assert cosign_tag(image.digest, "sig") in tags
    for tag in ("v1", cosign_tag(image.digest, "sig")):
        assert get_manifest_bytes_sync(dest, unique_repo, tag)[0] == get_manifest_bytes_sync(plain_registry, unique_repo, tag)[0], tag
    for referrer, subject in ((sbom, image.digest), (child_sbom, image.manifests[0].digest)):
        index = json.loads(get_manifest_bytes_sync(dest, unique_repo, referrers_tag(subject))[0])
        assert [m["digest"] for m in index["manifests"]] == [str(referrer.digest)]
        assert fetch_image_sync(dest, unique_repo, str(referrer.digest)).blobs == referrer.blobs


def test_a_layout_target_never_gets_the_docker_hub_manager(
    upstream: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``IMAGEVET_HUB_URL`` and Hub credentials in the environment do not make a layout target a
    Docker Hub namespace: plan and sync never call the Hub (here an address where nothing
    listens) and plan no repository to create."""
    push_image_sync(upstream, "library/app", make_multiarch(seed="layout-no-hub"), "1.0")
    (tmp_path / "imagevet.yaml").write_text(
        "version: 1\n"
        "target: {layout: mirror, namespace: acme}\n"
        "defaults:\n  mode: follow\n"
        "  approval: {approved_by: you@example.com, expires: 2027-12-31}\n"
        "images:\n"
        f"  - source: {upstream.host}/library/app\n    tags: {{tags: ['1.0']}}\n"
    )
    monkeypatch.setenv("IMAGEVET_HUB_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DOCKER_HUB_USERNAME", "someone")
    monkeypatch.setenv("DOCKER_HUB_TOKEN", "dckr_pat_not_used")
    policy = str(tmp_path / "imagevet.yaml")
    planned = runner.invoke(app, ["plan", "-p", policy, "--json"])
    assert planned.exit_code == 0, planned.output
    kinds = [a["kind"] for a in json.loads(planned.stdout)["actions"]]
    assert kinds == ["copy"], kinds
    synced = runner.invoke(app, ["sync", "-p", policy, "--json"])
    assert synced.exit_code == 0, synced.output
    assert _layout_tags(tmp_path / "mirror" / "acme" / "app").keys() == {"1.0"}
