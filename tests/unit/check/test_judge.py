"""Verdict rules: a reference -> rule, replacement; categories, IAM settings and digest pins."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imagevet.category import AccessSettings, Category, Classification
from imagevet.check import (
    CheckContext,
    FoundImage,
    Judge,
    VettedImage,
    find_in_dockerfile,
    find_in_kubernetes,
    repositories_to_classify,
)
from imagevet.digest import Digest
from imagevet.reference import Reference

D72 = "sha256:09760665f0af12dc6887689c1fa1afe346138a545ce1efbe277acf07bc92780a"
D74 = "sha256:c6c54bbcd898faaca4f0ae1abf4d1de0f5463c4035e66b7659dd706555459348"
BAD = "sha256:" + "f" * 64
NGINX = "sha256:cd4495bb73de9b01bf009710b80ecf4be2d298db47492f4e9e7d0b04981c4614"
EXPORTER = "sha256:2ffd71ad2d9458eeea9df3c11c0cfbf4ff56963c99c09a9384a82779b4c21744"


def found(ref: str) -> FoundImage:
    (f,) = find_in_dockerfile(f"FROM {ref}\n", "Dockerfile")
    return f


CASES = [
    # reference, rule (None: ok), replacement
    ("acme/api:1.4", None, None),
    ("nginx:1.27", None, None),
    ("bitnami/redis:7.2", "IV001", f"docker.io/acme/redis:7.2@{D72}"),
    ("registry-1.docker.io/bitnami/redis:7.4", "IV001", f"docker.io/acme/redis:7.4@{D74}"),
    (f"bitnami/redis@{D74}", "IV001", f"docker.io/acme/redis:7.4@{D74}"),
    (f"bitnami/redis:7.2@{D72}", "IV001", f"docker.io/acme/redis:7.2@{D72}"),
    (f"bitnami/redis:7.2@{D74}", "IV001", f"docker.io/acme/redis:7.4@{D74}"),  # the digest decides
    ("bitnami/redis", "IV002", None),  # :latest is not vetted
    ("bitnami/redis:6.2", "IV002", None),
    (f"bitnami/redis:7.2@{BAD}", "IV003", None),
    ("bitnami/unvetted:1", "IV004", None),
    ("acme/redis:7.2", "IV007", f"docker.io/acme/redis:7.2@{D72}"),
    (f"acme/redis@{D72}", None, None),
    (f"acme/redis:7.4@{D72}", None, None),  # a vetted digest under another tag
    (f"acme/redis@{BAD}", "IV005", None),
    (f"acme/redis:7.4@{BAD}", "IV005", f"docker.io/acme/redis:7.4@{D74}"),
    ("acme/redis:9", "IV006", None),
    ("quay.io/prometheus/node-exporter:v1.8.1", "IV001", f"docker.io/acme/node-exporter:v1.8.1@{EXPORTER}"),
    ("quay.io/prometheus/node-exporter:v1.7.0", "IV002", None),
    ("ghcr.io/fluent/fluent-bit:3.0", "IV020", None),
]


@pytest.mark.parametrize(("ref", "rule", "replacement"), CASES)
def test_rules(context: CheckContext, ref: str, rule: str | None, replacement: str | None) -> None:
    v = Judge(context).judge(found(ref))
    assert (v.rule.id if v.rule else None) == rule
    assert (str(v.replacement) if v.replacement else None) == replacement
    assert v.fixable == (replacement is not None)


BLOCKING = AccessSettings("acme", enabled=True, allow_official=False, allow_verified_publishers=False)


@pytest.mark.parametrize(
    ("ref", "rule", "replacement", "suggestion"),
    [
        ("nginx:1.27-alpine", "IV010", f"docker.io/acme/nginx:1.27-alpine@{NGINX}", "use the vetted mirror"),
        ("nginx:1.26", "IV010", None, "use a vetted tag of acme/nginx: 1.27-alpine"),
        ("debian:12", "IV010", None, "ask for it to be vetted"),
        ("grafana/grafana:11.1.0", "IV011", None, "ask for it to be vetted"),
        ("acme/api:1", None, None, ""),
    ],
)
def test_iam_blocks_official_and_verified(
    context: CheckContext, ref: str, rule: str, replacement: str | None, suggestion: str
) -> None:
    grafana = Classification(Reference.parse("grafana/grafana"), Category.VERIFIED_PUBLISHER)
    ctx = replace(context, access=BLOCKING, categories={"docker.io/grafana/grafana": grafana})
    v = Judge(ctx).judge(found(ref))
    assert (v.rule.id if v.rule else None) == rule
    assert (str(v.replacement) if v.replacement else None) == replacement
    assert v.suggestion.startswith(suggestion)
    if rule:
        assert "blocked by acme's Image Access Management" in v.message


def test_verified_publisher_allowed(context: CheckContext) -> None:
    grafana = Classification(Reference.parse("grafana/grafana"), Category.VERIFIED_PUBLISHER)
    ctx = replace(context, categories={"docker.io/grafana/grafana": grafana})
    v = Judge(ctx).judge(found("grafana/grafana:11.1.0"))
    assert v.ok and v.message == "grafana/grafana:11.1.0: Verified Publisher, allowed by Image Access Management"


def test_offline_community_is_unverified_and_says_so(context: CheckContext) -> None:
    v = Judge(context).judge(found("bitnami/unvetted:1"))
    assert v.message == (
        "bitnami/unvetted:1: Community image (unverified) with no vetted mirror, "
        "blocked by Image Access Management"
    )
    assert v.suggestion == (
        "request vetting of bitnami/unvetted (add it to the imagevet policy); "
        "its category was not looked up on Docker Hub"
    )
    assert v.category is not None and not v.category.verified


def test_sponsored_oss_is_treated_as_community(context: CheckContext) -> None:
    oss = Classification(Reference.parse("bitnami/unvetted"), Category.SPONSORED_OSS)
    ctx = replace(context, categories={"docker.io/bitnami/unvetted": oss})
    v = Judge(ctx).judge(found("bitnami/unvetted:1"))
    assert v.rule is not None and v.rule.id == "IV004"
    assert "Docker-Sponsored Open Source, which IAM treats as Community" in v.message
    assert "not looked up" not in v.suggestion


def test_iam_disabled(context: CheckContext) -> None:
    ctx = replace(context, access=AccessSettings("acme", enabled=False, allow_official=False))
    judge = Judge(ctx)
    assert judge.judge(found("nginx:1.26")).ok
    community = judge.judge(found("bitnami/unvetted:1"))
    assert community.rule is not None and community.rule.id == "IV004"
    assert community.message.endswith("with no vetted mirror, not vetted")


def test_without_an_org_nothing_is_an_organization_image(context: CheckContext) -> None:
    v = Judge(replace(context, org=None)).judge(found("acme/api:1"))
    assert v.rule is not None and v.rule.id == "IV004"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("FROM Bad/Name\n", "IV031"),
        ("ARG X\nFROM $X\n", "IV030"),
    ],
)
def test_findings_that_are_not_references(context: CheckContext, text: str, rule: str) -> None:
    (f,) = find_in_dockerfile(text, "Dockerfile")
    v = Judge(context).judge(f)
    assert v.rule is not None and v.rule.id == rule and not v.fixable


def test_parse_error(context: CheckContext) -> None:
    (f,) = find_in_kubernetes("kind: Pod\nspec: [\n", "k.yaml")
    v = Judge(context).judge(f)
    assert v.rule is not None and v.rule.id == "IV032" and v.message.startswith("cannot parse kubernetes file")


def test_vetted_image_normalises_and_pins() -> None:
    v = VettedImage(Reference.parse("bitnami/redis:7.2"), Reference.parse("acme/redis@" + D72),
                    {"7.2": Digest.parse(D72)})
    assert str(v.source) == "docker.io/bitnami/redis" and str(v.mirror) == "docker.io/acme/redis"
    assert str(v.pinned("7.2")) == f"docker.io/acme/redis:7.2@{D72}"
    assert v.tags_for(Digest.parse(D72)) == ["7.2"]


def test_repositories_to_classify(vetted: list[VettedImage]) -> None:
    refs = ["bitnami/x:1", "bitnami/x:2", "nginx", "acme/a", "acme/redis:7.2", "ghcr.io/a/b", "grafana/grafana"]
    found_ = [found(r) for r in refs]
    assert [str(r) for r in repositories_to_classify(found_, org="acme", vetted=vetted)] == [
        "docker.io/bitnami/x",
        "docker.io/grafana/grafana",
    ]
