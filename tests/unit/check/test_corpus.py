"""``check`` on real public files (tests/fixtures/check/corpus, sources and licences in its
README): every finding compared with expectations written by hand from reading the files.

Helm charts with templates in subfolders, ``v``-prefixed ``appVersion`` tags, nested image maps,
``sha`` keys, a subchart and a CRD; a Kustomize ``images:`` list; a Compose project whose tags come
from its ``.env``.  And ``--fix --dry-run`` over them gives a patch ``git apply`` accepts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagevet.category import AccessSettings
from imagevet.check import CheckContext, check_paths, plan_fixes, vetted_from_data
from imagevet.cli import app
from tests.unit.check.conftest import FIXTURES
from tests.unit.check.dry_run import assert_patch_applies

CORPUS = FIXTURES / "corpus"
KPS = "prometheus-community/kube-prometheus-stack"
KSM = "prometheus-community/kube-state-metrics"
POAW = "prometheus-community/prometheus-operator-admission-webhook"
KUS = "kustomize/transformerconfigs-images"
TMP = "temporal-docker-compose"

# (path, line, column, kind, reference (or value), inferred, rule) -- offline, org acme, no mirrors
EXPECTED = [
    (f"{KUS}/kustomization.yaml", 9, 12, "reference", "docker.io/library/new-crd-image:new-v1-tag", False, None),
    (f"{KUS}/kustomization.yaml", 12, 12, "reference", "docker.io/library/new-app-1:MYNEWTAG-1", False, None),
    (f"{KUS}/kustomization.yaml", 15, 12, "reference", "docker.io/library/prod-mysql:v3", False, None),
    (f"{KUS}/kustomization.yaml", 18, 12, "invalid-reference", "my-docker2@sha256:25a0d4", False, "IV031"),
    (f"{KUS}/resources.yaml", 25, 16, "reference", "docker.io/library/my-app", False, None),
    (f"{KUS}/resources.yaml", 27, 16, "reference", "docker.io/library/alpine:1.8.0", False, None),
    (f"{KPS}/values.yaml", 47, 21, "reference", "docker.io/library/busybox:latest", True, None),
    (f"{KPS}/values.yaml", 1020, 19, "reference", "quay.io/prometheus/alertmanager:v0.34.0", True, "IV020"),
    (f"{KPS}/values.yaml", 3012, 21, "reference", "quay.io/prometheus-operator/admission-webhook:v0.93.1", True,
     "IV020"),
    (f"{KPS}/values.yaml", 3131, 21, "reference", "ghcr.io/jkroepke/kube-webhook-certgen:1.8.7", True, "IV020"),
    (f"{KPS}/values.yaml", 3525, 17, "reference", "quay.io/prometheus-operator/prometheus-operator:v0.93.1", True,
     "IV020"),
    (f"{KPS}/values.yaml", 3552, 19, "reference",
     "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1", True, "IV020"),
    (f"{KPS}/values.yaml", 3573, 17, "reference", "quay.io/thanos/thanos:v0.42.4", True, "IV020"),
    (f"{KPS}/values.yaml", 4346, 19, "reference", "quay.io/prometheus/prometheus:v3.14.0-distroless", True, "IV020"),
    (f"{KPS}/values.yaml", 5540, 19, "reference", "quay.io/thanos/thanos:v0.42.4", True, "IV020"),
    (f"{KSM}/values.yaml", 5, 15, "reference", "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
     True, "IV020"),
    (f"{KSM}/values.yaml", 143, 17, "reference", "quay.io/brancz/kube-rbac-proxy:v0.22.1", True, "IV020"),
    (f"{POAW}/values.yaml", 84, 17, "reference", "ghcr.io/jkroepke/kube-webhook-certgen:1.8.7", True, "IV020"),
    (f"{POAW}/values.yaml", 238, 15, "reference", "quay.io/prometheus-operator/admission-webhook:v0.93.1", True,
     "IV020"),
    (f"{TMP}/docker-compose.yml", 13, 12, "reference", "docker.io/library/elasticsearch:7.17.27", True, None),
    (f"{TMP}/docker-compose.yml", 25, 12, "reference", "docker.io/library/postgres:16", True, None),
    (f"{TMP}/docker-compose.yml", 49, 12, "reference", "docker.io/temporalio/auto-setup:1.29.1", True, "IV004"),
    (f"{TMP}/docker-compose.yml", 63, 12, "reference",
     "docker.io/temporalio/admin-tools:1.29.1-tctl-1.18.4-cli-1.5.0", True, "IV004"),
    (f"{TMP}/docker-compose.yml", 75, 12, "reference", "docker.io/temporalio/ui:2.34.0", True, "IV004"),
]

NOTES = (
    f"chart {KPS}: 5 templated image references not resolved without rendering "
    "(templates/prometheus-operator/admission-webhooks/deployment/deployment.yaml:52, "
    "templates/prometheus-operator/admission-webhooks/deployment/deployment.yaml:54, "
    "templates/prometheus-operator/deployment.yaml:54, templates/prometheus-operator/deployment.yaml:56, "
    "values.yaml:53 (crds.upgradeJob.image.kubectl)); check `helm template` output",
    f"chart {KPS}/charts/crds: 4 templated image references not resolved without rendering "
    "(templates/upgrade/job.yaml:42, templates/upgrade/job.yaml:44, templates/upgrade/job.yaml:81, "
    "templates/upgrade/job.yaml:83); check `helm template` output",
    f"chart {KSM}: 3 templated image references not resolved without rendering "
    "(templates/deployment.yaml:168, templates/deployment.yaml:276, templates/deployment.yaml:317); "
    "check `helm template` output",
    f"chart {POAW}: 6 templated image references not resolved without rendering "
    "(templates/deployment.yaml:102, templates/deployment.yaml:104, templates/hooks/job-createSecret.yaml:43, "
    "templates/hooks/job-createSecret.yaml:45, templates/hooks/job-patchWebhook.yaml:43 and 1 more); "
    "check `helm template` output",
)

# what the inferred ones were put together from, as the outputs say it
INFERRED_FROM = {
    (f"{KSM}/values.yaml", 5): "values.yaml image (registry, repository) and Chart.yaml appVersion 2.20.0, "
                               "v-prefixed as templates/_helpers.tpl:145 builds it",
    (f"{POAW}/values.yaml", 238): "values.yaml image (registry, repository) and Chart.yaml appVersion 0.93.1, "
                                  "v-prefixed as templates/_helpers.tpl:85 builds it",
    (f"{KPS}/values.yaml", 3525): "values.yaml prometheusOperator.image (registry, repository) and Chart.yaml "
                                  "appVersion v0.93.1, as templates/prometheus-operator/deployment.yaml:54 builds it",
    (f"{KPS}/values.yaml", 47): "values.yaml crds.upgradeJob.image.busybox (registry, repository, tag)",
    (f"{TMP}/docker-compose.yml", 49): f"interpolation of TEMPORAL_VERSION from {TMP}/.env",
}


@pytest.fixture
def offline() -> CheckContext:
    return CheckContext("acme", AccessSettings("acme", enabled=True), ())


def test_every_finding_of_the_corpus(offline: CheckContext) -> None:
    report = check_paths([CORPUS], offline, root=CORPUS)
    rows = [
        (v.found.path, v.found.location.line, v.found.location.column, str(v.found.kind),
         str(v.found.reference) if v.found.reference else v.found.value, bool(v.found.inferred),
         v.rule.id if v.rule else None)
        for v in report.verdicts
    ]
    assert rows == EXPECTED
    assert report.notes == NOTES
    inferred = {(v.found.path, v.found.location.line): v.found.inferred for v in report.verdicts}
    assert {k: inferred[k] for k in INFERRED_FROM} == INFERRED_FROM
    # no false parse error, the CRD is not a finding, and nothing fails but what is blocked
    assert report.summary() == {"files": 18, "references": 24, "ok": 8, "error": 4, "warning": 0,
                                "note": 12, "fixable": 0, "suppressed": 0}


VETTED = [
    {"source": "ghcr.io/jkroepke/kube-webhook-certgen", "mirror": "acme/kube-webhook-certgen",
     "tags": {"1.8.7": "sha256:" + "1" * 64}},
    {"source": "new-app-1", "mirror": "acme/new-app-1", "tags": {"MYNEWTAG-1": "sha256:" + "2" * 64}},
    {"source": "temporalio/ui", "mirror": "acme/temporal-ui", "tags": {"2.34.0": "sha256:" + "3" * 64}},
    {"source": "quay.io/prometheus/node-exporter", "mirror": "acme/node-exporter", "tags": {}},
]


def test_fix_of_the_corpus(tmp_path: Path) -> None:
    """Literal values maps and Kustomize entries are rewritten; the interpolated Compose tag and
    nothing in a template is."""
    root = tmp_path / "corpus"
    shutil.copytree(CORPUS, root)
    ctx = CheckContext("acme", AccessSettings("acme", enabled=True, allow_official=False), vetted_from_data(VETTED))
    report = check_paths([root], ctx, root=root)
    plan = plan_fixes(report.issues(), {f.path: (f.file, f.text) for f in report.files})
    assert [(e.path, e.line, e.column, e.via, e.old, e.new) for e in plan.edits] == [
        (f"{KUS}/kustomization.yaml", 12, 12, "newName", "new-app-1", "docker.io/acme/new-app-1"),
        (f"{KUS}/kustomization.yaml", 13, 21, "digest (added)", "", "\n  digest: sha256:" + "2" * 64),
        (f"{KPS}/values.yaml", 3130, 19, "registry", "ghcr.io", "docker.io"),
        (f"{KPS}/values.yaml", 3131, 21, "repository", "jkroepke/kube-webhook-certgen", "acme/kube-webhook-certgen"),
        (f"{KPS}/values.yaml", 3133, 15, "digest", "", "1" * 64),
        (f"{POAW}/values.yaml", 83, 15, "registry", "ghcr.io", "docker.io"),
        (f"{POAW}/values.yaml", 84, 17, "repository", "jkroepke/kube-webhook-certgen", "acme/kube-webhook-certgen"),
        (f"{POAW}/values.yaml", 88, 14, "digest", "", "1" * 64),
    ]
    assert [(v.found.path, v.found.location.line, why) for v, why in plan.skipped] == [
        (f"{TMP}/docker-compose.yml", 75, "the reference is interpolated (interpolation of TEMPORAL_UI_VERSION "
         f"from {TMP}/.env); rewriting it would drop the variables: edit the value or {TMP}/.env by hand"),
    ]
    assert_patch_applies(root, plan.diff())


def test_dry_run_of_the_corpus_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "corpus"
    shutil.copytree(CORPUS, root)
    vetted = tmp_path / "vetted.json"
    vetted.write_text(__import__("json").dumps(VETTED))
    for name in ("IMAGEVET_HUB_URL", "DOCKER_HUB_USERNAME", "DOCKER_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["check", "--fix", "--dry-run", "--iam-official", "block", "--vetted", str(vetted)])
    assert result.exit_code == 1, result.output
    diff = result.stdout[: result.stdout.index("not fixed ")]
    assert diff.count("+++ b/") == 3
    assert_patch_applies(root, diff)
