"""Kustomize ``images:`` entries: the effective image is a reference, judged like any other, and
``--fix`` rewrites the entry (``newName``/``newTag``/``digest``) to the vetted mirror pinned by
digest, adding missing keys as the entry writes its keys and keeping everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagevet.check import CheckContext, SourceKind, check_paths, find_in_kustomization, plan_fixes
from imagevet.check.discover import kind_by_name
from tests.unit.check.dry_run import assert_patch_applies

REDIS_72 = "sha256:09760665f0af12dc6887689c1fa1afe346138a545ce1efbe277acf07bc92780a"
SHA = "sha256:" + "ab" * 32

TEXT = f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
images:
  # the cache
  - name: redis
    newName: bitnami/redis   # from bitnami
    newTag: "7.2"
  - name: postgres
    newName: bitnami/postgresql
    digest: {SHA}
  - name: app
    newTag: 1.2.3
  - name: kubectl
    newName: bitnami/kubectl
  - {{name: web, newName: bitnami/redis, newTag: '7.2'}}
  - name: bad
    digest: sha256:25a0d4
"""


@pytest.mark.parametrize("name", ["kustomization.yaml", "kustomization.yml", "Kustomization", "a/b/kustomization.yaml"])
def test_kustomization_names(name: str) -> None:
    from pathlib import PurePosixPath

    assert kind_by_name(PurePosixPath(name)) is SourceKind.KUSTOMIZE


def test_each_entry_is_the_effective_image() -> None:
    found = find_in_kustomization(TEXT, "kustomization.yaml")
    rows = [(f.location.line, f.location.column, str(f.kind), f.value, f.context) for f in found]
    assert rows == [
        (8, 14, "reference", "bitnami/redis:7.2", "images[0] (name redis)"),
        (11, 14, "reference", f"bitnami/postgresql@{SHA}", "images[1] (name postgres)"),
        (13, 11, "reference", "app:1.2.3", "images[2] (name app)"),
        (16, 14, "unresolved", "bitnami/kubectl", "images[3] (name kubectl)"),
        (17, 26, "reference", "bitnami/redis:7.2", "images[4] (name web)"),
        (18, 11, "invalid-reference", "bad@sha256:25a0d4", "images[5] (name bad)"),
    ]
    assert "each resource's own tag of kubectl is kept" in found[3].detail


def test_fix_rewrites_the_entries_keeping_comments(tmp_path: Path, context: CheckContext) -> None:
    (tmp_path / "kustomization.yaml").write_text(TEXT)
    report = check_paths([tmp_path], context, root=tmp_path)
    assert [(v.found.location.line, v.rule.id if v.rule else "ok") for v in report.verdicts] == [
        (8, "IV001"), (11, "IV003"), (13, "ok"), (16, "IV030"), (17, "IV001"), (18, "IV031"),
    ]
    plan = plan_fixes(report.issues(), {f.path: (f.file, f.text) for f in report.files})
    (fixed,) = plan.files
    assert fixed.fixed == TEXT.replace(
        '    newName: bitnami/redis   # from bitnami\n    newTag: "7.2"\n',
        f'    newName: docker.io/acme/redis   # from bitnami\n    newTag: "7.2"\n    digest: {REDIS_72}\n',
    ).replace(
        "  - {name: web, newName: bitnami/redis, newTag: '7.2'}",
        f"  - {{name: web, newName: docker.io/acme/redis, newTag: '7.2', digest: {REDIS_72}}}",
    )
    assert_patch_applies(tmp_path, plan.diff())
    # the rewritten entries are the vetted mirror, pinned: nothing left to fix there
    (tmp_path / "kustomization.yaml").write_text(fixed.fixed)
    again = check_paths([tmp_path], context, root=tmp_path)
    assert [(v.found.location.line, v.rule.id if v.rule else "ok") for v in again.verdicts][0] == (8, "ok")
    assert [v.found.value for v in again.verdicts][4] == f"docker.io/acme/redis:7.2@{REDIS_72}"


def test_a_missing_new_name_is_added_and_crlf_kept(tmp_path: Path, context: CheckContext) -> None:
    text = "images:\r\n- name: bitnami/redis\r\n  newTag: '7.2'\r\n"
    (tmp_path / "Kustomization").write_text(text, newline="")
    report = check_paths([tmp_path], context, root=tmp_path)
    plan = plan_fixes(report.issues(), {f.path: (f.file, f.text) for f in report.files})
    assert plan.files[0].fixed == (
        "images:\r\n- name: bitnami/redis\r\n  newTag: '7.2'\r\n"
        f"  newName: docker.io/acme/redis\r\n  digest: {REDIS_72}\r\n"
    )
    assert_patch_applies(tmp_path, plan.diff())
