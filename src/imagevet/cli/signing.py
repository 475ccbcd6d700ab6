"""The organization's signing key for ``sign:`` (docs/attestations.md): read here, in the CLI,
from the file or environment variable the policy names, before any work.

A key that is missing, unreadable, not a supported PEM private key, encrypted without its
password or with the wrong one stops the command (exit 2) with a message naming the file or
variable and what is wrong, never the key or its password.
"""

from __future__ import annotations

import os
from pathlib import Path

from imagevet.cli.common import EXIT_USAGE, fail
from imagevet.errors import SignatureError
from imagevet.policy import Policy
from imagevet.signature.keys import MAX_PEM_BYTES, PrivateKey, load_private_key

__all__ = ["read_sign_key"]


def _read_file(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PEM_BYTES + 1)  # a longer file is refused by the loader, unread
    except OSError as e:
        fail(f"sign.key: cannot read the signing key {path}: {e.strerror or type(e).__name__}", EXIT_USAGE)
    return data


def _env(name: str, what: str) -> bytes:
    value = os.environ.get(name)
    if not value:
        fail(f"{what}: the environment variable {name} is not set (or empty)", EXIT_USAGE)
    return value.encode("utf-8", "surrogateescape")


def read_sign_key(policy: Policy) -> PrivateKey | None:
    """The private key of the policy's ``sign:`` section; None when the policy has none.

    Exits 2 with a clear message for any problem with the key (see the module docstring).
    """
    sign = policy.sign
    if sign is None:
        return None
    if sign.key_file is not None:
        data, what = _read_file(sign.key_file), f"sign.key {sign.key_file}"
    else:
        assert sign.key_env is not None  # the schema admits exactly one
        data, what = _env(sign.key_env, "sign.key_env"), f"sign.key_env {sign.key_env}"
    password = _env(sign.password_env, "sign.password_env") if sign.password_env else None
    try:
        return load_private_key(data, what=what, password=password)
    except SignatureError as e:
        fail(f"cannot sign mirrors: {e}", EXIT_USAGE)
