"""``imagevet classify REF...``: the Image Access Management category of each image."""

from __future__ import annotations

import typer

from imagevet.category import Classification
from imagevet.cli.common import (
    EXIT_USAGE,
    console,
    fail,
    hub_settings,
    print_json,
    run,
    terminal_safe,
)
from imagevet.errors import InvalidReferenceError
from imagevet.reference import Reference

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("classify")(classify_command)


def classify_command(
    refs: list[str] = typer.Argument(..., help="Image references, e.g. nginx bitnami/redis:7."),
    org: str | None = typer.Option(
        None, "--org", help="Your Docker Hub organization (its images are Organization images)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Classify images as Docker Hub's Image Access Management does.

    Docker Official Image, Verified Publisher, Docker-Sponsored Open Source, Organization image or
    Community image; "(unverified)" when the Hub catalog could not be asked.  Uses
    IMAGEVET_HUB_URL (default https://hub.docker.com); the catalog needs no credentials.
    """
    try:
        parsed = [Reference.parse(r) for r in refs]
    except InvalidReferenceError as e:
        fail(str(e), EXIT_USAGE)
    url, _ = hub_settings()

    async def _go() -> list[Classification]:
        from imagevet.hub import CatalogClassifier, HubClient  # aiohttp: only when asking the Hub

        async with HubClient(url) as client:
            return await CatalogClassifier(client, org=org).classify(parsed)

    results = run(_go)
    if as_json:
        print_json(
            [
                {
                    "input": text,
                    "repository": str(c.reference),
                    "category": str(c.category),
                    "label": c.category.label,
                    "verified": c.verified,
                }
                for text, c in zip(refs, results, strict=True)
            ]
        )
        return
    width = max(len(str(c.reference)) for c in results)
    for c in results:
        line = f"{str(c.reference):<{width}}  {c.describe()}"
        console.print(terminal_safe(line, markup=False), markup=False)
