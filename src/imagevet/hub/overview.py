"""The provenance texts of a mirror repository: its short description and its README overview.

The overview is what a person opening the repository on Docker Hub reads: where the image comes
from, which policy entry approved it, who approved it and until when, each mirrored tag with its
source digest, and when the mirror was last synced.  It is rendered from plain values, fully
determined by them (tags are sorted), so an unchanged mirror renders the same text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

__all__ = [
    "DESCRIPTION_MAX",
    "FULL_DESCRIPTION_MAX",
    "fit",
    "render_overview",
    "short_description",
]

DESCRIPTION_MAX = 100
"""Docker Hub's limit on a repository's short description (dockerhub-api.md §3)."""
FULL_DESCRIPTION_MAX = 25000
"""Docker Hub's limit on a repository's full description (README)."""
_ELLIPSIS = "…"

Timestamp = str | dt.datetime


def fit(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + _ELLIPSIS


def short_description(upstream: str) -> str:
    """The short description of a mirror: ``Vetted mirror of docker.io/bitnami/redis``."""
    return fit(f"Vetted mirror of {upstream}", DESCRIPTION_MAX)


def _when(value: Timestamp | None) -> str:
    if value is None:
        return "never"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.replace(microsecond=0).isoformat() + "Z"
    return value


def _cell(value: str) -> str:
    """A Markdown table cell: no line breaks, pipes escaped."""
    return " ".join(value.split()).replace("|", "\\|")


def _code(value: str) -> str:
    return f"`{_cell(value).replace('`', '')}`"


def render_overview(
    *,
    upstream: str,
    policy_entry: str,
    approver: str,
    approval_expiry: Timestamp | None,
    tags: Iterable[tuple[str, str, Timestamp]],
    last_sync: Timestamp | None,
) -> str:
    """Render the ``full_description`` Markdown of a mirror (at most 25000 characters).

    ``tags`` holds ``(tag, source digest, synced at)``; times may be ISO strings or datetimes.
    When the tag table would not fit, it ends with a line saying how many tags were left out.
    """
    head = [
        f"# Vetted mirror of {_cell(upstream)}",
        "",
        "This repository is a byte-for-byte mirror kept by imagevet: every image here has the",
        "digest it has upstream. Do not push to it by hand; change the policy instead.",
        "",
        "| | |",
        "|---|---|",
        f"| Upstream | {_code(upstream)} |",
        f"| Policy entry | {_code(policy_entry)} |",
        f"| Approved by | {_cell(approver) or 'unknown'} |",
        f"| Approval expires | {_cell(_when(approval_expiry)) if approval_expiry else 'no expiry'} |",
        f"| Last sync | {_cell(_when(last_sync))} |",
        "",
        "## Mirrored tags",
        "",
    ]
    rows = [
        f"| {_code(tag)} | {_code(digest)} | {_cell(_when(synced))} |"
        for tag, digest, synced in sorted(tags, key=lambda t: t[0])
    ]
    if not rows:
        return "\n".join([*head, "No tags mirrored yet.", ""])
    table = ["| Tag | Source digest | Synced at |", "|---|---|---|"]
    budget = FULL_DESCRIPTION_MAX - len("\n".join(head + table)) - 80
    kept = 0
    for row in rows:
        if budget - len(row) - 1 < 0:
            break
        budget -= len(row) + 1
        kept += 1
    lines = head + table + rows[:kept]
    if kept < len(rows):
        lines += ["", f"… and {len(rows) - kept} more tags (too many to list here)."]
    return fit("\n".join(lines) + "\n", FULL_DESCRIPTION_MAX)
