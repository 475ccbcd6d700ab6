"""The catalog as a static site: ``index.html`` and one page per image, written into a directory.

Pages come from the Jinja2 templates of ``templates/`` with autoescape on; every value printed
goes through one ``finalize`` step first: hidden characters (ANSI escapes, bidi overrides) made
visible (newlines and tabs kept: HTML shows them as spaces) and at most 4000 characters kept,
then HTML-escaped.  The CSS is inline, there is no JavaScript, and the layout is one column that
wraps long digests inside their box on a phone.

Rendering is a pure function of the :class:`Report` (the generation time is the report's), so
the same inputs give the same bytes.  :func:`write_site` writes into the directory only: each
file goes to a fresh temporary name there and is renamed over its page (a symbolic link at a
page's name is replaced, never followed), the index last; pages an earlier report wrote that no
image has now are removed (only names it can have written: ``[a-z0-9-]+.html``, listed in
``.imagevet-report.json``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from imagevet.errors import ImagevetError
from imagevet.report.model import PAGE_RE, Report
from imagevet.report.text import clip, visible
from imagevet.statefiles import open_dir, read_state_file, write_state_file

__all__ = ["INDEX", "MANIFEST", "render_site", "write_site"]

INDEX = "index.html"
MANIFEST = ".imagevet-report.json"
_VALUE_MAX = 4000


def _shown(value: Any, markup: type) -> Any:
    """What ``{{ value }}`` prints before escaping: text made visible and cut (see the module
    docstring); markup the templates made (macros) as it is; None as nothing."""
    if value is None:
        return ""
    if isinstance(value, markup) or not isinstance(value, str):
        return value
    return clip(visible(value, keep="\n\t"), _VALUE_MAX)  # white space in HTML text


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _day(value: date) -> str:
    return value.isoformat()


def _short(value: object) -> str:
    text = str(value)
    return text[:19] if text.startswith("sha256:") else text[:24]


def _environment() -> Any:
    import jinja2  # only the report command loads it
    import markupsafe

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("imagevet.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=lambda value: _shown(value, markupsafe.Markup),
    )
    env.filters.update(when=_when, day=_day, short=_short)
    return env


def render_site(report: Report) -> dict[str, bytes]:
    """Every file of the site: ``index.html`` and each image's page, by file name."""
    env = _environment()
    files: dict[str, bytes] = {}
    page = env.get_template("image.html.j2")
    for image in report.images:
        files[image.page] = page.render(report=report, image=image).encode("utf-8")
    files[INDEX] = env.get_template("index.html.j2").render(report=report).encode("utf-8")
    return files


def _written_before(directory: Path) -> list[str]:
    try:
        data = read_state_file(directory / MANIFEST, limit=1 << 20, follow_dir=True)
        doc = json.loads(data) if data is not None else None
    except (ValueError, RecursionError, ImagevetError):  # damaged: nothing is removed
        return []
    pages = doc.get("pages") if isinstance(doc, dict) else None
    return [p for p in pages if isinstance(p, str) and PAGE_RE.fullmatch(p)] if isinstance(pages, list) else []


def write_site(directory: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write ``files`` (from :func:`render_site`) into ``directory`` (created if missing); see the
    module docstring.  Returns the paths written, the index last.  StateError when the directory
    or a file cannot be written."""
    for name in files:
        if name != INDEX and not PAGE_RE.fullmatch(name):
            raise ValueError(f"not a page name: {name!r}")
    before = _written_before(directory)
    written: list[Path] = []
    pages = sorted(n for n in files if n != INDEX)
    for name in [*pages, INDEX]:
        path = directory / name
        write_state_file(path, files[name], follow_dir=True, replace_link=True)
        written.append(path)
    doc = {"version": 1, "pages": pages}
    write_state_file(directory / MANIFEST, (json.dumps(doc, indent=2) + "\n").encode(),
                     follow_dir=True, replace_link=True)
    stale = [p for p in before if p not in files]
    if stale:
        with open_dir(directory, create=False, follow=True) as dfd:
            for name in stale:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=dfd)
    return written
