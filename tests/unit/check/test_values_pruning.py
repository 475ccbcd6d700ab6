"""Helm values are composed without the blocks that cannot hold an image (a speed-up): what is
found, and where, is exactly what composing the whole file finds."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagevet.check import helm
from imagevet.check.helm import find_in_helm_values
from imagevet.check.model import FoundImage
from imagevet.check.text import LineIndex
from imagevet.check.yamlnodes import load_documents, load_pruned
from tests.unit.check.conftest import FIXTURES

TRICKY = [
    # nested maps below an image key whose lines never say "image"
    "crds:\n  upgradeJob:\n    image:\n      busybox:\n        registry: docker.io\n        repository: busybox\n"
    "        tag: '1.36'\n    other:\n      x: 1\n",
    # indentless sequences, comments, blank lines, CRLF
    "# top\r\nworkers:\r\n- name: a\r\n  image: bitnami/redis:7.2\r\n\r\n- name: b\r\n  env:\r\n  - X\r\n"
    "other:\r\n  # image: not this\r\n  k: v\r\n",
    # an anchor in a dropped block aliased in a kept one: composed whole instead
    "defaults: &d\n  repository: bitnami/redis\n  tag: '7.2'\nimage: *d\n",
    "base: &b\n  tag: '7.2'\nimage:\n  <<: *b\n  repository: bitnami/redis\n",
    # block scalars holding key-like lines, quoted keys, flow maps
    "script: |\n  foo:\n    bar\n'quoted key':\n  image: alpine:3.20\nflow: {a: 1,\n  b: 2}\n"
    "sidecar: {image: busybox:1.36}\n",
    # global registry far from the map
    "global:\n  imageRegistry: mirror.example.com\nnoise:\n  a:\n    b: c\nimage:\n  repository: x/y\n  tag: '1'\n",
    # no final newline, deep keys
    "a:\n  b:\n    c:\n      d:\n        image: alpine:3.20",
]


def _rows(found: list[FoundImage]) -> list[tuple[object, ...]]:
    return [(str(f.kind), f.location, f.value, f.context, f.fix, f.inferred, f.detail) for f in found]


def _values_files() -> list[Path]:
    return sorted(FIXTURES.rglob("values*.yaml"))


@pytest.mark.parametrize("text", TRICKY)
def test_pruned_finds_what_the_whole_file_finds(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pruned = find_in_helm_values(text, "values.yaml", app_version="1.0")
    monkeypatch.setattr(helm, "load_pruned", lambda t, i, s, keep: load_documents(t, i, s))
    assert _rows(pruned) == _rows(find_in_helm_values(text, "values.yaml", app_version="1.0"))


@pytest.mark.parametrize("path", _values_files(), ids=lambda p: p.relative_to(FIXTURES).as_posix())
def test_pruned_real_values_match(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text()
    pruned = find_in_helm_values(text, "values.yaml", app_version="1.0")
    monkeypatch.setattr(helm, "load_pruned", lambda t, i, s, keep: load_documents(t, i, s))
    assert _rows(pruned) == _rows(find_in_helm_values(text, "values.yaml", app_version="1.0"))


def test_the_big_values_file_is_mostly_not_composed() -> None:
    """kube-prometheus-stack's 5,981-line values.yaml: only the blocks that mention images."""
    import re

    from imagevet.check.model import SourceKind

    text = (FIXTURES / "corpus/prometheus-community/kube-prometheus-stack/values.yaml").read_text()
    index = LineIndex("values.yaml", text)
    whole = load_documents(text, index, SourceKind.HELM_VALUES)
    pruned = load_pruned(text, index, SourceKind.HELM_VALUES, keep=re.compile("image", re.I))

    def count(nodes: tuple[object, ...]) -> int:
        todo, n = list(nodes), 0
        while todo:
            node = todo.pop()
            n += 1
            value = getattr(node, "value", None)
            if isinstance(value, list):
                for item in value:
                    todo.extend(item if isinstance(item, tuple) else (item,))
        return n

    assert count(pruned.nodes) * 3 < count(whole.nodes)


def test_a_syntax_error_in_a_block_without_images_goes_unreported() -> None:
    """As for CRDs: a block that mentions no image is not composed, so its syntax is not checked
    (it cannot hide a reference); one in a block that does is reported."""
    text = "unrelated:\n  a: [1, 2\nimage: alpine:3.20\n"
    assert [(str(f.kind), f.value) for f in find_in_helm_values(text, "values.yaml")] == [
        ("reference", "alpine:3.20")]
    text = "image:\n  repository: [x\n  tag: '1'\n"
    assert [str(f.kind) for f in find_in_helm_values(text, "values.yaml")] == ["parse-error"]
