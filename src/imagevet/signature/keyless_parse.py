"""Bounded reading of the JSON documents of Sigstore: trust roots, bundles, Rekor entries.

Every reader takes ``what`` (the file or annotation the value came from) and a dotted ``path`` so a
:class:`~imagevet.errors.SignatureError` says exactly which field is wrong.  Sizes are capped
before parsing, nesting is capped by Python's recursion limit (caught), lists by a count: a
hostile document costs at most its capped size in memory and time.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from imagevet.errors import SignatureError

__all__ = [
    "b64",
    "integer",
    "items",
    "load_json",
    "obj",
    "optional",
    "rfc3339",
    "text",
]

MAX_LIST = 1024
"""No list in a trust root or a bundle is longer (Merkle paths are at most 64 hashes)."""

_B64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


def load_json(data: bytes, *, what: str, limit: int) -> dict[str, Any]:
    """The JSON object of ``data`` (at most ``limit`` bytes, UTF-8)."""
    if len(data) > limit:
        raise SignatureError(what, f"{len(data)} bytes is too long (at most {limit})")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SignatureError(what, f"not JSON ({type(e).__name__} at byte {getattr(e, 'pos', '?')})") from e
    except RecursionError as e:
        raise SignatureError(what, "JSON nested too deeply") from e
    if not isinstance(value, dict):
        raise SignatureError(what, "expected a JSON object")
    return value


def obj(value: Any, *, what: str, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SignatureError(what, f"{path}: expected an object")
    return value


def optional(parent: dict[str, Any], key: str) -> Any:
    return parent.get(key)


def text(value: Any, *, what: str, path: str, limit: int = 4096) -> str:
    if not isinstance(value, str) or not value:
        raise SignatureError(what, f"{path}: expected a non-empty string")
    if len(value) > limit:
        raise SignatureError(what, f"{path}: {len(value)} characters is too long (at most {limit})")
    return value


def b64(value: Any, *, what: str, path: str, limit: int = 1 << 20) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    s = text(value, what=what, path=path, limit=limit)
    if not _B64.fullmatch(s):
        raise SignatureError(what, f"{path}: not base64")
    s = s.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise SignatureError(what, f"{path}: not base64") from e


def integer(value: Any, *, what: str, path: str) -> int:
    """A non-negative integer, as a JSON number or (protobuf JSON's int64 form) a string."""
    if isinstance(value, bool):
        raise SignatureError(what, f"{path}: expected an integer")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise SignatureError(what, f"{path}: expected a non-negative integer")
    return value


def items(value: Any, *, what: str, path: str, limit: int = MAX_LIST) -> list[Any]:
    if not isinstance(value, list):
        raise SignatureError(what, f"{path}: expected a list")
    if len(value) > limit:
        raise SignatureError(what, f"{path}: {len(value)} entries is too many (at most {limit})")
    return value


def rfc3339(value: Any, *, what: str, path: str) -> datetime:
    s = text(value, what=what, path=path, limit=64)
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as e:
        raise SignatureError(what, f"{path}: not an RFC 3339 time") from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)
