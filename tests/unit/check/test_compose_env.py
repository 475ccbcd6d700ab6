"""Compose variable interpolation from the ``.env`` file beside the compose file and the defaults
written in the value, never from the process environment; interpolated references are marked as
inferred and not rewritten by ``--fix``; a required variable nothing sets is a note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagevet.check import CheckContext, check_paths, plan_fixes
from imagevet.check.compose import parse_dotenv
from imagevet.cli import app
from tests.unit.check.conftest import VETTED_JSON

runner = CliRunner()

COMPOSE = """\
services:
  a:
    image: bitnami/redis:${TAG}
  b:
    image: ${REGISTRY:-docker.io}/bitnami/redis:${MISSING:-7.4}
  c:
    image: "bitnami/redis:${EMPTY-7.2}"
  d:
    image: bitnami/kubectl:$KUBECTL
  e:
    image: bitnami/redis:${NEEDED:?set NEEDED in .env}
  f:
    image: bitnami/redis:7.2
  g:
    image: bitnami/redis:$$TAG
"""

DOTENV = """\
# versions
TAG=7.2
export KUBECTL='1.30'   # single-quoted: literal
EMPTY=
QUOTED="a\\tb # not a comment"
BASED=${TAG}-x
"""


def test_parse_dotenv() -> None:
    assert parse_dotenv(DOTENV) == {
        "TAG": "7.2", "KUBECTL": "1.30", "EMPTY": "", "QUOTED": "a\tb # not a comment", "BASED": "7.2-x",
    }


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / ".env").write_text(DOTENV)
    # the process environment is never read: these would change every result if it were
    for name, value in (("TAG", "6.0"), ("NEEDED", "6.0"), ("REGISTRY", "evil.example"), ("MISSING", "1")):
        monkeypatch.setenv(name, value)
    for name in ("IMAGEVET_HUB_URL", "DOCKER_HUB_USERNAME", "DOCKER_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_interpolated_references(project: Path, context: CheckContext) -> None:
    report = check_paths([project], context, root=project)
    rows = [(v.found.location.line, v.found.value, v.rule.id if v.rule else "ok", v.found.inferred, v.fixable)
            for v in report.verdicts]
    assert rows == [
        (3, "bitnami/redis:7.2", "IV001", "interpolation of TAG from .env", False),
        (5, "docker.io/bitnami/redis:7.4", "IV001",
         "interpolation of REGISTRY (unset, its default), MISSING (unset, its default)", False),
        (7, "bitnami/redis:", "IV031", "", False),  # EMPTY is set (to ""): ${EMPTY-7.2} keeps it
        (9, "bitnami/kubectl:1.30", "IV001", "interpolation of KUBECTL from .env", False),
        (13, "bitnami/redis:7.2", "IV001", "", True),
        (15, "bitnami/redis:$TAG", "IV031", "", False),
    ]
    assert report.notes[-1] == (
        "compose.yaml:11:12: bitnami/redis:${NEEDED:?set NEEDED in .env} not judged: requires NEEDED "
        "(${NEEDED:?...}), set neither in .env nor by a default; not guessed"
    )
    plan = plan_fixes(report.issues(), {f.path: (f.file, f.text) for f in report.files})
    assert [e.line for e in plan.edits] == [13]
    assert [(v.found.location.line, why) for v, why in plan.skipped] == [
        (3, "the reference is interpolated (interpolation of TAG from .env); rewriting it would drop "
            "the variables: edit the value or .env by hand"),
        (5, "the reference is interpolated (interpolation of REGISTRY (unset, its default), MISSING "
            "(unset, its default)); rewriting it would drop the variables: edit the value or .env by hand"),
        (9, "the reference is interpolated (interpolation of KUBECTL from .env); rewriting it would "
            "drop the variables: edit the value or .env by hand"),
    ]


def test_without_dotenv_variables_are_unresolved(project: Path, context: CheckContext) -> None:
    (project / ".env").unlink()
    report = check_paths([project], context, root=project)
    assert [(v.found.location.line, v.rule.id if v.rule else "ok") for v in report.verdicts][:2] == [
        (3, "IV030"), (5, "IV001"),
    ]


def test_cli_shows_and_marks_interpolation(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    human = runner.invoke(app, ["check", "--vetted", str(VETTED_JSON)])
    assert ("compose.yaml:3:12  IV001  bitnami/redis:7.2: Community image (unverified); use the vetted "
            "mirror (inferred from interpolation of TAG from .env)  use docker.io/acme/redis:7.2@") in human.stdout
    assert "(not auto-fixable: the reference is interpolated" in human.stdout
    data = json.loads(runner.invoke(app, ["check", "--json", "--vetted", str(VETTED_JSON)]).stdout)
    first = data["results"][0]
    assert (first["line"], first["text"], first["reference"], first["inferred"], first["inferredFrom"]) == (
        3, "bitnami/redis:${TAG}", "docker.io/bitnami/redis:7.2", True, "interpolation of TAG from .env")
    dry = runner.invoke(app, ["check", "--fix", "--dry-run", "--vetted", str(VETTED_JSON)])
    assert dry.stdout.count("\n-    image:") == 1 and "-    image: bitnami/redis:7.2\n" in dry.stdout
    assert "not fixed compose.yaml:3:12  bitnami/redis:${TAG}: the reference is interpolated" in dry.stdout
