"""``WWW-Authenticate`` challenges (RFC 9110 11.6.1) as registries send them: Basic and Bearer."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Challenge", "parse_challenges", "pick_challenge"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SPACE = " \t"


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: ``scheme`` lowercased (``bearer``, ``basic``), params with lowercased names."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted-string starting at ``text[pos] == '"'``; return its value and the end."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if ch == '"':
            return "".join(out), pos + 1
        out.append(ch)
        pos += 1
    return "".join(out), pos


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Parse every challenge in the ``WWW-Authenticate`` header values (one header may hold several)."""
    out: list[Challenge] = []
    for value in values:
        pos = 0
        scheme: str | None = None
        params: dict[str, str] = {}
        while True:
            pos = _skip(value, pos, _SPACE + ",")
            m = _TOKEN.match(value, pos)
            if not m:
                break
            name = m.group(0)
            after = _skip(value, m.end(), _SPACE)
            if scheme is not None and after < len(value) and value[after] == "=":
                pos = _skip(value, after + 1, _SPACE)
                if pos < len(value) and value[pos] == '"':
                    val, pos = _quoted(value, pos)
                else:
                    vm = _TOKEN.match(value, pos)
                    val = vm.group(0) if vm else ""
                    pos = vm.end() if vm else pos
                params[name.lower()] = val
                continue
            if scheme is not None:
                out.append(Challenge(scheme, params))
            scheme, params = name.lower(), {}
            pos = m.end()
            # a token68 after the scheme (``Negotiate abc==``) is not used by registries: skip it
            t68 = re.match(r"[ \t]+[A-Za-z0-9\-._~+/]+=*[ \t]*(?:,|$)", value[pos:])
            if t68 and "=" not in t68.group(0).rstrip("=, \t"):
                pos += t68.end()
        if scheme is not None:
            out.append(Challenge(scheme, params))
    return out


def pick_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge to answer: Bearer (with a realm) before Basic; None when neither is offered."""
    basic: Challenge | None = None
    for c in challenges:
        if c.scheme == "bearer" and c.realm:
            return c
        if c.scheme == "basic" and basic is None:
            basic = c
    return basic
