"""``imagevet check [PATHS...]``: find every image reference, judge it, report it, and fix it."""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import typer

from imagevet import __version__
from imagevet.category import AccessSettings, Classification
from imagevet.check import (
    CheckContext,
    CheckReport,
    FixPlan,
    Severity,
    VettedImage,
    check_scan,
    format_verdict,
    plan_fixes,
    read_vetted,
    repositories_to_classify,
    scan_paths,
    to_sarif,
    vetted_from_lock,
    write_fixes,
)
from imagevet.check.scan import ScanResult
from imagevet.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    console,
    err_console,
    fail,
    handle_errors,
    hub_settings,
    run,
    terminal_safe,
)
from imagevet.errors import ImagevetError

__all__ = ["register"]

EXIT_VIOLATIONS = 1
"""``check`` found an error or warning at or above ``--severity``."""


class OutputFormat(enum.StrEnum):
    HUMAN = "human"
    JSON = "json"
    SARIF = "sarif"


class Permission(enum.StrEnum):
    ALLOW = "allow"
    BLOCK = "block"


def register(app: typer.Typer) -> None:
    app.command("check")(check_command)


def check_command(
    paths: list[Path] = typer.Argument(None, help="Files and directories to check (default: .)."),
    policy: Path | None = typer.Option(None, "--policy", help="imagevet policy file (vetted repositories)."),
    lock: Path | None = typer.Option(None, "--lock", help="imagevet lock file (vetted digests)."),
    vetted: Path | None = typer.Option(
        None, "--vetted", help="JSON list of {source, mirror, tags: {tag: digest}} (instead of --policy/--lock)."
    ),
    org: str | None = typer.Option(None, "--org", help="The Docker Hub organization (default: the mirrors' namespace)."),
    offline: bool = typer.Option(False, "--offline", help="Do not ask Docker Hub: static categories, declared IAM settings."),
    iam_official: Permission | None = typer.Option(
        None, "--iam-official", help="Whether IAM allows Docker Official Images (default: from the Hub, else allow)."
    ),
    iam_verified: Permission | None = typer.Option(
        None, "--iam-verified", help="Whether IAM allows Verified Publisher images (default: from the Hub, else allow)."
    ),
    output_format: OutputFormat = typer.Option(OutputFormat.HUMAN, "--format", help="human, json or sarif."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report to FILE instead of stdout."),
    severity: Severity = typer.Option(
        Severity.NOTE, "--severity", help="Report results at or above this level; errors and warnings among them fail."
    ),
    fix: bool = typer.Option(False, "--fix", help="Rewrite fixable references to their vetted mirror, pinned by digest."),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --fix: print a unified diff, write nothing."),
    exclude: list[str] = typer.Option([], "--exclude", help="Glob of paths to skip (repeatable)."),
    show_ok: bool = typer.Option(False, "--show-ok", help="Human output: list references that are fine too."),
    max_file_size: str = typer.Option(
        "4M", "--max-file-size", metavar="SIZE",
        help="Files larger than SIZE (bytes, or with K or M) are reported, not read.",
    ),
) -> None:
    """Find every image reference in Dockerfiles, Compose, Kubernetes, Helm values and workflows;
    judge each against the org's Image Access Management settings and the vetted mirrors."""
    fmt = OutputFormat.JSON if as_json else output_format
    if dry_run and not fix:
        fail("--dry-run needs --fix", EXIT_USAGE)
    cap = _parse_size(max_file_size)
    targets = list(paths or [Path(".")])
    for p in targets:
        if not p.exists():
            fail(f"no such file or directory: {p}", EXIT_USAGE)
    root = Path.cwd()
    with handle_errors():
        mirrors = _load_vetted(vetted, policy, lock)
    the_org = org or _org_from_mirrors(mirrors)
    scan = scan_paths(targets, root=root, exclude=exclude, max_file_size=cap)
    declared = AccessSettings(
        the_org or "",
        enabled=True,
        allow_official=iam_official is not Permission.BLOCK,
        allow_verified_publishers=iam_verified is not Permission.BLOCK,
    )
    context, notes = _context(scan, the_org, declared, mirrors, offline=offline,
                              iam_declared=iam_official is not None or iam_verified is not None)
    report = check_scan(scan, context, notes=notes)
    if fix:
        plan = plan_fixes(
            report.issues(severity),
            {f.path: (f.file, f.text) for f in report.files},
            trees={f.path: f.tree for f in report.files if f.tree is not None},
        )
        _show_fixes(plan, dry_run=dry_run, to_stderr=fmt is not OutputFormat.HUMAN or output is not None)
        if not dry_run and plan.files:
            with handle_errors():
                write_fixes(plan)
            rescan = scan_paths(targets, root=root, exclude=exclude, max_file_size=cap)
            report = check_scan(rescan, context, notes=notes)
    _emit(report, fmt, severity, output, show_ok=show_ok)
    raise typer.Exit(EXIT_VIOLATIONS if report.failed(severity) else EXIT_OK)


_SIZE_UNITS = {"": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20}


def _parse_size(text: str) -> int:
    """``4M``, ``512K`` or a byte count; a usage error otherwise."""
    raw = text.strip().upper()
    digits = raw.rstrip("KMIB")
    unit = raw[len(digits):]
    if not digits.isdigit() or unit not in _SIZE_UNITS or int(digits) <= 0:
        fail(f"--max-file-size: expected bytes, or a number with K or M (4M), got {text!r}", EXIT_USAGE)
    return int(digits) * _SIZE_UNITS[unit]


def _load_vetted(vetted: Path | None, policy: Path | None, lock: Path | None) -> list[VettedImage]:
    if vetted is not None:
        return read_vetted(vetted)
    if policy is None and lock is None:
        return []
    if policy is None:
        fail("--lock needs --policy (or pass --vetted FILE)", EXIT_USAGE)
    from imagevet.lock import lock_path_for, read_lock
    from imagevet.policy import load_policy

    with handle_errors():
        loaded = load_policy(policy, env=os.environ)
        return vetted_from_lock(loaded, read_lock(lock or lock_path_for(policy)))


def _org_from_mirrors(mirrors: Sequence[VettedImage]) -> str | None:
    namespaces = {v.mirror.repository.split("/", 1)[0] for v in mirrors if v.mirror.is_docker_hub}
    return namespaces.pop() if len(namespaces) == 1 else None


def _hub_wanted(env: Mapping[str, str]) -> bool:
    return bool(env.get("IMAGEVET_HUB_URL") or (env.get("DOCKER_HUB_USERNAME") and env.get("DOCKER_HUB_TOKEN")))


def _context(
    scan: ScanResult,
    org: str | None,
    declared: AccessSettings,
    mirrors: list[VettedImage],
    *,
    offline: bool,
    iam_declared: bool,
) -> tuple[CheckContext, list[str]]:
    """Fill the judgement context: from Docker Hub when configured, else the offline rules."""
    notes: list[str] = []
    if org is None:
        notes.append("no --org: no image counts as an organization image")
    if offline or not _hub_wanted(os.environ):
        why = "--offline" if offline else "no Docker Hub settings (IMAGEVET_HUB_URL, DOCKER_HUB_USERNAME/TOKEN)"
        notes.append(
            f"offline ({why}): Hub categories not looked up; repositories outside library/ and the "
            "org are treated as Community (unverified); IAM settings as declared"
        )
        return CheckContext(org, declared, mirrors, {}, "declared"), notes
    refs = repositories_to_classify(scan.found, org=org, vetted=mirrors)
    access, categories, source = run(lambda: _ask_hub(org, declared, refs, read_settings=not iam_declared))
    unverified = sum(1 for c in categories.values() if not c.verified)
    if unverified:
        notes.append(f"{unverified} repositories could not be classified on Docker Hub: treated as Community (unverified)")
    return CheckContext(org, access, mirrors, categories, source), notes


async def _ask_hub(
    org: str | None, declared: AccessSettings, refs: list[Any], *, read_settings: bool
) -> tuple[AccessSettings, dict[str, Classification], str]:
    from imagevet.hub.categories import CatalogClassifier
    from imagevet.hub.client import HubClient
    from imagevet.hub.settings import read_access_settings

    url, credentials = hub_settings()
    async with HubClient(url, credentials) as client:
        access, source = declared, "declared"
        if read_settings and org and credentials is not None:
            try:
                access, source = await read_access_settings(client, org), "hub"
            except ImagevetError as e:
                err_console.print(f"[yellow]warning:[/] cannot read {terminal_safe(org)}'s IAM settings ({terminal_safe(e)}); using the declared ones")
        classified = await CatalogClassifier(client, org=org).classify(refs)
    return access, {c.reference.name: c for c in classified}, source


def _show_fixes(plan: FixPlan, *, dry_run: bool, to_stderr: bool) -> None:
    out = err_console if to_stderr else console
    if dry_run:
        _write_diff(plan.diff(), sys.stderr if to_stderr else sys.stdout)
    else:
        for e in plan.edits:
            via = f" ({e.via})" if e.via else ""
            line = f"fixed {e.path}:{e.line}:{e.column}{via}  {e.old} -> {e.new}"
            out.print(terminal_safe(line, markup=False), markup=False)
    for v, why in plan.skipped:
        loc = v.found.location
        line = f"not fixed {loc.path}:{loc.line}:{loc.column}  {v.found.text}: {why}"
        out.print(terminal_safe(line, markup=False), markup=False)
    verb = "would change" if dry_run else "changed"
    out.print(f"{len(plan.edits)} edits {verb} in {len(plan.files)} files", markup=False)


def _write_diff(diff: str, stream: TextIO) -> None:
    """Write the dry-run diff so ``git apply`` and ``patch -p1`` accept it: as UTF-8 bytes, each
    line as the file has it (CRLF, form feed, no wrapping).  On a terminal, control and invisible
    characters are shown escaped (a CR right before a newline is harmless and kept); a diff saved
    to a file or piped on is verbatim, as ``git diff`` writes it, or it would not apply."""
    if stream.isatty():
        diff = "\r\n".join(
            terminal_safe(part, markup=False, multiline=True) for part in diff.split("\r\n")
        )
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.write(diff.encode("utf-8"))
        buffer.flush()
    else:
        stream.write(diff)
        stream.flush()


def _emit(report: CheckReport, fmt: OutputFormat, severity: Severity, output: Path | None, *, show_ok: bool) -> None:
    if fmt is OutputFormat.JSON:
        text = json.dumps(report.to_json(severity), indent=2) + "\n"
    elif fmt is OutputFormat.SARIF:
        text = json.dumps(to_sarif(report, threshold=severity, tool_version=__version__), indent=2) + "\n"
    else:
        shown = report.shown(severity) if show_ok else report.issues(severity)
        lines = [terminal_safe(format_verdict(v), markup=False) for v in shown]
        for note in report.notes:
            lines.append(terminal_safe(f"note: {note}", markup=False))
        s = report.summary(severity)
        lines.append(
            f"{s['references']} references in {s['files']} files: {s['ok']} ok, {s['error']} errors, "
            f"{s['warning']} warnings, {s['note']} notes; {s['fixable']} fixable with --fix"
            + (f"; {s['suppressed']} suppressed" if s["suppressed"] else "")
        )
        text = "\n".join(lines) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
