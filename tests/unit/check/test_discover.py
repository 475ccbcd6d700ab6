"""File discovery: names, content sniffing, skipped folders, excludes, explicit files."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from imagevet.check import SourceKind, discover, kind_by_name, scan_paths, sniff_yaml


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("Dockerfile", SourceKind.DOCKERFILE),
        ("dockerfile", SourceKind.DOCKERFILE),
        ("svc/Dockerfile.prod", SourceKind.DOCKERFILE),
        ("svc/api.Dockerfile", SourceKind.DOCKERFILE),
        ("Containerfile", SourceKind.DOCKERFILE),
        ("Dockerfile.md", None),
        ("compose.yaml", SourceKind.COMPOSE),
        ("compose.prod.yml", SourceKind.COMPOSE),
        ("docker-compose.yml", SourceKind.COMPOSE),
        ("docker-compose-ci.yaml", SourceKind.COMPOSE),
        (".github/workflows/ci.yaml", SourceKind.WORKFLOW),
        ("charts/x/values.yaml", SourceKind.HELM_VALUES),
        ("values-prod.yml", SourceKind.HELM_VALUES),
        ("deploy/app.yaml", None),
        ("README.md", None),
        (".github/dependabot.yml", None),
    ],
)
def test_kind_by_name(path: str, kind: SourceKind | None) -> None:
    assert kind_by_name(PurePosixPath(path)) is kind


def test_templates_need_a_chart() -> None:
    assert kind_by_name(PurePosixPath("c/templates/d.yaml"), chart_dir=True) is SourceKind.HELM_TEMPLATE
    assert kind_by_name(PurePosixPath("c/templates/d.yaml")) is None


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("apiVersion: v1\nkind: Pod\n", SourceKind.KUBERNETES),
        ("# c\n---\napiVersion: apps/v1\nkind: Deployment\n", SourceKind.KUBERNETES),
        ("services:\n  a: {image: x}\n", SourceKind.COMPOSE),
        ("services: # comment\n", SourceKind.COMPOSE),
        ("  apiVersion: v1\n  kind: Pod\n", None),
        ("apiVersion: v2\nname: chart\n", None),
        ("site_name: docs\n", None),
    ],
)
def test_sniff_yaml(text: str, kind: SourceKind | None) -> None:
    assert sniff_yaml(text) is kind


def _write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_walk_skips_vendored_trees_and_excludes(tmp_path: Path) -> None:
    _write(tmp_path, {
        "Dockerfile": b"FROM a\n",
        "node_modules/x/Dockerfile": b"FROM b\n",
        ".git/Dockerfile": b"FROM c\n",
        "vendor/y/compose.yaml": b"services: {}\n",
        "legacy/Dockerfile": b"FROM d\n",
        "svc/Dockerfile.old": b"FROM e\n",
        "svc/Dockerfile": b"FROM f\n",
    })
    found = [c.path for c in discover([tmp_path], root=tmp_path, exclude=["legacy", "*.old"])]
    assert found == ["Dockerfile", "svc/Dockerfile"]


def test_explicit_files_and_paths_outside_the_root(tmp_path: Path) -> None:
    _write(tmp_path, {"repo/k8s.yaml": b"kind: Pod\n", "repo/notes.txt": b"x", "other/Dockerfile": b"FROM a\n"})
    root = tmp_path / "repo"
    found = [(c.path, c.kind) for c in discover(
        [root / "k8s.yaml", root / "notes.txt", tmp_path / "other" / "Dockerfile", root / "k8s.yaml"], root=root)]
    assert found == [
        ("k8s.yaml", None),  # decided by its content
        ((tmp_path / "other" / "Dockerfile").as_posix(), SourceKind.DOCKERFILE),
    ]


def test_unreadable_and_non_utf8_files_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, {"Dockerfile": b"FROM \xff\xfe\n", "compose.yaml": b"services:\n  a: {image: x:1}\n"})
    scan = scan_paths([tmp_path], root=tmp_path)
    assert [(f.path, str(f.kind), f.detail) for f in scan.found] == [
        ("Dockerfile", "parse-error", "not UTF-8 text (invalid start byte)"),
        ("compose.yaml", "reference", ""),
    ]
