"""The catalog as GitHub-flavoured markdown: a pull-request comment.

The same content as the HTML site: a table of every image (mirror, newest tag, approval, last
sync, held updates), then a section per image with its tags and digests, the ``docker pull``
lines and what waits for a person.  Every value read from a file goes through :func:`md` (or
:func:`code`): markdown and HTML characters are escaped, newlines become spaces, control
characters become visible ``\\xNN`` text, and one value is at most 300 characters, so a policy
cannot inject links, mentions of HTML, break the tables or hide text.

GitHub refuses a comment over 65,536 characters: the text is built block by block (the header,
each table row, each image's section) and stops before the block that would cross ``limit``
(counted in UTF-8 bytes, never fewer than characters), ending with a note saying what was left
out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from imagevet.report.model import ImageView, Report, TagView
from imagevet.report.text import clip, visible_char

__all__ = ["GITHUB_COMMENT_LIMIT", "code", "md", "render_markdown"]

GITHUB_COMMENT_LIMIT = 65536
_VALUE_MAX = 300
_INDEX_TAGS = 1
_MD_SPECIAL = {
    "\\": "\\\\", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]", "|": "\\|",
    "~": "\\~", "<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " ",
}
_CODE_UNSAFE = re.compile(r"[`|<>\\\x00-\x1f\x7f-\x9f\u2028\u2029]")


def md(value: object, *, limit: int = _VALUE_MAX) -> str:
    """``value`` as markdown text that renders as exactly that text (clipped to ``limit``)."""
    out: list[str] = []
    for ch in clip(str(value), limit):
        if ch in _MD_SPECIAL:
            out.append(_MD_SPECIAL[ch])
            continue
        seen = visible_char(ch)
        out.append(seen.replace("\\", "\\\\") if seen is not None else ch)
    return "".join(out)


def code(value: object, *, limit: int = _VALUE_MAX) -> str:
    """``value`` as a code span, or as escaped text when it holds a character a code span
    cannot carry (a backtick, ``|`` in a table, ``<``, a control character)."""
    text = clip(str(value), limit)
    if not text or _CODE_UNSAFE.search(text) or text != text.strip() or any(map(visible_char, text)):
        return md(text, limit=limit)
    return f"`{text}`"


def _approval(image: ImageView) -> str:
    a = image.approval
    out = f"approved by {md(a.approved_by)}"
    if a.ticket:
        out += f" ({md(a.ticket)})"
    if a.approved_on is not None:
        out += f" on {a.approved_on.isoformat()}"
    if a.expires is not None:
        if a.status == "expired":
            out += f", **expired {a.expires.isoformat()}**"
        elif a.status == "expiring":
            left = a.days_left or 0
            when = "today" if left == 0 else f"in {left} day{'' if left == 1 else 's'}"
            out += f", **expires {a.expires.isoformat()}** ({when})"
        else:
            out += f", expires {a.expires.isoformat()}"
    return out


def _sync(image: ImageView) -> str:
    s = image.last_sync
    if s.result == "not-synced":
        return "not synced yet"
    when = s.at.strftime("%Y-%m-%d %H:%M UTC") if s.at is not None else "unknown time"
    return f"{s.result} ({when})"


def _short(digest: object) -> str:
    text = str(digest)
    return text[:19] if text.startswith("sha256:") else text[:24]


def _status(image: ImageView) -> str:
    marks = []
    if image.damaged:
        marks.append("**lock damaged**")
    elif not image.locked:
        marks.append("not locked yet")
    if image.approval.status == "expired":
        marks.append("**approval expired**")
    elif image.approval.status == "expiring":
        marks.append("**approval expiring**")
    if image.last_sync.result == "failed":
        marks.append("**last sync failed**")
    if image.held:
        marks.append(f"{len(image.held)} held")
    return ", ".join(marks) or "ok"


def _row(image: ImageView) -> str:
    newest = next((t for t in image.tags if t.tag is not None), None)
    pull = code(image.pull_ref(newest, by_digest=False)) if newest is not None else "—"
    more = len(image.tags) - _INDEX_TAGS
    if newest is not None and more > 0:
        pull += f" (+{more})"
    return (f"| {md(image.name)} | {pull} | {md(image.mode)} | "
            f"{_approval(image)} | {_sync(image)} | {_status(image)} |\n")


def _pull_block(image: ImageView, tags: Iterable[TagView]) -> str:
    lines: list[str] = []
    for t in tags:
        for by_digest in (False, True):
            ref = image.pull_ref(t, by_digest=by_digest)
            if ref is not None:
                lines.append(f"docker pull {ref}" if image.pullable else ref)
    if not lines:
        return ""
    if all(not _CODE_UNSAFE.search(line) and not any(map(visible_char, line)) for line in lines):
        return "```sh\n" + "\n".join(lines) + "\n```\n"
    return "".join(f"- {md(line)}\n" for line in lines)


def _tag_table(image: ImageView) -> str:
    out = "| tag | digest | platforms | referrers | locked |\n| --- | --- | --- | --- | --- |\n"
    for t in image.tags:
        mirror = ""
        if t.mirror_digest is not None and t.mirror_digest != t.digest:
            mirror = f"<br>mirror {code(t.mirror_digest)}"
        elif t.mirror_digest is None:
            mirror = "<br>mirror digest not known yet"
        platforms = ", ".join(t.platforms) or "—"
        evidence = "".join(f"<br>{md(e.kind)}: {md(e.detail)}" for e in t.evidence)
        approved = ""
        if t.approved is not None:
            approved = (f"<br>approved by {md(t.approved.by)} on {t.approved.at.date().isoformat()}: "
                        f"{md(t.approved.reason, limit=120)}")
        out += (f"| {code(t.tag) if t.tag is not None else '(digest)'} | {code(t.digest)}{mirror} | "
                f"{md(platforms)} | {len(t.referrers)}{evidence} | {t.resolved_at.date().isoformat()}"
                f"{approved} |\n")
    return out


def _section(image: ImageView) -> str:
    out = f"\n### {md(image.name)}\n\n"
    if image.description:
        out += f"{md(image.description)}\n\n"
    out += f"- upstream {code(image.upstream)} → mirror {code(image.mirror)}, mode {md(image.mode)}\n"
    platforms = ", ".join(image.platforms) if image.platforms is not None else "every platform"
    referrers = "signatures, SBOMs and attestations copied" if image.referrers else "no referrers copied"
    out += f"- {md(platforms)}; {referrers}\n"
    out += f"- {_approval(image)}"
    if image.approval.reason:
        out += f": {md(image.approval.reason)}"
    out += "\n"
    out += f"- last sync: {_sync(image)}\n"
    for message in image.last_sync.messages[:5]:
        out += f"  - {md(message)}\n"
    if image.damaged:
        out += "\n**The lock records of this image are damaged** (`imagevet lock` resolves them again):\n\n"
        out += "".join(f"- {md(p)}\n" for p in image.damaged[:10])
    elif not image.locked:
        out += "\nNot locked yet: run `imagevet lock`.\n"
    if image.held:
        out += "\n**Held updates** (waiting for approval):\n\n"
        for h in image.held:
            since = f" since {h.since.date().isoformat()}" if h.since is not None else ""
            now = f" → {code(h.digest)}" if h.digest else ""
            out += f"- {code(h.tag)}{now}{since}: {md(h.reason)}\n"
    if image.tags:
        out += "\n" + _tag_table(image)
        pull = _pull_block(image, image.tags)
        if pull:
            out += "\n" + pull
    return out


def _header(report: Report) -> str:
    n = len(report.images)
    out = "## imagevet catalog\n\n"
    out += (f"{n} vetted image{'' if n == 1 else 's'} from {code(report.policy_name)}, mirrored to "
            f"{code(report.target)}.")
    run = report.last_run
    if run is not None:
        when = run.at.strftime("%Y-%m-%d %H:%M UTC") if run.at is not None else "unknown time"
        counts = ", ".join(f"{md(k)} {v}" for k, v in run.counts)
        out += f" Last sync {when}: {'ok' if run.ok else '**failed**'}"
        out += f" ({counts})." if counts else "."
    else:
        out += " Not synced yet."
    out += f" Generated {report.generated_at.strftime('%Y-%m-%d %H:%M UTC')}.\n"
    for problem in report.problems[:10]:
        out += f"\n> **warning:** {md(problem)}\n"
    if report.images:
        out += ("\n| image | pull | mode | approval | last sync | status |\n"
                "| --- | --- | --- | --- | --- | --- |\n")
    return out


def render_markdown(report: Report, *, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The catalog as one markdown comment of at most ``limit`` UTF-8 bytes."""
    blocks = [_header(report), *(_row(i) for i in report.images), *(_section(i) for i in report.images)]
    total = len(blocks)
    note_room = 200
    out: list[str] = []
    size = 0
    for block in blocks:
        n = len(block.encode("utf-8"))
        if size + n + note_room > limit:
            break
        out.append(block)
        size += n
    if len(out) < total:
        shown = max(0, len(out) - 1 - len(report.images))
        out.append(
            f"\n*Truncated to fit a comment: {shown} of {len(report.images)} images shown in "
            "full; `imagevet report --html` has the whole catalog.*\n"
        )
    return "".join(out)
