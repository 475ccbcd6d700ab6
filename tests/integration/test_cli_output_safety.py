"""What the CLI prints is safe: no terminal control sequence from a registry, the ledger or a
scanned file reaches the terminal raw, and no password in IMAGEVET_HUB_URL is ever shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from imagevet.cli import app
from imagevet.cli.common import terminal_safe
from imagevet.errors import CredentialsError
from imagevet.hub.client import HubClient
from imagevet.ledger import append_events
from tests.support.fake_hub import FakeHub, fake_hub  # noqa: F401  (fixture)
from tests.support.fake_registry import FakeRegistry
from tests.support.images import make_image

runner = CliRunner()

HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eevil\r[bold]x[/bold]"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\r")


def _no_raw_controls(text: str) -> None:
    for ch in RAW:
        assert ch not in text, f"{ch!r} reached the terminal raw"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text: ok", "plain text: ok"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\x9bb", "a\\x9bb"),
        ("bidi \u202eevil\u2066", "bidi \\u202eevil\\u2066"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("bell\x07 del\x7f nul\x00", "bell\\x07 del\\x7f nul\\x00"),
        ("line\nforged", "line\\x0aforged"),
        ("cr\roverwrite", "cr\\x0doverwrite"),
        ("tab\tstays", "tab\tstays"),
    ],
)
def test_terminal_safe_escapes_controls(text: str, shown: str) -> None:
    assert terminal_safe(text, markup=False) == shown


def test_terminal_safe_escapes_markup_and_keeps_newlines_when_asked() -> None:
    assert terminal_safe("[red]x[/red]") == "\\[red]x\\[/red]"
    assert terminal_safe("a\nb\x1b", markup=False, multiline=True) == "a\nb\\x1b"


def test_copy_failure_from_a_hostile_registry_is_escaped(
    fake_registry: FakeRegistry, fault_proxy: Any
) -> None:
    fake_registry.seed("src/app", make_image(seed="hostile-error"), "1.0")
    proxy = fault_proxy(fake_registry)
    proxy.fail(times=None, status=400, method="GET", path_contains="/manifests/", code="DENIED", message=HOSTILE)
    result = runner.invoke(app, ["copy", f"{proxy.host}/src/app:1.0", f"{fake_registry.host}/dst/app"])
    assert result.exit_code == 1
    _no_raw_controls(result.output)
    assert "\\x1b[2J" in result.output or "\\x1b" in result.output


def test_audit_show_escapes_ledger_text(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    append_events(ledger, [{"kind": "copy", "target": "reg/acme/redis:7.2", "message": HOSTILE}])
    shown = runner.invoke(app, ["audit", "show", "--ledger", str(ledger)])
    assert shown.exit_code == 0, shown.output
    _no_raw_controls(shown.output)
    assert "\\x1b[2J" in shown.output and "\\u202eevil" in shown.output
    as_json = runner.invoke(app, ["audit", "show", "--ledger", str(ledger), "--json"])
    _no_raw_controls(as_json.output)
    assert "\\u001b" in as_json.output


def test_check_output_escapes_scanned_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IMAGEVET_HUB_URL", "DOCKER_HUB_USERNAME", "DOCKER_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "Dockerfile").write_text(
        "FROM bitnami/redis:7.2\x1b]8;;http://evil\x07\u202e\nFROM ${BASE}\x1b[2J\x1b]0;title\x07\n"
    )
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 1
    _no_raw_controls(result.output)
    assert "${BASE}\\x1b[2J\\x1b]0;title\\x07 cannot be judged" in result.output


def test_hub_client_refuses_credentials_in_its_url() -> None:
    with pytest.raises(CredentialsError) as info:
        HubClient("http://user:s3cret-pass@127.0.0.1:1")
    assert "s3cret-pass" not in str(info.value) and "user:s3cret" not in str(info.value)


@pytest.mark.parametrize("argv", [["doctor", "--org", "acme"], ["--debug", "doctor", "--org", "acme"],
                                  ["classify", "nginx"], ["--debug", "classify", "nginx"]])
def test_password_in_hub_url_is_refused_and_never_shown(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch, argv: list[str]  # noqa: F811
) -> None:
    assert fake_hub.seed is not None
    url = fake_hub.url.replace("://", "://someone:s3cret-pass@")
    monkeypatch.setenv("IMAGEVET_HUB_URL", url)
    monkeypatch.setenv("DOCKER_HUB_USERNAME", fake_hub.seed.username)
    monkeypatch.setenv("DOCKER_HUB_TOKEN", fake_hub.seed.pat)
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "s3cret-pass" not in result.output
    assert "IMAGEVET_HUB_URL" in result.output and "must not hold credentials" in result.output


def test_redact_masks_secrets_but_not_the_error_after_a_token_url() -> None:
    from imagevet.cli.common import redact

    assert redact("POST https://hub/v2/auth/token: ClientConnectorDNSError: x") == (
        "POST https://hub/v2/auth/token: ClientConnectorDNSError: x"
    )
    masked = redact('{"token": "abc1", "password":"p2"} token=zz3 http://u:p4@h/x')
    assert not any(s in masked for s in ("abc1", "p2", "zz3", "p4"))


def test_a_hub_url_that_is_not_http_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEVET_HUB_URL", "ftp://127.0.0.1:1")
    result = runner.invoke(app, ["classify", "nginx"])
    assert result.exit_code == 2 and "absolute http(s) URL" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_password_in_hub_url_never_shown_by_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "imagevet.yaml"
    policy.write_text(
        "version: 1\ntarget: {namespace: acme}\n"
        "defaults: {approval: {approved_by: a@b.c, approved_on: 2026-01-01, ticket: X}}\n"
        "images:\n  - source: bitnami/redis\n    tags: {tags: ['7.4']}\n"
    )
    monkeypatch.setenv("IMAGEVET_HUB_URL", "http://someone:s3cret-pass@127.0.0.1:1")
    monkeypatch.setenv("DOCKER_HUB_USERNAME", "someone")
    monkeypatch.setenv("DOCKER_HUB_TOKEN", "token-value")
    for argv in (["plan", "-p", str(policy)], ["--debug", "sync", "--dry-run", "-p", str(policy)]):
        result = runner.invoke(app, argv)
        assert result.exit_code in (1, 2), result.output
        assert "s3cret-pass" not in result.output and "holds credentials" in result.output
