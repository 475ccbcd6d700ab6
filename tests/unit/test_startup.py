"""A command imports only what it needs: which libraries each command loads (module sets, not
times: tests are not timed; ``bench/run.py`` measures the time).

Each case runs the CLI in a fresh interpreter, as a user does, and reads ``sys.modules`` after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = ROOT / "examples" / "imagevet.yaml"

_PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
sys.argv = ["imagevet", *argv]
from imagevet.cli import main
code = 0
try:
    main()
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 1
tops = sorted({m.split(".")[0] for m in sys.modules} | {m for m in sys.modules if m.startswith("imagevet.")})
sys.stderr.write("\\nMODULES " + json.dumps({"code": code, "modules": tops}) + "\\n")
"""


def loaded_by(argv: list[str], cwd: Path) -> tuple[int, set[str], str]:
    """(exit code, top-level packages and imagevet modules imported, output) of ``imagevet ARGV``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEVET_", "DOCKER_HUB_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["HOME"] = str(cwd)  # no Docker config of the machine
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )
    out, _, report = done.stderr.rpartition("\nMODULES ")
    assert report, done.stdout + done.stderr
    data = json.loads(report)
    return data["code"], set(data["modules"]), done.stdout + out if out else done.stdout


HEAVY = {"aiohttp", "pydantic", "ruamel", "cryptography", "stamina", "rich", "asyncio", "ssl"}


def test_top_level_help_imports_no_library_of_any_command(tmp_path: Path) -> None:
    code, modules, out = loaded_by(["--help"], tmp_path)
    assert code == 0 and "Commands" in out
    assert not modules & HEAVY, sorted(modules & HEAVY)
    assert not {m for m in modules if m.startswith(("imagevet.registry", "imagevet.hub", "imagevet.policy"))}


@pytest.mark.parametrize("command", ["validate", "check", "classify", "audit"])
def test_help_of_an_offline_command_imports_no_http_client(tmp_path: Path, command: str) -> None:
    code, modules, out = loaded_by([command, "--help"], tmp_path)
    assert code == 0 and "Usage:" in out
    assert not modules & {"aiohttp", "cryptography", "stamina"}, sorted(modules)


def test_validate_imports_no_http_client_nor_crypto(tmp_path: Path) -> None:
    code, modules, out = loaded_by(["validate", "--policy", str(EXAMPLE_POLICY)], tmp_path)
    assert code == 0 and "valid, 3 entries" in out
    assert not modules & {"aiohttp", "cryptography", "stamina"}, sorted(modules)


def test_check_offline_imports_no_http_client_nor_crypto(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM nginx:1.25\n")
    code, modules, out = loaded_by(["check", "--offline", str(tmp_path)], tmp_path)
    assert code == 0 and "1 references in 1 files" in out
    assert not modules & {"aiohttp", "cryptography", "stamina"}, sorted(modules)


def test_status_imports_no_http_client_nor_crypto(tmp_path: Path) -> None:
    code, modules, out = loaded_by(["status", "--policy", str(EXAMPLE_POLICY), "--within", "0d"], tmp_path)
    assert code in (0, 3) and "status:" in out, out
    assert not modules & {"aiohttp", "cryptography", "stamina", "asyncio"}, sorted(modules)


def test_copy_imports_no_policy_yaml_or_crypto_library(tmp_path: Path) -> None:
    # nothing listens on port 1: the copy fails at its first request, after every import it needs
    code, modules, out = loaded_by(["copy", "--jobs", "2", "127.0.0.1:1/a/b:1", "127.0.0.1:1/c/d:1"], tmp_path)
    assert code == 1 and "cannot connect" in out
    assert "aiohttp" in modules  # it did get as far as the registry client
    assert not modules & {"pydantic", "ruamel", "cryptography"}, sorted(modules & HEAVY)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["copy", "--jobs", "0", "a", "b"], "Invalid value for '--jobs' / '-j': Input should be greater than or equal to 1"),
        (["copy", "--jobs", "65", "a", "b"], "Invalid value for '--jobs' / '-j': Input should be less than or equal to 64"),
        (["copy", "--jobs", "1.5", "a", "b"],
         "Invalid value for '--jobs' / '-j': Input should be a valid integer, unable to parse string as an integer"),
        (["check", "--format", "xml", "."],
         "Invalid value for '--format': Value error, 'xml' is not one of 'human', 'json', 'sarif'."),
        (["doctor", "--policy", "missing.yaml"], "Invalid value for '--policy': path 'missing.yaml' does not exist."),
    ],
    ids=["below-min", "above-max", "not-an-int", "not-a-choice", "missing-path"],
)
def test_bad_option_values_are_usage_errors_without_pydantic(tmp_path: Path, argv: list[str], message: str) -> None:
    code, modules, out = loaded_by(argv, tmp_path)
    assert code == 2 and message in out, out
    assert "pydantic" not in modules or argv[0] in ("check", "doctor")  # those load the policy models


def test_option_values_reach_the_command_converted(tmp_path: Path) -> None:
    """--format json (an enum) and a repeated --exclude (a list) arrive as values the command uses."""
    (tmp_path / "Dockerfile").write_text("FROM nginx:1.25\n")
    (tmp_path / "skip").mkdir()
    (tmp_path / "skip" / "Dockerfile").write_text("FROM redis:7\n")
    code, _, out = loaded_by(
        ["check", "--offline", "--format", "json", "--exclude", "skip/*", "--exclude", "nothing", str(tmp_path)],
        tmp_path,
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["summary"]["files"] == 1
    assert [r["reference"] for r in report["results"]] == ["docker.io/library/nginx:1.25"]


_POLICY_ON_LOOPBACK = """\
version: 1
target:
  registry: 127.0.0.1:1
  namespace: mirror
  naming: "{name}"
defaults:
  mode: follow
  approval:
    approved_by: security@acme.example
    expires: 2099-12-31
images:
  - source: 127.0.0.1:1/upstream/app
    tags:
      tags: ["1"]
    approval:
      reason: startup probe
      ticket: SEC-1
"""


@pytest.mark.parametrize("command", ["plan", "sync"])
def test_plan_and_sync_to_a_registry_not_docker_hub_import_no_hub_client(tmp_path: Path, command: str) -> None:
    # nothing listens on port 1: the command fails at its first request, after its imports
    (tmp_path / "imagevet.yaml").write_text(_POLICY_ON_LOOPBACK)
    code, modules, out = loaded_by([command, "--policy", str(tmp_path / "imagevet.yaml")], tmp_path)
    assert "imagevet.registry.client" in modules, (code, out)  # it got as far as the registry client
    assert "imagevet.cli._policy" in modules
    assert not {m for m in modules if m == "imagevet.hub" or m.startswith("imagevet.hub.")}, (code, out)


def test_report_reads_only_local_files_and_loads_jinja2_only_for_html(tmp_path: Path) -> None:
    (tmp_path / "imagevet.yaml").write_text(_POLICY_ON_LOOPBACK)
    policy = str(tmp_path / "imagevet.yaml")
    code, modules, out = loaded_by(["report", "--policy", policy, "--markdown", "-"], tmp_path)
    assert code == 0 and "## imagevet catalog" in out, out
    assert not modules & {"aiohttp", "cryptography", "stamina", "jinja2"}, sorted(modules & HEAVY)
    code, modules, out = loaded_by(["report", "--policy", policy, "--html", str(tmp_path / "site")], tmp_path)
    assert code == 0 and (tmp_path / "site" / "index.html").is_file(), out
    assert "jinja2" in modules and not modules & {"aiohttp", "cryptography", "stamina"}
    code, modules, out = loaded_by(["report", "--help"], tmp_path)
    assert code == 0 and "--html DIR" in out and "--markdown FILE" in out
    assert not modules & {"jinja2", "aiohttp", "cryptography"}, sorted(modules & HEAVY)


def test_watch_loads_its_libraries_only_when_it_runs(tmp_path: Path) -> None:
    code, modules, out = loaded_by(["watch", "--help"], tmp_path)
    assert code == 0 and "--interval" in out
    assert not modules & {"aiohttp", "prometheus_client", "cronsim", "cryptography"}, sorted(modules)
    assert not {m for m in modules if m.startswith("imagevet.watch")}
    # a bad schedule is refused before the registry client or the metrics load
    code, modules, out = loaded_by(["watch", "--interval", "15x", "--policy", str(EXAMPLE_POLICY)], tmp_path)
    assert code == 2 and "--interval: '15x' is not a duration" in out
    assert not modules & {"aiohttp", "prometheus_client"}, sorted(modules & {"aiohttp", "prometheus_client"})


def test_verify_help_imports_no_http_client_crypto_nor_policy(tmp_path: Path) -> None:
    code, modules, out = loaded_by(["verify", "--help"], tmp_path)
    assert code == 0 and "Usage:" in out and "--key-env" in out
    assert not modules & {"aiohttp", "cryptography", "stamina", "pydantic"}, sorted(modules)


def test_a_policy_without_verify_reads_no_key_and_loads_no_crypto(tmp_path: Path) -> None:
    """plan on a layout target (no registry needed): the verify: machinery costs nothing unused."""
    policy = tmp_path / "imagevet.yaml"
    policy.write_text(
        "version: 1\ntarget: {layout: mirror, namespace: acme}\n"
        "defaults: {approval: {approved_by: a}}\nimages: []\n"
    )
    code, modules, out = loaded_by(["plan", "--policy", str(policy)], tmp_path)
    assert code == 0, out
    assert "cryptography" not in modules, sorted(modules)
