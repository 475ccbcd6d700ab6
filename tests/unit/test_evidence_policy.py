"""The policy's ``scan:`` section: defaults merged key by key, what is required, every mistake at
its line and column."""

from __future__ import annotations

import pytest

from imagevet.policy import PolicyErrors, parse_policy
from imagevet.policy.model import DEFAULT_SCAN_TIMEOUT, Scan

BASE = """\
version: 1
target: {{registry: r.example.com, namespace: acme}}
defaults:
  approval: {{approved_by: me}}
  tags: {{tags: ['1']}}
{defaults}images:
  - source: a/b
{entry}"""


def load(defaults: str = "", entry: str = "") -> Scan | None:
    return parse_policy(BASE.format(defaults=defaults, entry=entry), env={}).entries[0].scan


def test_no_scan_section_no_scan() -> None:
    assert load() is None


def test_defaults_and_entry_merge_key_by_key() -> None:
    scan = load("  scan: {command: [trivy, image, --format, json, '{ref}'], fail_on: high}\n",
                "    scan: {fail_on: critical, timeout: 90s}\n")
    assert scan == Scan(("trivy", "image", "--format", "json", "{ref}"), "critical", 90)
    assert scan.argv("r/a@sha256:00") == ["trivy", "image", "--format", "json", "r/a@sha256:00"]
    only = load(entry="    scan: {command: [grype, -o, json, 'registry:{ref}'], fail_on: low}\n")
    assert only == Scan(("grype", "-o", "json", "registry:{ref}"), "low", DEFAULT_SCAN_TIMEOUT)


@pytest.mark.parametrize(
    ("defaults", "entry", "where", "said"),
    [
        ("  scan: {command: [trivy, image], fail_on: high}\n", "", "6:19",
         "no argument holds {ref}"),
        ("  scan: {command: ['{ref}']}\n", "", "6:9", "scan.fail_on is required"),
        ("", "    scan: {fail_on: high}\n", "8:11", "scan.command is required"),
        ("", "    scan: {command: ['{ref}'], fail_on: huge}\n", "8:41", "expected one of critical, high, medium, low"),
        ("", "    scan: {command: ['{ref}'], fail_on: low, timeout: 2d}\n", "8:55", "invalid duration '2d'"),
        ("", "    scan: {command: ['{ref}'], fail_on: low, timeout: 25h}\n", "8:55", "longer than 24h"),
        ("", "    scan: {command: [], fail_on: low}\n", "8:21", "empty command"),
        ("", "    scan: {command: '{ref}', fail_on: low}\n", "8:21", "expected a list"),
        ("", "    scan: {command: ['{ref}'], fail_on: low, shell: true}\n", "8:46", "shell"),
    ],
)
def test_mistakes_are_reported_where_they_are(defaults: str, entry: str, where: str, said: str) -> None:
    with pytest.raises(PolicyErrors) as e:
        load(defaults, entry)
    text = str(e.value)
    assert f"imagevet.yaml:{where}:" in text and said in text, text
