"""The provenance texts: short description and the full_description overview."""

from __future__ import annotations

import datetime as dt

from imagevet.hub.overview import (
    DESCRIPTION_MAX,
    FULL_DESCRIPTION_MAX,
    fit,
    render_overview,
    short_description,
)

DIGEST = "sha256:" + "a" * 64


def _render(**kw: object) -> str:
    values: dict[str, object] = {
        "upstream": "docker.io/bitnami/redis",
        "policy_entry": "redis",
        "approver": "alice@example.com",
        "approval_expiry": "2027-01-31",
        "tags": [("7.2", DIGEST, "2026-11-29T10:00:00Z"), ("7.0", DIGEST, "2026-11-28T09:00:00Z")],
        "last_sync": dt.datetime(2026, 11, 29, 10, 0, 5, 123, tzinfo=dt.UTC),
    }
    values.update(kw)
    return render_overview(**values)  # type: ignore[arg-type]


def test_fit() -> None:
    assert fit("short", 10) == "short"
    assert fit("x" * 10, 10) == "x" * 10
    assert fit("word " * 5, 10) == "word word…"
    assert len(fit("é" * 200, DESCRIPTION_MAX)) == DESCRIPTION_MAX


def test_short_description() -> None:
    assert (
        short_description("docker.io/bitnami/redis") == "Vetted mirror of docker.io/bitnami/redis"
    )
    long = short_description("docker.io/" + "a" * 200)
    assert len(long) == DESCRIPTION_MAX and long.endswith("…")


def test_overview_content() -> None:
    text = _render()
    assert text.startswith("# Vetted mirror of docker.io/bitnami/redis\n")
    assert "| Upstream | `docker.io/bitnami/redis` |" in text
    assert "| Policy entry | `redis` |" in text
    assert "| Approved by | alice@example.com |" in text
    assert "| Approval expires | 2027-01-31 |" in text
    assert "| Last sync | 2026-11-29T10:00:05Z |" in text
    rows = [line for line in text.splitlines() if line.startswith("| `7.")]
    assert rows == [
        f"| `7.0` | `{DIGEST}` | 2026-11-28T09:00:00Z |",
        f"| `7.2` | `{DIGEST}` | 2026-11-29T10:00:00Z |",
    ]


def test_overview_is_deterministic() -> None:
    tags = [("b", DIGEST, "t"), ("a", DIGEST, "t")]
    assert _render(tags=tags) == _render(tags=list(reversed(tags)))


def test_overview_without_tags_or_expiry() -> None:
    text = _render(tags=[], approval_expiry=None, last_sync=None)
    assert "No tags mirrored yet." in text
    assert "| Approval expires | no expiry |" in text
    assert "| Last sync | never |" in text


def test_overview_escapes_table_breakers() -> None:
    text = _render(approver="eve | x\n# injected", policy_entry="a`b")
    assert "| Approved by | eve \\| x # injected |" in text
    assert "| Policy entry | `ab` |" in text
    assert "\n# injected" not in text


def test_overview_fits_hub_limit() -> None:
    tags = [(f"1.{i}", DIGEST, "2026-11-29T10:00:00Z") for i in range(1000)]
    text = _render(tags=tags)
    assert len(text) <= FULL_DESCRIPTION_MAX
    assert "more tags (too many to list here)." in text
    assert text.count(DIGEST) > 100
