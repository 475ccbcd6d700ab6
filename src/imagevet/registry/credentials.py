"""Registry credentials: Docker's config lookup order, credential helpers, and explicit CI secrets.

Lookup order of :class:`DockerConfigCredentials` (docker-py ``docker.auth``, docker/cli#6008):

1. ``DOCKER_AUTH_CONFIG`` (the JSON of a config file, in the environment) wins over everything;
2. ``credHelpers[<host>]``, then ``credsStore``: ``docker-credential-<name> get`` is run with the
   server on stdin and answers ``{"ServerURL", "Username", "Secret"}``; the user name
   ``<token>`` means the secret is an identity (refresh) token;
3. ``auths[<host>]``: ``auth`` is base64 ``user:password``, ``identitytoken`` an identity token.

The config file is ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``.  Docker Hub's
key is ``https://index.docker.io/v1/``; legacy keys written as URLs are matched by host name.
Nothing here reads ``os.environ``: the caller passes the environment and home directory.
Secrets never appear in a ``repr``, a ``str``, a log record or an exception message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import re
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from imagevet.errors import CredentialsError, scrub
from imagevet.reference import DOCKER_HUB, canonical_registry

__all__ = [
    "DOCKER_HUB_AUTH_KEY",
    "ChainCredentials",
    "Credential",
    "CredentialStore",
    "DockerConfigCredentials",
    "StaticCredentials",
]

log = logging.getLogger(__name__)

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 30.0
_TOKEN_USER = "<token>"
_SECRET_FIELD = re.compile(r'(?i)("secret"\s*:\s*)"(?:[^"\\]|\\.)*"')
_NOT_FOUND_MARKERS = ("credentials not found", "not found in native keychain")


@dataclass(frozen=True, slots=True)
class Credential:
    """A user name with a password, or an identity (refresh) token; the secrets never print."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    @property
    def has_password(self) -> bool:
        return bool(self.username and self.password)

    def __str__(self) -> str:
        kind = "identity token" if self.identity_token else "password"
        return f"{self.username or '<no user>'} ({kind})"

    def __repr__(self) -> str:
        return (
            f"Credential(username={self.username!r}, password={'***' if self.password else ''!r}, "
            f"identity_token={'***' if self.identity_token else ''!r})"
        )


@runtime_checkable
class CredentialStore(Protocol):
    """Where the client gets the credential for a registry (``None``: go anonymous)."""

    async def get(self, registry: str) -> Credential | None: ...


class StaticCredentials:
    """Credentials given explicitly per registry (built by the CLI from its environment or a file)."""

    def __init__(self, mapping: Mapping[str, Credential]) -> None:
        self._by_registry = {canonical_registry(k): v for k, v in mapping.items()}

    async def get(self, registry: str) -> Credential | None:
        return self._by_registry.get(canonical_registry(registry))

    def __repr__(self) -> str:
        return f"StaticCredentials({sorted(self._by_registry)})"


class ChainCredentials:
    """Ask each store in turn; the first credential found wins."""

    def __init__(self, *stores: CredentialStore) -> None:
        self._stores = stores

    async def get(self, registry: str) -> Credential | None:
        for store in self._stores:
            found = await store.get(registry)
            if found is not None:
                return found
        return None


def lookup_keys(registry: str) -> list[str]:
    """Config keys that may hold the credential of ``registry``, best first."""
    if canonical_registry(registry) == DOCKER_HUB:
        return [DOCKER_HUB_AUTH_KEY, "index.docker.io", "docker.io", "registry-1.docker.io"]
    return [registry]


def _key_host(key: str) -> str:
    """The host of a config key written as a URL (``https://host:5000/v1/`` -> ``host:5000``)."""
    rest = key.split("://", 1)[-1]
    return rest.split("/", 1)[0].lower()


def _match(entries: Mapping[str, Any], registry: str) -> Any | None:
    """The entry for ``registry``: an exact key first, then a legacy URL key with the same host."""
    keys = lookup_keys(registry)
    for key in keys:
        if key in entries:
            return entries[key]
    hosts = {_key_host(k) for k in keys}
    for key, value in entries.items():
        if _key_host(key) in hosts:
            return value
    return None


def _from_auth_entry(entry: Any, where: str) -> Credential | None:
    if not isinstance(entry, Mapping):
        return None
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    auth = entry.get("auth")
    if auth:
        try:
            decoded = base64.b64decode(str(auth), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(
                f"{where}: the 'auth' field is not base64 of user:password"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialsError(f"{where}: the 'auth' field does not hold user:password")
    token = str(entry.get("identitytoken") or "")
    if token:
        return Credential(username=username, identity_token=token)
    if username and password:
        return Credential(username=username, password=password)
    return None


class DockerConfigCredentials:
    """Docker's credential lookup (see the module docstring) over ``env`` and ``home``."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        home: Path,
        helper_timeout: float = HELPER_TIMEOUT,
    ) -> None:
        self._env = dict(env)
        self._home = home
        self._helper_timeout = helper_timeout
        self._config: Mapping[str, Any] | None = None
        self._cache: dict[str, Credential | None] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def config_path(self) -> Path:
        base = self._env.get("DOCKER_CONFIG")
        return (Path(base) if base else self._home / ".docker") / "config.json"

    def _load(self) -> Mapping[str, Any]:
        if self._config is None:
            path = self.config_path
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = "{}"
            except OSError as e:
                raise CredentialsError(f"cannot read {path}: {e.strerror}") from None
            self._config = _parse_config(text, str(path))
        return self._config

    async def get(self, registry: str) -> Credential | None:
        key = canonical_registry(registry)
        if key in self._cache:
            return self._cache[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._cache:
                self._cache[key] = await self._lookup(key)
        return self._cache[key]

    async def _lookup(self, registry: str) -> Credential | None:
        inline = self._env.get("DOCKER_AUTH_CONFIG")
        if inline:
            found = _from_auth_entry(
                _match(_parse_config(inline, "DOCKER_AUTH_CONFIG").get("auths") or {}, registry),
                "DOCKER_AUTH_CONFIG",
            )
            if found is not None:
                return found
        config = self._load()
        helpers = config.get("credHelpers") or {}
        helper = _match(helpers, registry) if isinstance(helpers, Mapping) else None
        if helper:
            return await self._run_helper(str(helper), registry)
        store = config.get("credsStore")
        if store:
            found = await self._run_helper(str(store), registry)
            if found is not None:
                return found
        auths = config.get("auths") or {}
        if isinstance(auths, Mapping):
            return _from_auth_entry(_match(auths, registry), str(self.config_path))
        return None

    async def _run_helper(self, name: str, registry: str) -> Credential | None:
        program = f"docker-credential-{name}"
        exe = shutil.which(program, path=self._env.get("PATH", ""))
        if exe is None:
            raise CredentialsError(f"credential helper {program} is not on PATH")
        server = lookup_keys(registry)[0]
        try:
            proc = await asyncio.create_subprocess_exec(
                exe,
                "get",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env,
                start_new_session=True,  # so a hung helper can be killed with its children
            )
        except OSError as e:
            raise CredentialsError(f"cannot run {program}: {e.strerror}") from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(server.encode()), timeout=self._helper_timeout
            )
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise CredentialsError(
                f"{program} did not answer within {self._helper_timeout:g} s"
            ) from None
        except BaseException:  # cancelled: do not leave the helper behind
            _kill_group(proc.pid)
            raise
        if proc.returncode != 0:
            text = (out + err).decode(errors="replace").strip()
            if any(m in text.lower() for m in _NOT_FOUND_MARKERS):
                return None
            # a helper's output may echo what it was given, never the secret: still keep it short
            text = scrub(_SECRET_FIELD.sub(r'\1"***"', text), limit=200)
            raise CredentialsError(f"{program} get failed (exit {proc.returncode}): {text}")
        try:
            answer = json.loads(out)
            username = str(answer.get("Username") or "")
            secret = str(answer.get("Secret") or "")
        except (ValueError, AttributeError):
            raise CredentialsError(f"{program} get did not answer JSON") from None
        log.debug("credentials for %s from %s", registry, program)
        if not secret:
            return None
        if username == _TOKEN_USER:
            return Credential(identity_token=secret)
        return Credential(username=username, password=secret)

    def __repr__(self) -> str:
        return f"DockerConfigCredentials(config={str(self.config_path)!r})"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _parse_config(text: str, where: str) -> Mapping[str, Any]:
    try:
        obj = json.loads(text)
    except ValueError:
        raise CredentialsError(f"{where} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise CredentialsError(f"{where} is not a JSON object")
    return obj
