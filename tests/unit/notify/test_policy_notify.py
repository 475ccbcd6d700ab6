"""The policy's ``notify:`` section: targets named by environment variables, never URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagevet.policy import PolicyErrors, load_policy, parse_policy
from imagevet.policy.model import NOTIFY_EVENTS, NotifyTarget

HEAD = (
    "version: 1\n"
    "target:\n  registry: registry.example.com\n  namespace: acme\n"
    "images:\n"
    "  - source: docker.io/library/redis\n"
    "    approval: {approved_by: sec@acme.example}\n"
    "    tags: {tags: ['7.2']}\n"
)


def _errors(text: str) -> list[str]:
    with pytest.raises(PolicyErrors) as caught:
        parse_policy(text, path="imagevet.yaml", env={})
    return [str(e) for e in caught.value.errors]


def test_no_notify_section_is_no_targets() -> None:
    assert parse_policy(HEAD, env={}).notify == ()


def test_targets_are_read_with_their_defaults() -> None:
    policy = parse_policy(HEAD + (
        "notify:\n"
        "  - type: slack\n    url_env: SLACK_WEBHOOK_URL\n"
        "  - type: webhook\n    url_env: HOOK_URL\n    secret_env: HOOK_SECRET\n"
        "    events: [held-update, approval-expiring]\n    expiring_within: 30d\n"
    ), path="imagevet.yaml", env={})
    slack, hook = policy.notify
    assert (slack.type, slack.url_env, slack.secret_env, slack.events, slack.expiring_within) == (
        "slack", "SLACK_WEBHOOK_URL", None, None, 14)
    assert slack.location is not None and (slack.location.line, slack.location.column) == (10, 5)
    assert hook == NotifyTarget("webhook", "HOOK_URL", "HOOK_SECRET",
                                frozenset({"held-update", "approval-expiring"}), 30, hook.location)
    assert all(slack.wants(k) for k in NOTIFY_EVENTS)
    assert hook.wants("held-update") and not hook.wants("sync-failure")


def test_a_literal_slack_url_is_refused_at_its_line_and_column_and_not_echoed() -> None:
    url = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/abcdefghijklmnopqrstuvwx"
    errors = _errors(HEAD + f"notify:\n  - type: slack\n    url: {url}\n")
    assert len(errors) == 1
    assert errors[0].startswith("imagevet.yaml:11:10: notify[0].url: this value looks like a Slack incoming-webhook URL")
    assert "url_env" in errors[0] and "abcdefghij" not in errors[0]


def test_any_literal_url_is_refused_with_what_to_do_instead() -> None:
    errors = _errors(HEAD + "notify:\n  - type: webhook\n    url: https://hooks.example.com/imagevet/x1y2z3\n")
    assert errors == [
        "imagevet.yaml:10:5: notify[0].url_env: required key is missing; allowed: the name of the "
        "environment variable holding the webhook URL, e.g. SLACK_WEBHOOK_URL",
        "imagevet.yaml:11:10: notify[0].url: a webhook URL is a secret (its path or query is the "
        "credential): put it in an environment variable and name that variable with url_env",
    ]


def test_a_url_with_credentials_anywhere_in_the_policy_is_refused() -> None:
    errors = _errors(HEAD.replace("approved_by: sec@acme.example",
                                  "approved_by: sec@acme.example, ticket: 'https://bot:hunter22@jira.example.com/SEC-1'"))
    assert len(errors) == 1 and "imagevet.yaml:7:" in errors[0] and "user:password" in errors[0]
    assert "hunter22" not in errors[0]


def test_a_url_given_as_url_env_is_refused_without_showing_it() -> None:
    errors = _errors(HEAD + "notify:\n  - type: webhook\n    url_env: https://example.com/hook/s3cr3tpath\n")
    assert len(errors) == 1 and errors[0].startswith("imagevet.yaml:11:14: notify[0].url_env: expected the name of an environment variable")
    assert "s3cr3tpath" not in errors[0]


@pytest.mark.parametrize(("snippet", "where", "says"), [
    ("  - type: teams\n    url_env: X\n", "10:11: notify[0].type", "expected one of webhook, slack"),
    ("  - type: slack\n", "10:5: notify[0].url_env", "required key is missing"),
    ("  - type: slack\n    url_env: X\n    events: [held]\n", "12:14: notify[0].events[0]", "expected one of held-update"),
    ("  - type: slack\n    url_env: X\n    expiring_within: 2w\n", "12:22: notify[0].expiring_within", "such as 14d"),
    ("  - type: slack\n    url_env: X\n  - type: webhook\n    url_env: X\n", "13:14: notify[1].url_env",
     "X is already the target of notify[0] (line 10:5)"),
])
def test_mistakes_are_reported_at_their_place(snippet: str, where: str, says: str) -> None:
    errors = _errors(HEAD + "notify:\n" + snippet)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"imagevet.yaml:{where}: ") and says in errors[0], errors[0]


def test_the_example_policies_still_load_without_targets() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples"
    for path in sorted(examples.rglob("imagevet.yaml")):
        assert load_policy(path, env={"IMAGEVET_ORG": "acme"}).notify == ()
