"""Helm charts as chart repositories lay them out: templates in subfolders of ``templates/``,
``_helpers.tpl``, nested subcharts under ``charts/``, Go template control flow around literal images.

Templates are never parsed as YAML (no parse error for ``{{- if }}``); literal images in them are
found at their exact place; templated ``image:`` lines that cannot be resolved become one note per
chart, which never fails the check.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from typer.testing import CliRunner

from imagevet.category import AccessSettings
from imagevet.check import CheckContext, SourceKind, check_paths, kind_by_name, scan_paths
from imagevet.check.discover import in_chart_templates
from imagevet.cli import app

runner = CliRunner()

CHART = {
    "mychart/Chart.yaml": "apiVersion: v2\nname: mychart\nversion: 0.1.0\nappVersion: \"1.0\"\n",
    "mychart/values.yaml": (
        "image:\n"
        "  repository: acme/app\n"
        "  tag: \"2.0\"\n"
        "x: {}\n"
    ),
    "mychart/templates/_helpers.tpl": (
        "{{- define \"mychart.fullname\" -}}\n"
        "{{- .Release.Name | trunc 63 }}\n"
        "{{- end }}\n"
        "{{- define \"mychart.image\" -}}\n"
        "image: {{ .Values.image.repository }}:{{ .Values.image.tag }}\n"
        "{{- end }}\n"
    ),
    "mychart/templates/deployment.yaml": (
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "spec:\n"
        "  template:\n"
        "    spec:\n"
        "      containers:\n"
        "        - name: app\n"
        "          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n"
    ),
    "mychart/templates/tests/test-connection.yaml": (
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata:\n"
        "  name: \"{{ include \"mychart.fullname\" . }}-test-connection\"\n"
        "  annotations:\n"
        "    \"helm.sh/hook\": test\n"
        "spec:\n"
        "  {{- if .Values.x }}\n"
        "  nodeSelector: {{ toYaml .Values.x | nindent 4 }}\n"
        "  {{- end }}\n"
        "  containers:\n"
        "    - name: wget\n"
        "      image: busybox:1.36\n"
        "      command: ['wget']\n"
        "      args: ['{{ include \"mychart.fullname\" . }}:80']\n"
        "  restartPolicy: Never\n"
    ),
    "mychart/templates/sub/dir/deploy.yaml": (
        "{{- range $name, $c := .Values.workers }}\n"
        "---\n"
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "metadata:\n"
        "  name: {{ $name }}\n"
        "spec:\n"
        "  template:\n"
        "    spec:\n"
        "      containers:\n"
        "        - name: main\n"
        "          {{- include \"mychart.image\" $ | nindent 10 }}\n"
        "        - name: proxy\n"
        "          image: \"nginx:1.27\"\n"
        "{{- end }}\n"
    ),
    "mychart/charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.2.0\n",
    "mychart/charts/sub/templates/tests/pod.yaml": (
        "apiVersion: v1\n"
        "kind: Pod\n"
        "spec:\n"
        "  {{- with .Values.tolerations }}\n"
        "  tolerations: {{ toYaml . | nindent 4 }}\n"
        "  {{- end }}\n"
        "  containers:\n"
        "    - image: alpine:3.20\n"
        "    - image: {{ .Values.image }}\n"
    ),
}


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def chart_repo(tmp_path: Path) -> Path:
    return _write(tmp_path / "repo", CHART)


@pytest.fixture
def ctx() -> CheckContext:
    return CheckContext("acme", AccessSettings("acme", enabled=True))


def test_every_file_under_templates_is_a_template(chart_repo: Path) -> None:
    scan = scan_paths([chart_repo], root=chart_repo)
    kinds = {f.path: f.kind for f in scan.files}
    assert kinds == {
        "mychart/charts/sub/templates/tests/pod.yaml": SourceKind.HELM_TEMPLATE,
        "mychart/templates/_helpers.tpl": SourceKind.HELM_TEMPLATE,
        "mychart/templates/deployment.yaml": SourceKind.HELM_TEMPLATE,
        "mychart/templates/sub/dir/deploy.yaml": SourceKind.HELM_TEMPLATE,
        "mychart/templates/tests/test-connection.yaml": SourceKind.HELM_TEMPLATE,
        "mychart/values.yaml": SourceKind.HELM_VALUES,
    }


def test_literal_images_found_exactly_and_no_parse_error(chart_repo: Path, ctx: CheckContext) -> None:
    report = check_paths([chart_repo], ctx, root=chart_repo)
    got = [
        (v.found.value, v.found.path, v.found.location.line, v.found.location.column,
         v.found.location.end_column, v.rule.id if v.rule else "ok")
        for v in report.verdicts
    ]
    assert got == [
        ("alpine:3.20", "mychart/charts/sub/templates/tests/pod.yaml", 8, 14, 25, "ok"),
        ("nginx:1.27", "mychart/templates/sub/dir/deploy.yaml", 14, 19, 29, "ok"),
        ("busybox:1.36", "mychart/templates/tests/test-connection.yaml", 13, 14, 26, "ok"),
        ("acme/app:2.0", "mychart/values.yaml", 2, 15, 23, "ok"),
    ]
    for v in report.verdicts:
        text = (chart_repo / v.found.path).read_text()
        assert text[v.found.location.span.start : v.found.location.span.end] == v.found.text


def test_unresolved_templated_images_are_one_note_per_chart(chart_repo: Path, ctx: CheckContext) -> None:
    report = check_paths([chart_repo], ctx, root=chart_repo)
    assert report.notes == (
        "chart mychart: 2 templated image references not resolved without rendering "
        "(templates/_helpers.tpl:5, templates/deployment.yaml:8); check `helm template` output",
        "chart mychart/charts/sub: 1 templated image reference not resolved without rendering "
        "(templates/tests/pod.yaml:9); check `helm template` output",
    )
    assert not report.failed()
    assert report.summary() == {
        "files": 6, "references": 4, "ok": 4, "error": 0, "warning": 0, "note": 0,
        "fixable": 0, "suppressed": 0,
    }


def test_a_chart_repository_with_nothing_blocked_exits_0(
    chart_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("IMAGEVET_HUB_URL", "DOCKER_HUB_USERNAME", "DOCKER_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(chart_repo)
    result = runner.invoke(app, ["check", "--org", "acme"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "note: chart mychart: 2 templated image references not resolved without rendering " \
        "(templates/_helpers.tpl:5, templates/deployment.yaml:8); check `helm template` output" in lines
    assert lines[-1] == "4 references in 6 files: 4 ok, 0 errors, 0 warnings, 0 notes; 0 fixable with --fix"


def test_templated_image_outside_a_chart_still_warns(tmp_path: Path, ctx: CheckContext) -> None:
    """Only chart templates fold into the note: a plain manifest with a template is still a warning."""
    root = _write(tmp_path, {"k8s/pod.yaml": "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n"
                             "    - image: \"{{ .Values.image }}\"\n"})
    report = check_paths([root], ctx, root=root)
    assert [v.rule.id if v.rule else "ok" for v in report.verdicts] == ["IV030"]
    assert report.failed()


def test_parse_errors_are_not_counted_as_references(tmp_path: Path, ctx: CheckContext) -> None:
    root = _write(tmp_path, {"compose.yaml": "services:\n  a:\n    image: [\n", "Dockerfile": "FROM alpine:3.20\n"})
    report = check_paths([root], ctx, root=root)
    assert [v.rule.id if v.rule else "ok" for v in report.verdicts] == ["ok", "IV032"]
    assert report.summary()["references"] == 1
    assert report.summary()["error"] == 1


def test_a_chart_scanned_from_inside_its_templates(chart_repo: Path, ctx: CheckContext) -> None:
    """Naming a template file (or the chart itself) still reads it as a template."""
    chart = chart_repo / "mychart"
    report = check_paths([chart / "templates" / "tests" / "test-connection.yaml"], ctx, root=chart)
    assert [(v.found.path, v.found.location.line, v.rule) for v in report.verdicts] == [
        ("templates/tests/test-connection.yaml", 13, None)
    ]
    report = check_paths([chart], ctx, root=chart)
    assert "chart .: 2 templated image references not resolved without rendering " \
        "(templates/_helpers.tpl:5, templates/deployment.yaml:8); check `helm template` output" in report.notes


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("c/templates/_helpers.tpl", SourceKind.HELM_TEMPLATE),
        ("c/templates/tests/values.yaml", SourceKind.HELM_TEMPLATE),  # a template, whatever its name
        ("c/templates/NOTES.txt", None),
    ],
)
def test_kind_of_a_file_under_templates(path: str, kind: SourceKind | None) -> None:
    assert kind_by_name(PurePosixPath(path), chart_dir=True) is kind


def test_templates_without_a_chart_are_not_templates(tmp_path: Path) -> None:
    root = _write(tmp_path, {"site/templates/sub/page.yaml": "image: alpine:3.20\n",
                             "site/templates/_x.tpl": "image: alpine:3.20\n"})
    assert not in_chart_templates(root / "site/templates/sub/page.yaml")
    assert [f.path for f in scan_paths([root], root=root).files] == []


def test_a_scan_started_inside_templates_still_gives_a_note(chart_repo: Path, ctx: CheckContext) -> None:
    tests = chart_repo / "mychart" / "templates"
    report = check_paths([tests], ctx, root=tests)
    assert [v.found.path for v in report.verdicts] == ["sub/dir/deploy.yaml", "tests/test-connection.yaml"]
    assert report.notes == (
        "chart ..: 2 templated image references not resolved without rendering "
        "(_helpers.tpl:5, deployment.yaml:8); check `helm template` output",
    )
    assert not report.failed()
