"""Files that cannot hold a workload cost next to nothing: a CustomResourceDefinition (or any kind
but a workload's) is read by a line scan, not composed; every workload document still is, with
exact positions, and any document the line scan cannot read for certain is composed as before."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from imagevet.check import kubernetes, scan_paths, yamlnodes
from imagevet.check.kubernetes import find_in_kubernetes
from imagevet.check.model import FindingKind
from tests.unit.check.crds import crd_file, crd_yaml

DEPLOYMENT = """---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: bitnami/redis:7.2
"""
CONFIGMAP = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  pod.yaml: |
    kind: Pod
    spec:
      containers: [{name: x, image: not/this:1}]
"""


@pytest.fixture
def composed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text handed to the YAML composer."""
    texts: list[str] = []
    real = yamlnodes.bounded_yaml

    def counting(typ: str, *, pure: bool = False) -> Any:
        yaml = real(typ, pure=pure)
        compose_all = yaml.compose_all

        def record(stream: Any) -> Any:
            texts.append(stream)
            return compose_all(stream)

        yaml.compose_all = record  # type: ignore[method-assign]
        return yaml

    monkeypatch.setattr(yamlnodes, "bounded_yaml", counting)
    return texts


def _crd_tree(root: Path) -> int:
    (root / "crds").mkdir(parents=True)
    for i in range(11):
        (root / "crds" / f"crd{i}.yaml").write_text(crd_file(i, documents=1 + i % 3))
    return sum(p.stat().st_size for p in (root / "crds").iterdir())


def test_a_crd_heavy_tree_is_not_composed_and_finds_nothing(tmp_path: Path, composed: list[str]) -> None:
    size = _crd_tree(tmp_path)
    assert size > 5_000_000
    started = time.perf_counter()
    result = scan_paths([tmp_path], root=tmp_path)
    elapsed = time.perf_counter() - started
    assert len(result.files) == 11  # read and recognised as Kubernetes YAML
    assert result.found == ()  # "image: foo" in descriptions and schemas is no reference
    assert composed == []  # not one CRD went through the composer
    assert elapsed < 1.5, f"{size} bytes of CRDs took {elapsed:.2f} s"  # ~0.06 s; 8.5 s composed


def test_a_workload_beside_crds_in_one_file_is_found_at_its_exact_place(
    tmp_path: Path, composed: list[str]
) -> None:
    text = crd_yaml(1, 200_000) + CONFIGMAP + DEPLOYMENT.replace("\n", "\r\n") + crd_yaml(2, 50_000)
    found = find_in_kubernetes(text, "mixed.yaml")
    assert [(f.kind, f.value) for f in found] == [(FindingKind.REFERENCE, "bitnami/redis:7.2")]
    line = text[: text.index("bitnami/redis")].count("\n") + 1
    assert (found[0].location.line, found[0].location.column) == (line, 18)
    span = found[0].location.span
    assert text[span.start : span.end] == "bitnami/redis:7.2" and found[0].fix is not None
    assert composed == [DEPLOYMENT.replace("\n", "\r\n")]  # the CRDs and the ConfigMap were not


def test_a_syntax_error_in_a_workload_after_a_crd_is_reported_at_its_line(composed: list[str]) -> None:
    broken = DEPLOYMENT.replace("          image: bitnami/redis:7.2", "          image: [bitnami/redis:7.2")
    text = crd_yaml(1, 20_000) + broken
    found = find_in_kubernetes(text, "broken.yaml")
    assert [f.kind for f in found] == [FindingKind.PARSE_ERROR]
    assert found[0].location.line > text[: text.index("kind: Deployment")].count("\n") + 1


TRICKY = {
    "indented root": "---\n  apiVersion: v1\n  kind: Pod\n  spec:\n    containers: [{name: a, image: x/y:1}]\n",
    "flow root": "---\n{apiVersion: v1, kind: Pod, spec: {containers: [{name: a, image: x/y:1}]}}\n",
    "quoted key": '---\n"kind": Pod\nspec:\n  containers: [{name: a, image: x/y:1}]\n',
    "complex key": "---\n? kind\n: Pod\nspec:\n  containers: [{name: a, image: x/y:1}]\n",
    "merge key": "---\n<<: {kind: Pod}\nspec:\n  containers: [{name: a, image: x/y:1}]\n",
    "value on next line": "---\nkind:\n  Pod\nspec:\n  containers: [{name: a, image: x/y:1}]\n",
    "tagged value": "---\nkind: !!str Pod\nspec:\n  containers: [{name: a, image: x/y:1}]\n",
    "anchored value": "---\nkind: &k Pod\nspec:\n  containers: [{name: a, image: x/y:1}]\n",
    "tag on marker": "--- !!map\nkind: Pod\nspec:\n  containers: [{name: a, image: x/y:1}]\n",
    "comment and quotes": "---\n# c\nkind: \"Pod\"   # a pod\nspec:\n  containers: [{name: a, image: x/y:1}]\n",
    "continued plain kind": (
        "---\nkind: Config\n  List\nitems:\n- kind: Pod\n  spec:\n    containers: [{name: a, image: x/y:1}]\n"
    ),
    "list at column 0": (
        "---\nkind: List\nitems:\n- kind: Pod\n  spec:\n    containers: [{name: a, image: x/y:1}]\n"
    ),
    "bare CR breaks": "---\rkind: Pod\rspec:\r  containers: [{name: a, image: x/y:1}]\r",
    "unicode line separators": "---\u2028kind: Pod\u2028spec:\u2028  containers: [{name: a, image: x/y:1}]\n",
    "duplicate kind": "---\nkind: ConfigMap\nkind: Pod\nspec:\n  containers: [{name: a, image: x/y:1}]\n",
    "directive": "%YAML 1.1\n---\nkind: Pod\nspec:\n  containers: [{name: a, image: x/y:1}]\n",
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_documents_the_line_scan_cannot_be_sure_of_find_what_composing_finds(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = crd_yaml(7, 5_000) + TRICKY[name] + crd_yaml(8, 5_000)
    fast = find_in_kubernetes(text, "t.yaml")
    monkeypatch.setattr(kubernetes, "workload_parts", lambda text: None)  # compose everything
    slow = find_in_kubernetes(text, "t.yaml")
    assert fast == slow
    kinds = [(f.kind, f.value) for f in slow]
    if name == "duplicate kind":  # ruamel keeps the first kind (ConfigMap): nothing to find
        assert kinds == []
    elif name == "unicode line separators":  # ruamel refuses it: a parse error either way
        assert [k for k, _ in kinds] == [FindingKind.PARSE_ERROR]
    else:
        assert kinds == [(FindingKind.REFERENCE, "x/y:1")]
