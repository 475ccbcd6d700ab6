"""``imagevet audit``: verify reports the first broken line; show prints records."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from imagevet.cli import app
from imagevet.ledger import append_events

runner = CliRunner()


def test_verify_and_show(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    append_events(ledger, [{"kind": "copy", "target": "reg/acme/redis:7.2"}, {"kind": "noop"}])
    ok = runner.invoke(app, ["audit", "verify", "--ledger", str(ledger)])
    assert ok.exit_code == 0 and "2 records, chain intact" in ok.output
    shown = runner.invoke(app, ["audit", "show", "--ledger", str(ledger)])
    assert shown.exit_code == 0
    assert "copy" in shown.output and "target=reg/acme/redis:7.2" in shown.output
    ledger.write_text(ledger.read_text().replace("redis:7.2", "redis:6.0"))
    bad = runner.invoke(app, ["audit", "verify", "--ledger", str(ledger), "--json"])
    assert bad.exit_code == 1
    assert '"bad_line": 1' in bad.output and "record altered" in bad.output
