"""``imagevet check`` end to end through the CLI: formats, exit codes, --fix, usage errors, the Hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest
from typer.testing import CliRunner

from imagevet.cli import app
from tests.support.fake_hub import FakeHub, fake_hub  # noqa: F401  (fixture)
from tests.unit.check.conftest import FIXTURES, VETTED_JSON

runner = CliRunner()
VETTED = ["--vetted", str(VETTED_JSON)]


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IMAGEVET_HUB_URL", "DOCKER_HUB_USERNAME", "DOCKER_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def in_repo(repo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo_copy)
    return repo_copy


def _tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_human_output(in_repo: Path) -> None:
    result = runner.invoke(app, ["check", *VETTED])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        ".github/workflows/ci.yml:6:16  IV004  bitnami/python:3.12: Community image (unverified) with no "
        "vetted mirror, blocked by Image Access Management  request vetting of bitnami/python (add it to "
        "the imagevet policy); its category was not looked up on Docker Hub"
    )
    assert (
        "compose.yaml:3:11  IV001  bitnami/redis:7.2: Community image (unverified); use the vetted mirror  "
        "use docker.io/acme/redis:7.2@sha256:09760665f0af12dc6887689c1fa1afe346138a545ce1efbe277acf07bc92780a (--fix)"
    ) in lines
    assert lines[-3].startswith("note: offline (no Docker Hub settings")
    assert lines[-2] == (  # the chart's templated image line is one note, not a warning (issue 12)
        "note: chart charts/cache: 1 templated image reference not resolved without rendering "
        "(templates/deployment.yaml:10); check `helm template` output"
    )
    assert lines[-1] == (  # the parse error of broken/docker-compose.yml is not a reference
        "42 references in 8 files: 10 ok, 25 errors, 5 warnings, 3 notes; 12 fixable with --fix"
    )
    assert len(lines) == 33 + 3


def test_show_ok_lists_every_reference(in_repo: Path) -> None:
    result = runner.invoke(app, ["check", "--show-ok", *VETTED])
    assert "services/worker/Containerfile:9:6  ok     acme/worker-base:2.1: Organization image" in result.stdout
    assert len(result.stdout.splitlines()) == 43 + 3  # verdicts, two notes, the summary


def test_json(in_repo: Path) -> None:
    result = runner.invoke(app, ["check", "--json", "--severity", "warning", *VETTED])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["threshold"] == "warning"
    assert data["summary"] == {
        "files": 8, "references": 42, "ok": 10, "error": 25, "warning": 5, "note": 0,
        "fixable": 10, "suppressed": 0,
    }
    assert len(data["results"]) == 10 + 30
    assert "chart charts/cache: 1 templated image reference not resolved without rendering " \
        "(templates/deployment.yaml:10); check `helm template` output" in data["notes"]
    first = data["results"][0]
    assert first == {
        "path": ".github/workflows/ci.yml", "line": 6, "column": 16, "endLine": 6, "endColumn": 35,
        "source": "workflow", "context": "jobs.test.container", "kind": "reference",
        "text": "bitnami/python:3.12", "reference": "docker.io/bitnami/python:3.12",
        "verdict": "error", "rule": "IV004", "ruleName": "request-vetting",
        "message": "bitnami/python:3.12: Community image (unverified) with no vetted mirror, blocked by "
                   "Image Access Management",
        "suggestion": "request vetting of bitnami/python (add it to the imagevet policy); its category "
                      "was not looked up on Docker Hub",
        "category": "community", "categoryVerified": False, "replacement": None, "fixable": False,
        "fixNote": "", "inferred": False, "inferredFrom": None,
    }


def test_sarif_to_a_file(in_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "check.sarif"
    result = runner.invoke(app, ["check", ".", "--format", "sarif", "--output", str(out), *VETTED])
    assert result.exit_code == 1 and result.stdout == ""
    sarif = json.loads(out.read_text())
    jsonschema.validate(sarif, json.loads((FIXTURES / "sarif-2.1.0-subset.schema.json").read_text()))
    assert len(sarif["runs"][0]["results"]) == 33


@pytest.mark.parametrize(
    ("dockerfile", "args", "code"),
    [
        ("FROM acme/base:1\nFROM alpine:3.20\n", [], 0),  # clean
        ("FROM ghcr.io/a/b:1\n", [], 0),  # notes never fail
        ("ARG T\nFROM alpine:$T\n", [], 1),  # a warning fails by default
        ("ARG T\nFROM alpine:$T\n", ["--severity", "error"], 0),
        ("FROM bitnami/x:1\n", ["--severity", "error"], 1),
        ("FROM alpine:3.20\n", ["--iam-official", "block"], 1),
        ("FROM bitnami/x:1  # imagevet: ignore[IV004]\n", [], 0),
        ("# imagevet: ignore\nFROM bitnami/x:1\n", [], 0),
        ("FROM bitnami/x:1  # imagevet: ignore[IV020]\n", [], 1),
    ],
)
def test_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dockerfile: str, args: list[str], code: int
) -> None:
    _tree(tmp_path, monkeypatch, {"Dockerfile": dockerfile})
    result = runner.invoke(app, ["check", "--org", "acme", *args])
    assert result.exit_code == code, result.output


def test_suppressed_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, monkeypatch, {"Dockerfile": "FROM bitnami/x:1  # imagevet: ignore\n"})
    result = runner.invoke(app, ["check", "--org", "acme"])
    assert result.stdout.splitlines()[-1].endswith("; 1 suppressed")


@pytest.mark.parametrize(
    "args",
    [
        ["--dry-run"],
        ["does-not-exist"],
        ["--policy", "imagevet.yaml"],
        ["--severity", "fatal"],
        ["--format", "xml"],
        ["--vetted", "missing.json"],
    ],
)
def test_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    _tree(tmp_path, monkeypatch, {"Dockerfile": "FROM alpine\n", "imagevet.yaml": "x: 1\n"})
    assert runner.invoke(app, ["check", *args]).exit_code == 2


def test_a_broken_policy_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, monkeypatch, {"Dockerfile": "FROM alpine\n", "imagevet.yaml": "version: 1\n"})
    result = runner.invoke(app, ["check", "--policy", "imagevet.yaml"])
    assert result.exit_code == 2
    assert "imagevet.yaml" in result.stderr and "target" in result.stderr


def test_fix_dry_run_prints_a_diff_and_writes_nothing(in_repo: Path) -> None:
    before = {p: p.read_bytes() for p in in_repo.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["check", "--fix", "--dry-run", *VETTED])
    assert result.exit_code == 1
    assert "--- a/compose.yaml\n+++ b/compose.yaml\n" in result.stdout
    assert '-  image: "bitnami/redis:7.2"    # vetted upstream; the mirror should be used\n' in result.stdout
    assert "14 edits would change in 6 files" in result.stdout
    assert {p: p.read_bytes() for p in in_repo.rglob("*") if p.is_file()} == before


def test_fix_writes_and_reports_what_is_left(in_repo: Path) -> None:
    result = runner.invoke(app, ["check", "--fix", *VETTED])
    assert result.exit_code == 1  # unvetted images are left, they cannot be fixed
    out = result.stdout
    assert (
        "fixed Dockerfile:5:18 (ARG REDIS_IMAGE)  bitnami/redis:7.2 -> docker.io/acme/redis:7.2@sha256:"
        "09760665f0af12dc6887689c1fa1afe346138a545ce1efbe277acf07bc92780a"
    ) in out
    assert "14 edits changed in 6 files" in out
    assert out.splitlines()[-1] == (
        "42 references in 8 files: 22 ok, 15 errors, 5 warnings, 1 notes; 0 fixable with --fix"
    )
    again = runner.invoke(app, ["check", "--fix", *VETTED])
    assert "0 edits changed in 0 files" in again.stdout


def test_fix_makes_a_fixable_tree_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path, monkeypatch, {})
    for name in ("compose.yaml", "Dockerfile", ".github/workflows/ci.yml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / "compose.yaml").write_text("services:\n  a:\n    image: bitnami/redis:7.4  # cache\n")
    (root / "Dockerfile").write_text('ARG B="bitnami/kubectl:1.30"\nFROM ${B}\nFROM acme/redis:7.2\n')
    shutil.copy(FIXTURES / "repo" / "charts" / "cache" / "Chart.yaml", root / "Chart.yaml")
    (root / "values.yaml").write_text("image:\n  repository: bitnami/redis\n  tag: '7.2'\n")
    assert runner.invoke(app, ["check", *VETTED]).exit_code == 1
    fixed = runner.invoke(app, ["check", "--fix", "--json", *VETTED])
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["ok"] is True
    assert "5 edits changed in 3 files" in fixed.stderr  # machine output keeps stdout clean
    assert runner.invoke(app, ["check", *VETTED]).exit_code == 0


def test_online_categories_and_iam_settings_from_the_hub(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    assert fake_hub.seed is not None
    fake_hub.add_catalog_entry("grafana/grafana", badge="verified_publisher")
    fake_hub.add_catalog_entry("bitnami/unvetted", badge="open_source")
    fake_hub.set_settings("acme", enabled=True, allow_official=True, allow_verified=False)
    monkeypatch.setenv("IMAGEVET_HUB_URL", fake_hub.url)
    monkeypatch.setenv("DOCKER_HUB_USERNAME", fake_hub.seed.username)
    monkeypatch.setenv("DOCKER_HUB_TOKEN", fake_hub.seed.pat)
    _tree(tmp_path, monkeypatch, {
        "Dockerfile": "FROM grafana/grafana:11.1.0\nFROM bitnami/unvetted:1\nFROM nginx:1.27\n",
    })
    result = runner.invoke(app, ["check", "--org", "acme", "--json", "--show-ok"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert [(r["rule"], r["category"], r["categoryVerified"]) for r in data["results"]] == [
        ("IV011", "verified_publisher", True),
        ("IV004", "sponsored_oss", True),
        (None, "official", True),
    ]
    assert data["notes"] == []
    allowed = runner.invoke(app, ["check", "--org", "acme", "--iam-verified", "allow", "--json"])
    assert [r["rule"] for r in json.loads(allowed.stdout)["results"]] == [None, "IV004", None]


def test_offline_flag_wins_over_hub_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEVET_HUB_URL", "http://127.0.0.1:9")  # never contacted
    _tree(tmp_path, monkeypatch, {"Dockerfile": "FROM grafana/grafana:11.1.0\n"})
    result = runner.invoke(app, ["check", "--offline", "--org", "acme", "--json"])
    data = json.loads(result.stdout)
    assert data["results"][0]["categoryVerified"] is False
    assert data["notes"][0].startswith("offline (--offline)")
