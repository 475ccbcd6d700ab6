"""``imagevet audit``: verify reports the first broken line; show prints records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def test_keygen_writes_a_private_key_once(tmp_path: Path) -> None:
    key = tmp_path / "org.key"
    made = runner.invoke(app, ["audit", "keygen", "--name", "acme-ledger", "--out", str(key)])
    assert made.exit_code == 0, made.output
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_text().startswith("PRIVATE+KEY+acme-ledger+")
    assert key.read_text().strip() not in made.output
    assert "public_key: acme-ledger+" in made.output
    before = key.read_bytes()
    again = runner.invoke(app, ["audit", "keygen", "--out", str(key)])
    assert again.exit_code == 2 and "never overwrites" in again.output
    assert key.read_bytes() == before


def test_verify_with_a_public_key_file_and_no_policy(tmp_path: Path, monkeypatch: Any) -> None:
    import asyncio

    from imagevet.checkpoint import generate_key
    from imagevet.ledger import AuditSetup, FileLedger, record_events

    monkeypatch.chdir(tmp_path)
    signer = generate_key("acme-ledger")
    setup = AuditSetup(ledger=FileLedger.at(tmp_path / ".imagevet" / "ledger.jsonl"), signer=signer)
    asyncio.run(record_events(setup, None, [{"kind": "run"}, {"kind": "copy"}]))
    (tmp_path / "org.pub").write_text(f"{signer.verifier}\n")
    ok = runner.invoke(app, ["audit", "verify", "--public-key", "org.pub"])
    assert ok.exit_code == 0, ok.output
    assert "2 records, chain intact; signed checkpoint at record 2 verified" in ok.output
    no_key = runner.invoke(app, ["audit", "verify"])
    assert no_key.exit_code == 2 and "no public key is configured" in no_key.output
    lines = setup.ledger.path.read_text().splitlines(keepends=True)
    setup.ledger.path.write_text(lines[0])
    cut = runner.invoke(app, ["audit", "verify", "--public-key", "org.pub"])
    assert cut.exit_code == 1 and "records were removed" in cut.output
    (tmp_path / "bad.pub").write_text("acme-ledger+zz+AAAA\n")
    bad = runner.invoke(app, ["audit", "verify", "--public-key", "bad.pub"])
    assert bad.exit_code == 2 and "public key" in bad.output
