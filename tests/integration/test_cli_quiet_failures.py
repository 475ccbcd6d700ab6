"""A failing run says what failed, once: no stray ``stamina.retry_scheduled`` lines from the retry
library and no "Unclosed client session" warnings from sessions leaked on error paths."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _imagevet(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args],
        capture_output=True, text=True, timeout=120, env=full, cwd=cwd, check=False,
    )


def _policy(tmp_path: Path, host: str) -> Path:
    entries = "".join(
        f"  - source: {host}/bitnami/{name}\n    tags: {{tags: ['1']}}\n"
        for name in ("redis", "postgresql", "kubectl", "nginx")
    )
    path = tmp_path / "imagevet.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            target: {{registry: "{host}", namespace: acme}}
            defaults:
              approval: {{approved_by: sec@acme.example, approved_on: 2026-01-01, ticket: SEC-1}}
            images:
            """
        )
        + entries
    )
    return path


@pytest.mark.parametrize("command", ["plan", "sync"])
def test_failing_hub_and_registry_leave_no_stray_lines(tmp_path: Path, command: str) -> None:
    host = f"127.0.0.1:{_closed_port()}"
    policy = _policy(tmp_path, host)
    env = {
        "IMAGEVET_HUB_URL": f"http://{host}",
        "DOCKER_HUB_USERNAME": "someone",
        "DOCKER_HUB_TOKEN": "not-a-real-token",
    }
    proc = _imagevet(command, "-p", str(policy), env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error:" in proc.stderr
    assert "stamina" not in proc.stderr
    assert "Unclosed" not in proc.stderr and "client_session" not in proc.stderr


def test_unreachable_registry_copy_has_no_retry_noise(tmp_path: Path) -> None:
    host = f"127.0.0.1:{_closed_port()}"
    proc = _imagevet("copy", f"{host}/a/b:1", f"{host}/c/d", env={}, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("error:") == 1, proc.stderr
    assert "stamina" not in proc.stderr and "Unclosed" not in proc.stderr


def test_debug_shows_the_retries_through_imagevet_logging(tmp_path: Path) -> None:
    host = f"127.0.0.1:{_closed_port()}"
    proc = _imagevet("--debug", "copy", f"{host}/a/b:1", f"{host}/c/d", env={}, cwd=tmp_path)
    assert proc.returncode == 1
    assert "retry" in proc.stderr
    assert "\nstamina.retry_scheduled" not in proc.stderr  # never the bare library line
