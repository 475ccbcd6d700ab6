"""The whole fixture repository: every finding, its exact position, rule, context and value."""

from __future__ import annotations

from imagevet.check import CheckContext, check_paths, scan_paths
from tests.unit.check.conftest import REPO

# path, line, column, end column (exclusive), rule (or ok), context, resolved value, fixable
EXPECTED = [
    (".github/workflows/ci.yml", 6, 16, 35, "IV004", "jobs.test.container", "bitnami/python:3.12", False),
    (".github/workflows/ci.yml", 9, 16, 33, "IV001", "jobs.test.services.redis.image", "bitnami/redis:7.2", True),
    (".github/workflows/ci.yml", 12, 16, 27, "ok", "jobs.test.services.postgres.image", "postgres:16", False),
    (".github/workflows/ci.yml", 16, 24, 49, "IV004", "jobs.test.steps[1].uses", "hadolint/hadolint:v2.12.0", False),
    (".github/workflows/ci.yml", 17, 24, 41, "IV007", "jobs.test.steps[2].uses", "acme/kubectl:1.30", True),
    (".github/workflows/ci.yml", 24, 14, 33, "IV030", "jobs.matrix.container.image", "${{ matrix.image }}", False),
    ("Dockerfile", 8, 32, 59, "ok", "FROM (stage build)", "golang:1.22-alpine", False),
    ("Dockerfile", 12, 28, 46, "IV004", "RUN --mount from", "bitnami/git:2.45.2", False),
    ("Dockerfile", 18, 6, 13, "IV004", "FROM (stage runtime)", "bitnami/minideb:bookworm", False),
    ("Dockerfile", 21, 13, 33, "IV001", "COPY --from", "bitnami/kubectl:1.30", True),
    ("Dockerfile", 28, 6, 20, "IV001", "FROM (stage cache-seed)", "bitnami/redis:7.2", True),
    ("Dockerfile", 29, 6, 28, "IV030", "FROM (stage debug)", "acme/base:", False),
    ("Dockerfile", 31, 5, 44, "IV001", "FROM (stage exporter)", "quay.io/prometheus/node-exporter:v1.8.1", True),
    ("broken/docker-compose.yml", 5, 3, 6, "IV032", "file", "", False),
    ("charts/cache/templates/deployment.yaml", 13, 18, 30, "ok", "image", "busybox:1.36", False),
    ("charts/cache/values.yaml", 7, 15, 28, "IV001", "image", "docker.io/bitnami/redis:7.2", True),
    ("charts/cache/values.yaml", 16, 17, 39, "IV004", "metrics.image", "docker.io/bitnami/redis-exporter:1.62.0", False),
    ("charts/cache/values.yaml", 21, 17, 39, "IV004", "sentinel.image", "bitnami/redis-sentinel:7.2", False),
    ("charts/cache/values.yaml", 24, 10, 29, "IV004", "volumePermissions.image", "bitnami/os-shell:12", False),
    ("charts/cache/values.yaml", 28, 17, 32, "IV001", "kubectl.image", "bitnami/kubectl:1.30", True),
    ("charts/cache/values.yaml", 33, 13, 24, "ok", "extraContainers[0].image", "alpine:3.20", False),
    ("compose.yaml", 3, 11, 28, "IV001", "services.cache.image, services.cache-replica.image", "bitnami/redis:7.2", True),
    ("compose.yaml", 8, 23, 48, "IV001", "services.db.image", "bitnami/postgresql:16.3.0", True),
    ("compose.yaml", 24, 13, 30, "ok", "services.web.image", "nginx:1.27-alpine", False),
    ("compose.yaml", 26, 12, 49, "IV004", "services.queue.image", "bitnami/rabbitmq:3.13", False),
    ("compose.yaml", 28, 12, 26, "IV030", "services.metrics.image", "", False),
    ("compose.yaml", 30, 12, 34, "IV004", "services.grafana.image", "grafana/grafana:11.1.0", False),
    ("deploy/k8s/workloads.yaml", 11, 18, 43, "ok", "Deployment/api initContainers[migrate]", "acme/api-migrations:1.4.0", False),
    ("deploy/k8s/workloads.yaml", 14, 18, 32, "ok", "Deployment/api containers[api]", "acme/api:1.4.0", False),
    ("deploy/k8s/workloads.yaml", 16, 18, 35, "IV001", "Deployment/api containers[redis-sidecar]", "bitnami/redis:7.4", True),
    ("deploy/k8s/workloads.yaml", 29, 21, 118, "IV001", "CronJob/nightly-backup containers[backup]",
     "bitnami/postgresql:16.3.0@sha256:1ebe074733631585eb607c14cf55590ed336a8e769b08c3036a430b2bd0f9430", True),
    ("deploy/k8s/workloads.yaml", 42, 16, 33, "IV002", "StatefulSet/redis containers[redis]", "bitnami/redis:6.2", False),
    ("deploy/k8s/workloads.yaml", 53, 18, 57, "IV002", "DaemonSet/node-exporter containers[exporter]",
     "quay.io/prometheus/node-exporter:v1.7.0", False),
    ("deploy/k8s/workloads.yaml", 55, 18, 47, "IV020", "DaemonSet/node-exporter containers[fluent-bit]",
     "ghcr.io/fluent/fluent-bit:3.0", False),
    ("deploy/k8s/workloads.yaml", 66, 18, 103, "IV003", "Job/seed containers[seed]",
     "bitnami/redis@sha256:19b25856e1c150ca834cffc8b59b23adbd0ec0389e58eb22b3b64768098d002b", False),
    ("deploy/k8s/workloads.yaml", 85, 18, 30, "ok", "Pod/debug ephemeralContainers[shell]", "busybox:1.36", False),
    ("deploy/k8s/workloads.yaml", 88, 19, 43, "IV030", "Pod/debug containers[main]", "{{ .Values.debugImage }}", False),
    ("deploy/k8s/workloads.yaml", 96, 38, 56, "IV004", "ReplicaSet/legacy containers[legacy]", "bitnami/nginx:1.25", False),
    ("services/worker/Containerfile", 3, 6, 20, "IV007", "FROM (stage base)", "acme/redis:7.2", True),
    ("services/worker/Containerfile", 6, 6, 88, "IV005", "FROM (stage pinned-bad)",
     "acme/redis@sha256:1778b3378e913c5aafac6c128e8e924bbc07ad4d3f8311f1dec6e01e18610641", False),
    ("services/worker/Containerfile", 7, 6, 20, "IV006", "FROM (stage old)", "acme/redis:6.0", False),
    ("services/worker/Containerfile", 8, 6, 102, "ok", "FROM (stage good)",
     "docker.io/acme/redis:7.4@sha256:c6c54bbcd898faaca4f0ae1abf4d1de0f5463c4035e66b7659dd706555459348", False),
    ("services/worker/Containerfile", 9, 6, 26, "ok", "FROM", "acme/worker-base:2.1", False),
]


def test_every_finding_with_its_position_and_verdict(context: CheckContext) -> None:
    report = check_paths([REPO], context, root=REPO)
    got = [
        (
            v.found.location.path,
            v.found.location.line,
            v.found.location.column,
            v.found.location.end_column,
            v.rule.id if v.rule else "ok",
            v.found.context,
            v.found.value,
            v.fixable,
        )
        for v in report.verdicts
    ]
    assert got == EXPECTED
    # the chart's templated image line is not a verdict: one note for the chart (issue 12)
    assert report.notes == (
        "chart charts/cache: 1 templated image reference not resolved without rendering "
        "(templates/deployment.yaml:10); check `helm template` output",
    )


def test_positions_point_at_the_text_as_written(context: CheckContext) -> None:
    report = check_paths([REPO], context, root=REPO)
    for v in report.verdicts:
        loc = v.found.location
        text = (REPO / loc.path).read_text()
        assert text[loc.span.start : loc.span.end] == v.found.text
        line = text.splitlines()[loc.line - 1]
        if loc.line == loc.end_line:
            assert line[loc.column - 1 : loc.end_column - 1] == v.found.text


def test_files_read_and_files_skipped() -> None:
    scan = scan_paths([REPO], root=REPO)
    assert [(f.path, str(f.kind)) for f in scan.files] == [
        (".github/workflows/ci.yml", "workflow"),
        ("Dockerfile", "dockerfile"),
        ("broken/docker-compose.yml", "compose"),
        ("charts/cache/templates/deployment.yaml", "helm-template"),
        ("charts/cache/values.yaml", "helm-values"),
        ("compose.yaml", "compose"),
        ("deploy/k8s/workloads.yaml", "kubernetes"),
        ("services/worker/Containerfile", "dockerfile"),
    ]  # not node_modules/, not Chart.yaml, not docs/mkdocs.yml


def test_a_malformed_file_does_not_stop_the_scan(context: CheckContext) -> None:
    report = check_paths([REPO], context, root=REPO)
    errors = [v for v in report.verdicts if v.rule is not None and v.rule.id == "IV032"]
    assert [e.found.path for e in errors] == ["broken/docker-compose.yml"]
    assert "expected ',' or ']'" in errors[0].message
    assert len({v.found.path for v in report.verdicts}) == 8  # every other file was read


def test_summary(context: CheckContext) -> None:
    report = check_paths([REPO], context, root=REPO)
    assert report.summary() == {
        "files": 8, "references": 42, "ok": 10, "error": 25, "warning": 5, "note": 3,
        "fixable": 12, "suppressed": 0,
    }
    assert report.failed()
