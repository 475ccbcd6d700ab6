"""The catalog people read: ``imagevet report --html DIR`` and ``--markdown FILE``.

:func:`build_report` (``model``) gathers what the policy vets, what the lock pinned and what the
state store says about the last run and held updates, with no network; :func:`render_markdown`
(``markdown``) writes it as a pull-request comment; ``imagevet.report.html`` (``render_site``,
``write_site``) as a static site, with Jinja2, imported only when HTML is asked for.
"""

from __future__ import annotations

from imagevet.report.markdown import GITHUB_COMMENT_LIMIT, render_markdown
from imagevet.report.model import (
    ApprovalView,
    Evidence,
    EvidenceSource,
    HeldView,
    ImageView,
    Report,
    RunView,
    SyncView,
    TagView,
    build_report,
    newest_first,
    page_names,
)

__all__ = [
    "GITHUB_COMMENT_LIMIT",
    "ApprovalView",
    "Evidence",
    "EvidenceSource",
    "HeldView",
    "ImageView",
    "Report",
    "RunView",
    "SyncView",
    "TagView",
    "build_report",
    "newest_first",
    "page_names",
    "render_markdown",
]
