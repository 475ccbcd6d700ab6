"""Helm values images put together the way the chart's templates build them: ``v``-prefixed
``appVersion`` defaults, ``global.imageRegistry``, nested image maps, ``sha`` digest keys; every
such reference marked as inferred (human, JSON, SARIF) and never rewritten by ``--fix`` where the
values do not hold it literally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagevet.category import AccessSettings
from imagevet.check import CheckContext, FindingKind, check_paths, plan_fixes, to_sarif
from imagevet.check.helm import find_in_helm_values, read_chart_build
from imagevet.cli import app
from tests.unit.check.conftest import VETTED_JSON

runner = CliRunner()
SHA = "sha256:" + "ab" * 32

HELPERS = """\
{{- define "x.image" -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository (default (printf "v%s" .Chart.AppVersion) .Values.image.tag) }}
{{- end }}
{{- define "x.proxy" -}}
{{ .Values.proxy.image.repository }}:{{ .Values.proxy.image.tag | default .Chart.AppVersion }}
{{- end }}
"""


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def ctx() -> CheckContext:
    return CheckContext("acme", AccessSettings("acme", enabled=True), ())


def test_read_chart_build_finds_each_paths_default_and_its_v_prefix() -> None:
    build = read_chart_build("2.20.0", {"templates/_helpers.tpl": HELPERS})
    assert {p: (d.prefix, d.where) for p, d in build.tag_defaults.items()} == {
        "image": ("v", "templates/_helpers.tpl:2"),
        "proxy.image": ("", "templates/_helpers.tpl:5"),
    }
    assert build.convention is None  # two different ways: no chart-wide one


def test_a_variable_assigned_from_app_version_carries_its_prefix() -> None:
    text = ('{{- $tag := print "v" .Chart.AppVersion -}}\n'
            'image: "{{ .Values.a.image.repository }}:{{ .Values.a.image.tag | default $tag }}"\n')
    build = read_chart_build("1.0", {"templates/d.yaml": text})
    assert build.tag_defaults["a.image"].prefix == "v"
    assert build.convention is not None and build.convention.prefix == "v"


def test_v_prefixed_app_version_nested_maps_sha_and_global_registry(tmp_path: Path, ctx: CheckContext) -> None:
    root = _write(tmp_path, {
        "c/Chart.yaml": "apiVersion: v2\nname: c\nversion: 1.0.0\nappVersion: 2.20.0\n",
        "c/templates/_helpers.tpl": HELPERS,
        "c/templates/job.yaml": 'image: "{{ .Values.job.image.kubectl.repository }}:{{ .Values.job.image.kubectl.tag }}"\n'
                                'x: "@sha256:{{ .Values.job.image.busybox.sha }}"\n',
        "c/values.yaml": (
            "image:\n"
            "  registry: registry.k8s.io\n"
            "  repository: kube-state-metrics/kube-state-metrics\n"
            "  tag: \"\"\n"
            "proxy:\n"
            "  image:\n"
            "    repository: brancz/kube-rbac-proxy\n"
            "job:\n"
            "  image:\n"
            "    busybox:\n"
            "      registry: docker.io\n"
            "      repository: busybox\n"
            "      tag: \"1.36\"\n"
            f"      sha: {SHA[7:]}\n"
            "    kubectl:\n"
            "      registry: registry.k8s.io\n"
            "      repository: kubectl\n"
            "      tag: \"\"\n"
        ),
        "g/Chart.yaml": "apiVersion: v2\nname: g\nversion: 1.0.0\nappVersion: 1.0.0\n",
        "g/values.yaml": "global:\n  imageRegistry: mirror.example.com\nimage:\n  registry: docker.io\n"
                         "  repository: bitnami/redis\n  tag: \"7.2\"\n",
    })
    report = check_paths([root], ctx, root=root)
    rows = [(v.found.path, v.found.location.line, v.found.location.column, v.found.value, v.found.inferred)
            for v in report.verdicts]
    assert rows == [
        ("c/values.yaml", 3, 15, "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
         "values.yaml image (registry, repository) and Chart.yaml appVersion 2.20.0, "
         "v-prefixed as templates/_helpers.tpl:2 builds it"),
        ("c/values.yaml", 7, 17, "brancz/kube-rbac-proxy:2.20.0",
         "values.yaml proxy.image (repository) and Chart.yaml appVersion 2.20.0, "
         "as templates/_helpers.tpl:5 builds it"),
        ("c/values.yaml", 12, 19, f"docker.io/busybox:1.36@{SHA}",
         "values.yaml job.image.busybox (registry, repository, tag, sha)"),
        ("g/values.yaml", 5, 15, "mirror.example.com/bitnami/redis:7.2",
         "values.yaml image (registry, repository, tag), global.imageRegistry mirror.example.com (line 2)"),
    ]
    # kubectl's tag is used by a template without .Chart.AppVersion: not guessed, one note
    assert report.notes == (
        "chart c: 2 templated image references not resolved without rendering "
        "(templates/job.yaml:1, values.yaml:17 (job.image.kubectl)); check `helm template` output",
    )
    assert report.summary()["warning"] == 0


def test_inferred_is_marked_in_human_json_and_sarif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IMAGEVET_HUB_URL", "DOCKER_HUB_USERNAME", "DOCKER_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    _write(tmp_path, {
        "c/Chart.yaml": "apiVersion: v2\nname: c\nversion: 1.0.0\nappVersion: 7.2\n",
        "c/templates/d.yaml": 'image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"\n',
        "c/values.yaml": "image:\n  repository: bitnami/redis\n  tag: \"\"\n",
    })
    monkeypatch.chdir(tmp_path)
    human = runner.invoke(app, ["check", "--vetted", str(VETTED_JSON)])
    assert human.exit_code == 1
    inferred = ("(inferred from values.yaml image (repository) and Chart.yaml appVersion 7.2, "
                "as templates/d.yaml:1 builds it)")
    assert (f"c/values.yaml:2:15  IV001  bitnami/redis:7.2: Community image (unverified); use the vetted "
            f"mirror {inferred}  use docker.io/acme/redis:7.2@") in human.stdout
    assert "(not auto-fixable: its tag comes from Chart.yaml appVersion (7.2)" in human.stdout
    data = json.loads(runner.invoke(app, ["check", "--json", "--vetted", str(VETTED_JSON)]).stdout)
    (result,) = data["results"]
    assert result["inferred"] is True and result["inferredFrom"] == inferred[len("(inferred from "):-1]
    assert result["fixable"] is False and "set image.tag and a digest" in result["fixNote"]
    sarif = json.loads(runner.invoke(app, ["check", "--format", "sarif", "--vetted", str(VETTED_JSON)]).stdout)
    (res,) = sarif["runs"][0]["results"]
    assert res["properties"] == {"inferred": True, "inferredFrom": result["inferredFrom"]}
    assert inferred in res["message"]["text"] and "fixes" not in res
    # --fix leaves the values as they are and says why
    fixed = runner.invoke(app, ["check", "--fix", "--vetted", str(VETTED_JSON)])
    assert (tmp_path / "c/values.yaml").read_text() == "image:\n  repository: bitnami/redis\n  tag: \"\"\n"
    assert "not fixed c/values.yaml:2:15  bitnami/redis: its tag comes from Chart.yaml appVersion" in fixed.stdout


def test_a_sha_key_is_fixed_as_the_template_writes_it(tmp_path: Path) -> None:
    from imagevet.check import VettedImage, read_vetted

    vetted: list[VettedImage] = read_vetted(VETTED_JSON)
    ctx = CheckContext("acme", AccessSettings("acme", enabled=True), vetted)
    text = "image:\n  registry: docker.io\n  repository: bitnami/redis\n  tag: \"7.2\"\n  sha: \"\"\n"
    _write(tmp_path, {
        "c/Chart.yaml": "apiVersion: v2\nname: c\nversion: 1.0.0\nappVersion: 7.2\n",
        "c/templates/d.yaml": 'image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}@sha256:{{ .Values.image.sha }}"\n',
        "c/values.yaml": text,
    })
    report = check_paths([tmp_path], ctx, root=tmp_path)
    (v,) = report.issues()
    assert v.rule is not None and v.rule.id == "IV001" and v.fixable
    plan = plan_fixes(report.issues(), {f.path: (f.file, f.text) for f in report.files})
    digest = str(vetted[0].tags["7.2"])
    assert plan.files[0].fixed == (
        f"image:\n  registry: docker.io\n  repository: acme/redis\n  tag: \"7.2\"\n  sha: \"{digest[7:]}\"\n"
    )
    assert to_sarif(report)["runs"][0]["results"][0]["fixes"][0]["artifactChanges"][0]["replacements"][-1][
        "insertedContent"] == {"text": digest[7:]}


def test_a_map_with_no_templates_beside_it_keeps_the_plain_app_version() -> None:
    (f,) = find_in_helm_values("image:\n  repository: bitnami/redis\n", "values.yaml", app_version="7.4")
    assert f.kind is FindingKind.REFERENCE and f.value == "bitnami/redis:7.4"
    assert f.inferred == ("values.yaml image (repository) and Chart.yaml appVersion 7.4 "
                          "(as `.tag | default .Chart.AppVersion` would)")


def test_a_subcharts_template_defaults_its_values_under_its_name_with_its_own_app_version(
    tmp_path: Path, ctx: CheckContext
) -> None:
    root = _write(tmp_path, {
        "p/Chart.yaml": "apiVersion: v2\nname: p\nversion: 1.0.0\nappVersion: 9.9.9\n",
        "p/templates/x.yaml": "kind: ConfigMap\n",
        "p/charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 1.0.0\nappVersion: 3.0.1\n",
        "p/charts/sub/templates/d.yaml":
            'image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default (printf "v%s" .Chart.AppVersion) }}"\n',
        "p/values.yaml": "sub:\n  image:\n    repository: acme/sub\n",
    })
    report = check_paths([root / "p" / "values.yaml"], ctx, root=root)
    (v,) = report.verdicts
    assert v.found.value == "acme/sub:v3.0.1"
    assert v.found.inferred == ("values.yaml sub.image (repository) and Chart.yaml appVersion 3.0.1, "
                                "v-prefixed as charts/sub/templates/d.yaml:1 builds it")
