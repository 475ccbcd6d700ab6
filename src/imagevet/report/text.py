"""Text from files made safe to show: control and format characters made visible, length capped."""

from __future__ import annotations

import unicodedata

__all__ = ["clip", "visible", "visible_char"]

_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})


def visible_char(ch: str) -> str | None:
    """The visible form (``\\x1b``, ``\\u202e``) of a control or format character (ANSI escapes,
    bidirectional overrides, zero-width characters, unassigned code points); None for others."""
    if unicodedata.category(ch) not in _HIDDEN:
        return None
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str, *, keep: str = "") -> str:
    """``text`` with every hidden character but those of ``keep`` shown as its escape (see
    :func:`visible_char`)."""
    return "".join(ch if ch in keep else visible_char(ch) or ch for ch in text)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
