"""``imagevet doctor``: the org's IAM settings, what the token can do, and the policy against IAM."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from imagevet.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    console,
    fail,
    handle_errors,
    hub_settings,
    print_json,
    run,
    terminal_safe,
)
from imagevet.errors import redact_url
from imagevet.hub import (
    DoctorReport,
    HubClient,
    HubCredentials,
    Level,
    SecretKind,
    diagnose,
)
from imagevet.policy import load_policy
from imagevet.reference import Reference

__all__ = ["register"]

_STYLE = {Level.ERROR: "bold red", Level.WARNING: "yellow", Level.INFO: "dim"}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)


def _policy_sources(path: Path) -> list[tuple[str, Reference]]:
    """The ``(entry name, source repository)`` pairs of the policy at ``path``."""
    policy = load_policy(path, env=os.environ)
    return [(entry.name, entry.source) for entry in policy.entries]


def _org(org: str | None, creds: HubCredentials | None) -> str:
    if org:
        return org
    if creds is not None and creds.kind is SecretKind.OAT:
        return creds.identifier  # an OAT logs in with the org name
    fail("give --org (or use an organization access token, whose username is the org)", EXIT_USAGE)


def doctor_command(
    org: str | None = typer.Option(None, "--org", help="The Docker Hub organization to check."),
    policy: Path | None = typer.Option(
        None, "--policy", help="Policy file whose entries to check against IAM.", exists=True
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report."),
) -> None:
    """Check the org: IAM settings, the token's abilities, and policy entries IAM already allows.

    Credentials come from DOCKER_HUB_USERNAME and DOCKER_HUB_TOKEN (a PAT, a password, or an
    organization access token with the org name as username); the Hub from IMAGEVET_HUB_URL.
    Exits 1 when an error is found (the token cannot log in or read teams).
    """
    url, creds = hub_settings()
    org_name = _org(org, creds)
    sources: Sequence[tuple[str, Reference]] = ()
    if policy is not None:
        with handle_errors():  # a bad policy file is a usage error with its own exit code
            sources = _policy_sources(policy)

    async def _go() -> DoctorReport:
        async with HubClient(url, creds) as client:
            return await diagnose(client, org_name, sources=sources)

    report = run(_go)
    if as_json:
        print_json(_to_json(report, url))
    else:
        _print(report, url)
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


def _to_json(report: DoctorReport, url: str) -> dict[str, Any]:
    s = report.settings
    return {
        "ok": report.ok,
        "hub": redact_url(url),
        "org": report.org,
        "identity": report.identity,
        "settings": None
        if s is None
        else {
            "enabled": s.enabled,
            "allow_official_images": s.allow_official,
            "allow_verified_publishers": s.allow_verified_publishers,
        },
        "abilities": [
            {"ability": str(a.ability), "status": str(a.status), "detail": a.detail}
            for a in report.abilities
        ],
        "entries": [
            {
                "entry": e.entry,
                "source": str(e.classification.reference),
                "category": str(e.classification.category),
                "verified": e.classification.verified,
                "allowed_by_iam": e.allowed,
            }
            for e in report.entries
        ],
        "findings": [{"level": str(f.level), "message": f.message} for f in report.findings],
    }


def _say(text: str) -> None:
    """Print one line of the report; what came from the Hub or the policy is escaped."""
    console.print(terminal_safe(text, markup=False), markup=False)


def _print(report: DoctorReport, url: str) -> None:
    _say(f"Docker Hub {redact_url(url)}, organization {report.org}")
    _say(f"credentials: {report.identity or 'none'}")
    s = report.settings
    if s is None:
        console.print("Image Access Management: unknown (settings not readable)")
    elif not s.enabled:
        console.print("Image Access Management: disabled")
    else:
        console.print(
            "Image Access Management: enabled; allowed: organization images, "
            f"official images {'yes' if s.allow_official else 'no'}, "
            f"verified publishers {'yes' if s.allow_verified_publishers else 'no'}, "
            "community and sponsored OSS no"
        )
    for a in report.abilities:
        _say(f"  {a.status:<13} {a.ability}")
    for e in report.entries:
        allowed = {None: "?", True: "allowed", False: "blocked"}[e.allowed]
        _say(
            f"  entry {e.entry}: {e.classification.reference} "
            f"{e.classification.describe()} ({allowed} by IAM)"
        )
    for f in report.findings:
        console.print(f"[{_STYLE[f.level]}]{f.level}:[/] ", end="")
        _say(f.message)
    if not report.findings:
        console.print("no problems found")
