"""Compose, Kubernetes, Helm and workflow finders: positions through anchors, merges and shapes."""

from __future__ import annotations

import textwrap

import pytest

from imagevet.check import (
    FindingKind,
    FoundImage,
    HelmImageMap,
    ReplaceSpan,
    find_in_compose,
    find_in_helm_template,
    find_in_helm_values,
    find_in_kubernetes,
    find_in_workflow,
)


def rows(found: list[FoundImage], text: str) -> list[tuple[int, int, str, str, str]]:
    """The findings as table rows, after checking that line and column point at their text."""
    for f in found:
        loc = f.location
        if f.text and loc.line == loc.end_line:
            lines = text.splitlines()
            assert lines[loc.line - 1][loc.column - 1 : loc.end_column - 1] == f.text
    return [(f.location.line, f.location.column, str(f.kind), f.value, f.context) for f in found]


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- Compose ---------------------------------------------------------------------------------


def test_compose_anchor_merge_and_alias_point_where_the_value_is_written() -> None:
    text = dedent("""
        x-base: &base
          image: 'bitnami/redis:7.2'
        x-img: &img !!str bitnami/nginx:1.25
        services:
          a:
            <<: *base
          b:
            <<: [*base]
            image: "acme/override:1"
          c:
            image: *img
          d:
            <<: *base
            build: ./d
    """)
    assert rows(find_in_compose(text, "compose.yaml"), text) == [
        (2, 11, "reference", "bitnami/redis:7.2", "services.a.image"),
        (3, 19, "reference", "bitnami/nginx:1.25", "services.c.image"),
        (9, 13, "reference", "acme/override:1", "services.b.image"),
    ]


def test_compose_interpolation() -> None:
    text = dedent("""
        services:
          a: {image: "${REG:-docker.io}/bitnami/redis:${TAG-7.2}"}
          b: {image: "$$literal"}
          c: {image: "${TAG:?set TAG}"}
    """)
    found = find_in_compose(text, "compose.yaml")
    assert rows(found, text) == [
        (2, 15, "reference", "docker.io/bitnami/redis:7.2", "services.a.image"),
        (3, 15, "invalid-reference", "$literal", "services.b.image"),
        (4, 15, "unresolved", "", "services.c.image"),
    ]
    assert found[0].fix is None and "variables" in found[0].fix_note


def test_compose_non_string_image() -> None:
    (f,) = find_in_compose("services:\n  a:\n    image: [x]\n", "compose.yaml")
    assert f.kind is FindingKind.INVALID and f.detail == "expected a string"


# -- Kubernetes ------------------------------------------------------------------------------

WORKLOADS = dedent("""
    apiVersion: v1
    kind: Pod
    metadata: {name: p}
    spec:
      containers: [{name: c, image: "a:1"}]
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: s}
    spec:
      template:
        spec:
          initContainers:
          - name: init
            image: b:1
    ---
    apiVersion: batch/v1
    kind: CronJob
    metadata: {name: cj}
    spec:
      jobTemplate:
        spec:
          template:
            spec:
              containers:
                - image: c:1
    ---
    # an empty document and a kind without pods
    ---
    apiVersion: v1
    kind: ConfigMap
    data: {image: "not-an-image:1"}
    ---
    apiVersion: v1
    kind: DeploymentList
    items:
      - kind: Deployment
        metadata: {name: d}
        spec:
          template:
            spec:
              ephemeralContainers:
                - name: dbg
                  image: d:1
""")


def test_kubernetes_every_workload_kind() -> None:
    assert rows(find_in_kubernetes(WORKLOADS, "k8s.yaml"), WORKLOADS) == [
        (5, 34, "reference", "a:1", "Pod/p containers[c]"),
        (15, 16, "reference", "b:1", "StatefulSet/s initContainers[init]"),
        (26, 22, "reference", "c:1", "CronJob/cj containers[0]"),
        (44, 22, "reference", "d:1", "Deployment/d ephemeralContainers[dbg]"),
    ]


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"])
def test_kubernetes_template_kinds(kind: str) -> None:
    text = f"kind: {kind}\nmetadata: {{name: x}}\nspec:\n  template:\n    spec:\n      containers:\n      - image: img:1\n"
    assert rows(find_in_kubernetes(text, "k.yaml"), text) == [(7, 16, "reference", "img:1", f"{kind}/x containers[0]")]


def test_kubernetes_parse_error_location() -> None:
    text = "kind: Pod\nspec:\n  containers:\n  - image: a:1\n   bad: [\n"
    (f,) = find_in_kubernetes(text, "k.yaml")
    assert f.kind is FindingKind.PARSE_ERROR and f.location.line >= 4 and f.detail.startswith("YAML:")


# -- Helm ------------------------------------------------------------------------------------


def test_helm_values_maps_and_strings() -> None:
    text = dedent("""
        image:
          registry: quay.io
          repository: org/app
          tag: "1.0"
          digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
        sidecar:
          initImage: busybox:1.36
          other:
            image: {repository: bitnami/redis}
            list:
              - image: "{{ .Values.x }}"
        notimage:
          repository: ignored/too
    """)
    found = find_in_helm_values(text, "values.yaml", app_version="7.4")
    assert rows(found, text) == [
        (3, 15, "reference",
         "quay.io/org/app:1.0@sha256:0000000000000000000000000000000000000000000000000000000000000000",
         "image"),
        (7, 14, "reference", "busybox:1.36", "sidecar.initImage"),
        (9, 25, "reference", "bitnami/redis:7.4", "sidecar.other.image"),
        (11, 17, "unresolved", "{{ .Values.x }}", "sidecar.other.list[0].image"),
    ]
    assert isinstance(found[0].fix, HelmImageMap) and found[0].fix.digest is not None
    assert found[2].fix is None and "tag comes from Chart.yaml appVersion" in found[2].fix_note
    assert "Chart.yaml appVersion 7.4" in found[2].inferred


def test_helm_values_without_app_version_leaves_a_tagless_map_unresolved() -> None:
    (f,) = find_in_helm_values("image:\n  repository: bitnami/redis\n", "values.yaml")
    assert f.kind is FindingKind.UNRESOLVED and "AppVersion" in f.detail


def test_helm_template_lines() -> None:
    text = dedent("""
        spec:
          containers:
            - name: a
              image: "{{ .Values.image }}"
            - image: alpine:3.20   # pinned
              {{- if .Values.x }}
            - image: 'bitnami/redis:7.2'
    """)
    found = find_in_helm_template(text, "templates/d.yaml")
    assert rows(found, text) == [
        (4, 15, "unresolved", "{{ .Values.image }}", "image"),
        (5, 14, "reference", "alpine:3.20", "image"),
        (7, 15, "reference", "bitnami/redis:7.2", "image"),
    ]
    assert isinstance(found[1].fix, ReplaceSpan)


# -- GitHub Actions --------------------------------------------------------------------------


def test_workflow_container_services_and_docker_steps() -> None:
    text = dedent("""
        on: push
        jobs:
          a:
            container: {image: "node:20", options: --cpus 1}
            services:
              db: {image: postgres:16}
              cache:
                image: ${{ vars.CACHE_IMAGE }}
            steps:
              - uses: actions/checkout@v4
              - uses: "docker://alpine:3.20"
              - run: echo
          b:
            container: ghcr.io/org/runner:2
    """)
    found = find_in_workflow(text, ".github/workflows/ci.yml")
    assert rows(found, text) == [
        (4, 25, "reference", "node:20", "jobs.a.container.image"),
        (6, 19, "reference", "postgres:16", "jobs.a.services.db.image"),
        (8, 16, "unresolved", "${{ vars.CACHE_IMAGE }}", "jobs.a.services.cache.image"),
        (11, 25, "reference", "alpine:3.20", "jobs.a.steps[1].uses"),
        (14, 16, "reference", "ghcr.io/org/runner:2", "jobs.b.container"),
    ]
    step = found[3]
    assert isinstance(step.fix, ReplaceSpan)
    assert text[step.fix.span.start - len("docker://") : step.fix.span.end] == "docker://alpine:3.20"
