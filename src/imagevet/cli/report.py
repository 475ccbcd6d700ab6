"""``imagevet report``: the catalog people read, as a static site and as a pull-request comment.

Reads the policy, its lock and the state directory (``.imagevet/``, or ``IMAGEVET_STATE_DIR``:
the last run summary, held updates, the source-index cache); never a registry.  A damaged lock entry is shown as damaged on
its image's page and the report still exits 0.  ``SOURCE_DATE_EPOCH`` (seconds) fixes the time
the report is made at (shown in it, and what approval expiry is judged against), for
reproducible output.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from imagevet.cli._policy import POLICY_OPTION, load, now_utc, state_store
from imagevet.cli.common import EXIT_USAGE, console, err_console, fail, handle_errors, terminal_safe

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)


def _report_time() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return now_utc()
    try:
        return datetime.fromtimestamp(int(epoch), UTC)
    except (ValueError, OverflowError, OSError):
        fail(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {terminal_safe(repr(epoch))}",
             EXIT_USAGE)


def report_command(
    policy: Path = POLICY_OPTION,
    html: Path | None = typer.Option(
        None, "--html", metavar="DIR", help="Write the static site (index.html, a page per image) here."
    ),
    markdown: str | None = typer.Option(
        None, "--markdown", metavar="FILE", help="Write the markdown comment to FILE ('-': stdout)."
    ),
    markdown_limit: int = typer.Option(
        65536, "--markdown-limit", min=1000, help="Largest comment in bytes (GitHub's limit: 65536)."
    ),
) -> None:
    """Write the catalog of vetted images: a static site (--html DIR) and/or a markdown
    pull-request comment (--markdown FILE); no registry is contacted."""
    if html is None and markdown is None:
        fail("nothing to write: give --html DIR and/or --markdown FILE ('-' for stdout)", EXIT_USAGE)
    loaded = load(policy)
    now = _report_time()
    from imagevet.report import build_report, render_markdown

    declared = loaded.every_entry
    state = state_store(declared)  # .imagevet/ next to the policy, or IMAGEVET_STATE_DIR
    from imagevet.report.evidence import lock_evidence_source

    evidence = lock_evidence_source(loaded.lock, loaded.lock_path)  # files beside the lock
    report = build_report(declared, loaded.lock, state, now=now, evidence=evidence)
    say = err_console if markdown == "-" else console
    with handle_errors():
        if html is not None:
            from imagevet.report.html import render_site, write_site

            written = write_site(html, render_site(report))
            say.print(
                terminal_safe(f"wrote {written[-1]} and {len(written) - 1} image page"
                              f"{'' if len(written) == 2 else 's'}"),
                highlight=False,
            )
        if markdown is not None:
            text = render_markdown(report, limit=markdown_limit)
            if markdown == "-":
                sys.stdout.write(text)
                sys.stdout.flush()
            else:
                from imagevet.statefiles import write_state_file

                write_state_file(Path(markdown), text.encode("utf-8"), follow_dir=True)
                say.print(terminal_safe(f"wrote {markdown}"), highlight=False)
    for image in report.images:
        if image.damaged:
            err_console.print(
                f"[yellow]warning:[/] {terminal_safe(image.name)}: lock records damaged "
                "(shown on its page; `imagevet lock` resolves them again)", highlight=False,
            )
    for problem in report.problems:
        err_console.print(f"[yellow]warning:[/] {terminal_safe(problem)}", highlight=False)
