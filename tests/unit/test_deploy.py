"""The deployment examples (docs/deploy/, the Dockerfile) against the code they deploy: every
``imagevet`` command line in them parses with today's command line, the probes and ports agree
with ``watch``'s endpoints, the schedule parses, systemd accepts the units, and the image runs as
a non-root user.  An option renamed in the code, or a typo in an example, fails here."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from cronsim import CronSim
from ruamel.yaml import YAML

from imagevet.cli import app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
WORKFLOW = DEPLOY / "github" / "imagevet-lock.yml"
CRONJOB = DEPLOY / "kubernetes" / "cronjob.yaml"
WATCH = DEPLOY / "kubernetes" / "watch.yaml"
SYSTEMD = DEPLOY / "systemd"


def _yaml_docs(path: Path) -> list[Any]:
    return [d for d in YAML(typ="safe").load_all(path.read_text()) if d is not None]


def parse_imagevet(argv: list[str]) -> Any:
    """Parse ``imagevet ARGS...`` as the CLI would, without running it; the leaf command's context.
    Raises click's usage errors (an unknown command or option, a bad value)."""
    group: Any = typer.main.get_command(app)
    ctx = group.make_context("imagevet", list(argv))
    while getattr(ctx, "_protected_args", []) or ctx.args:  # typer's click keeps the command name here
        name, *rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        command = ctx.command.get_command(ctx, name)
        assert command is not None, f"imagevet has no command {name!r}: {argv}"
        ctx = command.make_context(name, rest, parent=ctx)
        if not hasattr(command, "get_command"):
            break
    return ctx


def _shell_invocations(script: str, env: dict[str, str]) -> Iterator[list[str]]:
    """Each ``imagevet ...`` simple command of a shell script, variables filled from ``env``."""
    for line in script.splitlines():
        line = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), "VALUE"), line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words, command = list(lexer), []
        for word in [*words, ";"]:
            if word in {"|", "||", "&&", ";", "&", ">", "<"}:
                if command and Path(command[0]).name == "imagevet":
                    yield command[1:]
                command = []
            else:
                command.append(word)


def _containers(doc: Any) -> list[dict[str, Any]]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return list(spec["template"]["spec"]["containers"])


def _pod_spec(doc: Any) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def test_every_imagevet_command_of_the_github_workflow_parses_and_it_opens_a_pull_request() -> None:
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    trigger = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    for schedule in trigger["schedule"]:
        CronSim(schedule["cron"], __import__("datetime").datetime(2026, 1, 1))
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}
    steps = workflow["jobs"]["lock"]["steps"]
    commands = [
        argv for step in steps if "run" in step
        for argv in _shell_invocations(step["run"], {**workflow["env"], **step.get("env", {})})
    ]
    assert [c[0] for c in commands] == ["lock", "report"], commands
    for argv in commands:
        parse_imagevet(argv)
    report = next(c for c in commands if c[0] == "report")
    assert "--markdown" in report
    pull = next(s for s in steps if str(s.get("uses", "")).startswith("peter-evans/create-pull-request@"))
    assert pull["with"]["body-path"] == "pr-body.md"
    assert "imagevet.lock" in pull["with"]["add-paths"]
    assert not any("secrets." in str(s.get("run", "")) for s in steps), "secrets go through env, not the script"


@pytest.mark.parametrize("path", [CRONJOB, WATCH], ids=lambda p: p.name)
def test_kubernetes_examples_run_imagevet_as_non_root_with_its_state_on_a_volume(path: Path) -> None:
    docs = _yaml_docs(path)
    workloads = [d for d in docs if d["kind"] in {"CronJob", "Deployment"}]
    assert len(workloads) == 1
    workload = workloads[0]
    pod = _pod_spec(workload)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (container,) = _containers(workload)
    parse_imagevet(container["args"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert env["IMAGEVET_STATE_DIR"] in mounts and not mounts[env["IMAGEVET_STATE_DIR"]].get("readOnly")
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    state_volume = volumes[mounts[env["IMAGEVET_STATE_DIR"]]["name"]]
    assert state_volume["persistentVolumeClaim"]["claimName"] in claims
    policy_path = container["args"][container["args"].index("-p") + 1]
    assert any(policy_path.startswith(m + "/") for m in mounts), "the policy is mounted"
    assert "value" not in str(container.get("envFrom", "")), "credentials come from a Secret"
    if workload["kind"] == "CronJob":
        assert container["args"][0] == "sync"
        assert workload["spec"]["concurrencyPolicy"] == "Forbid"
        CronSim(workload["spec"]["schedule"], __import__("datetime").datetime(2026, 1, 1))


def test_the_watch_deployment_probes_and_scrapes_what_watch_serves() -> None:
    docs = _yaml_docs(WATCH)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    (container,) = _containers(deployment)
    args = container["args"]
    ctx = parse_imagevet(args)
    assert ctx.info_name == "watch"
    listen = args[args.index("--listen") + 1]
    host, _, port = listen.rpartition(":")
    assert host == "0.0.0.0", "a pod serves its probes on every interface"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(port)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["metadata"]["annotations"]["prometheus.io/port"] == port
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 30, "long enough for watch to finish or abandon a copy"


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_systemd_units_run_imagevet_commands_that_parse_and_systemd_accepts_them(tmp_path: Path) -> None:
    units = sorted(SYSTEMD.iterdir())
    assert {u.name for u in units} == {"imagevet-sync.service", "imagevet-sync.timer", "imagevet-watch.service"}
    for unit in units:
        parsed = _unit(unit)
        if unit.suffix == ".service":
            argv = shlex.split(parsed["Service"]["ExecStart"])
            assert argv[0] == "/opt/imagevet/bin/imagevet"
            parse_imagevet(argv[1:])
            assert parsed["Service"]["DynamicUser"] == "yes"
            assert "IMAGEVET_STATE_DIR=/var/lib/imagevet" in unit.read_text()
            assert parsed["Service"]["StateDirectory"] == "imagevet"
    assert _unit(SYSTEMD / "imagevet-sync.timer")["Timer"]["Persistent"] == "true"
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is required (./scripts/test installs systemd)"
    imagevet = shutil.which("imagevet") or str(Path(__import__("sys").executable).parent / "imagevet")
    for unit in units:  # systemd-analyze needs the binaries to exist
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/imagevet/bin/imagevet", imagevet))
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / u.name) for u in units)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages


def test_the_image_is_built_from_this_tree_and_runs_imagevet_as_non_root() -> None:
    stages = _dockerfile_stages()
    assert len(stages) == 2, "a build stage and a final stage"
    final = dict(stages[-1])
    user = final["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric non-root user (runAsNonRoot can check it)"
    assert final["ENTRYPOINT"] == '["imagevet"]'
    assert final["EXPOSE"] == "9108"
    assert "IMAGEVET_STATE_DIR=/var/lib/imagevet" in final["ENV"]
    for instruction, args in stages[0]:
        if instruction == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the tree"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") + 1:][:3] == ["!pyproject.toml", "!README.md", "!src/"]
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text())
    assert base and not base.group(1).endswith(":latest") and "3.11" in base.group(1)
