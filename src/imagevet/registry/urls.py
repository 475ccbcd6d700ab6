"""URL helpers that never decode or re-encode: joins, origins, query appends, ``Link`` headers.

Registries and CDNs hand out ``Location`` URLs with signed query strings (``%2B``, ``%3D``,
``%27`` ...).  Decoding and re-encoding them breaks the signature, so every helper here works
on the text as sent.
"""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["add_query", "join_url", "next_link", "origin", "split_origin"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_LINK_PART = re.compile(r"<([^>]*)>\s*((?:;\s*[^,;]+)*)")


def split_origin(url: str) -> tuple[str, str]:
    """Split an absolute URL into ``scheme://authority`` and the rest (path, query, fragment)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("not an absolute URL")
    cut = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1:
            cut = min(cut, i)
    return f"{scheme}://{rest[:cut]}", rest[cut:]


def origin(url: str) -> str:
    """The origin of an absolute URL: lowercase scheme and authority, default ports dropped."""
    base, _ = split_origin(url)
    scheme, _, authority = base.partition("://")
    scheme = scheme.lower()
    authority = authority.rsplit("@", 1)[-1].lower()
    for default in ((":443", "https"), (":80", "http")):
        if authority.endswith(default[0]) and scheme == default[1]:
            authority = authority[: -len(default[0])]
    return f"{scheme}://{authority}"


def join_url(base: str, ref: str) -> str:
    """Resolve ``ref`` (a ``Location`` or ``Link`` value) against ``base``, keeping bytes exact."""
    ref = ref.strip()
    if _SCHEME.match(ref):
        return ref
    base_origin, base_rest = split_origin(base)
    if ref.startswith("//"):
        return base_origin.split("://", 1)[0] + ":" + ref
    if ref.startswith("/"):
        return base_origin + ref
    path = base_rest.split("?", 1)[0].split("#", 1)[0]
    if ref.startswith("?"):
        return base_origin + path + ref
    directory = path[: path.rfind("/") + 1] if "/" in path else "/"
    return base_origin + directory + ref


def add_query(url: str, name: str, value: str) -> str:
    """Append ``name=value`` (value percent-encoded) to ``url``, keeping its existing query exact."""
    fragment = ""
    if "#" in url:
        url, _, fragment = url.partition("#")
        fragment = "#" + fragment
    sep = "&" if "?" in url else "?"
    if url.endswith(("?", "&")):
        sep = ""
    return f"{url}{sep}{name}={quote(value, safe='')}{fragment}"


def next_link(values: list[str]) -> str | None:
    """The target of the ``rel="next"`` entry among ``Link`` header values (RFC 8288), if any."""
    for value in values:
        for m in _LINK_PART.finditer(value):
            params = m.group(2)
            for param in params.split(";"):
                key, _, val = param.strip().partition("=")
                if (
                    key.strip().lower() == "rel"
                    and "next" in val.strip().strip('"').lower().split()
                ):
                    return m.group(1)
    return None
