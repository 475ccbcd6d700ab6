"""Start, stop, kill and restart Debian ``docker-registry`` (CNCF distribution 2.8) processes.

Each registry listens on a free port of 127.0.0.1 with filesystem storage under its workdir,
deletes enabled, and one of three auth setups: ``none``, ``basic`` (htpasswd, bcrypt) or
``token`` (a :class:`~tests.support.token_server.TokenServer` as realm). Every process started
here is also killed at interpreter exit and when the test process dies (PR_SET_PDEATHSIG), so a
failing or interrupted test run never leaves a registry behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.support.ports import free_port, http_status, wait_until
from tests.support.token_server import TokenServer, start_token_server

__all__ = [
    "ALICE",
    "ALICE_PASSWORD",
    "READER",
    "READER_PASSWORD",
    "REGISTRY_BINARY",
    "RegistryStartError",
    "RunningRegistry",
    "start_registry",
]

REGISTRY_BINARY = os.environ.get("IMAGEVET_TEST_REGISTRY_BINARY", "docker-registry")
ALICE, ALICE_PASSWORD = "alice", "alice-pw-s3cret"
READER, READER_PASSWORD = "reader", "reader-pw"
START_TIMEOUT = 10.0

AuthMode = Literal["none", "basic", "token"]

_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_PR_SET_PDEATHSIG = 1


class RegistryStartError(RuntimeError):
    """The registry process did not come up; the message carries its log."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _binary() -> str:
    found = shutil.which(REGISTRY_BINARY)
    if found is None:
        raise RegistryStartError(
            f"{REGISTRY_BINARY!r} not found on PATH: install Debian's docker-registry package "
            "(apt-get install docker-registry) or set IMAGEVET_TEST_REGISTRY_BINARY"
        )
    return found


def _htpasswd_line(user: str, password: str) -> str:
    tool = shutil.which("htpasswd")
    if tool is None:
        raise RegistryStartError("htpasswd not found: apt-get install apache2-utils")
    out = subprocess.run(
        [tool, "-Bbn", user, password], check=True, capture_output=True, text=True
    ).stdout
    return out.strip()


@dataclass
class RunningRegistry:
    """A ``docker-registry`` process on 127.0.0.1 and what a test needs to talk to it."""

    host: str
    url: str
    auth: str
    username: str | None
    password: str | None
    storage: Path
    pid: int
    workdir: Path
    config_path: Path
    log_path: Path
    port: int
    token_server: TokenServer | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _owns_token_server: bool = field(default=False, repr=False)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """The registry's stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        """Start the process (again) on the same port and storage; wait until ``/v2/`` answers."""
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [_binary(), "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call
            )
        self._proc, self.pid = proc, proc.pid
        _LIVE[proc.pid] = proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RegistryStartError(
                    f"docker-registry exited with {proc.returncode} on {self.host}:\n{self.log()}"
                )
            return http_status(self.url + "/v2/", timeout=0.5) in (200, 401)

        try:
            wait_until(
                up,
                timeout=START_TIMEOUT,
                on_timeout=lambda: (
                    f"docker-registry on {self.host} not up in {START_TIMEOUT}s:\n{self.log()}"
                ),
            )
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; wait for exit. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        _LIVE.pop(proc.pid, None)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL at once (a crash mid-operation) and reap the process."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        _LIVE.pop(proc.pid, None)
        self._proc = None

    def close(self) -> None:
        """Stop the process and the token server this registry started for itself."""
        self.stop()
        if self._owns_token_server and self.token_server is not None:
            self.token_server.stop()

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps the data of blob ``digest``."""
        alg, _, hex_ = digest.partition(":")
        return self.storage / "docker/registry/v2/blobs" / alg / hex_[:2] / hex_ / "data"


def _config(port: int, storage: Path, auth: dict[str, Any] | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "health": {"storagedriver": {"enabled": False}},
        # Non-distributable layers carry `urls`; without an allow list 2.8 refuses such manifests.
        "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}},
    }
    if auth is not None:
        cfg["auth"] = auth
    return cfg


def start_registry(
    workdir: Path,
    *,
    auth: AuthMode | str = "none",
    token_server: TokenServer | None = None,
    username: str = ALICE,
    password: str = ALICE_PASSWORD,
    extra_users: dict[str, str] | None = None,
) -> RunningRegistry:
    """Start ``docker-registry`` in ``workdir`` (config, storage, log) and wait until it answers.

    ``auth="basic"`` writes an htpasswd file for ``username`` (and ``extra_users``).
    ``auth="token"`` trusts ``token_server`` (one is started with the same users when None, and
    stopped by :meth:`RunningRegistry.close`). The returned ``username``/``password`` may pull and
    push every repository.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    owns = False
    auth_cfg: dict[str, Any] | None = None
    users = {username: password, **(extra_users or {})}
    if auth == "basic":
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text("".join(_htpasswd_line(u, p) + "\n" for u, p in users.items()))
        auth_cfg = {"htpasswd": {"realm": "imagevet-test-basic", "path": str(htpasswd)}}
    elif auth == "token":
        if token_server is None:
            token_server = start_token_server(workdir / "token-server", users=users)
            owns = True
        token_server.users.setdefault(username, password)
        auth_cfg = {
            "token": {
                "realm": token_server.realm,
                "service": token_server.service,
                "issuer": token_server.issuer,
                "rootcertbundle": str(token_server.cert_pem_path),
            }
        }
    elif auth != "none":
        raise ValueError(f"auth must be 'none', 'basic' or 'token', not {auth!r}")

    last_error: Exception | None = None
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = free_port()
        config_path = workdir / "config.yml"
        config_path.write_text(
            json.dumps(_config(port, storage, auth_cfg), indent=2)
        )  # JSON is YAML
        reg = RunningRegistry(
            host=f"127.0.0.1:{port}",
            url=f"http://127.0.0.1:{port}",
            auth=auth,
            username=None if auth == "none" else username,
            password=None if auth == "none" else password,
            storage=storage,
            pid=0,
            workdir=workdir,
            config_path=config_path,
            log_path=workdir / "registry.log",
            port=port,
            token_server=token_server if auth == "token" else None,
            _owns_token_server=owns,
        )
        try:
            reg.start()
            return reg
        except RegistryStartError as e:
            last_error = e
            if "address already in use" not in str(e):
                break
            time.sleep(0.05)
    if owns and token_server is not None:
        token_server.stop()
    assert last_error is not None
    raise last_error


@atexit.register
def _kill_all() -> None:
    for proc in list(_LIVE.values()):
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(2)
    _LIVE.clear()
