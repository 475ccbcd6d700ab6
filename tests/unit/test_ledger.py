"""The audit ledger: appends chain, and any edit is found offline."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagevet.checkpoint import Checkpoint, generate_key
from imagevet.ledger import (
    AuditSetup,
    FileLedger,
    LedgerDamagedError,
    LedgerError,
    append_events,
    read_ledger,
    record_events,
    verify_audit,
    verify_ledger,
)

NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


def test_append_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "ledger.jsonl"
    assert verify_ledger(path).ok  # missing = empty
    assert append_events(path, [{"kind": "run"}, {"kind": "copy", "digest": "sha256:1"}], now=NOW) == 2
    assert append_events(path, [{"kind": "noop"}], now=NOW) == 3
    records = list(read_ledger(path))
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["prev"] == "genesis"
    assert records[1]["prev"] == records[0]["hash"]
    assert records[2]["time"] == "2026-11-29T10:00:00Z"
    check = verify_ledger(path)
    assert check.ok and check.records == 3


@pytest.mark.parametrize(
    ("tamper", "line", "reason"),
    [
        (lambda ls: ls.__setitem__(1, ls[1].replace('"copy"', '"skip"')), 2, "record altered"),
        (lambda ls: ls.pop(1), 2, "sequence 3 follows 1"),
        (lambda ls: ls.insert(0, ls.pop(2)), 1, "sequence 3 follows 0"),
        (lambda ls: ls.__setitem__(2, "not json\n"), 3, "not a ledger record"),
    ],
)
def test_tampering_is_detected(tmp_path: Path, tamper, line: int, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ledger.jsonl"
    append_events(path, [{"kind": "run"}, {"kind": "copy"}, {"kind": "noop"}], now=NOW)
    lines = path.read_text().splitlines(keepends=True)
    tamper(lines)
    path.write_text("".join(lines))
    check = verify_ledger(path)
    assert not check.ok
    assert check.bad_line == line
    assert reason in check.reason


def test_recomputed_hash_still_breaks_the_link(tmp_path: Path) -> None:
    """Rewriting one record *and* its hash is caught by the next record's prev link."""
    import hashlib

    path = tmp_path / "ledger.jsonl"
    append_events(path, [{"n": 1}, {"n": 2}, {"n": 3}], now=NOW)
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["event"] = {"n": 99}
    body = json.dumps({k: rec[k] for k in ("seq", "time", "event", "prev")}, sort_keys=True,
                      separators=(",", ":")).encode()
    rec["hash"] = "sha256:" + hashlib.sha256(body).hexdigest()
    lines[1] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    check = verify_ledger(path)
    assert not check.ok and check.bad_line == 3 and "link broken" in check.reason


def _writer(path: str, n: int) -> None:
    for i in range(n):
        append_events(Path(path), [{"writer": n, "i": i}])


def test_concurrent_appends_keep_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    procs = [multiprocessing.Process(target=_writer, args=(str(path), 20)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    check = verify_ledger(path)
    assert check.ok and check.records == 60


def test_corrupt_tail_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    append_events(path, [{"n": 1}], now=NOW)
    with path.open("a") as f:
        f.write("{broken\n")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="does not verify.*nothing was appended.*imagevet audit recover"):
        append_events(path, [{"n": 2}], now=NOW)
    assert path.read_bytes() == before


def test_a_failed_write_leaves_no_partial_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os as os_module

    path = tmp_path / "ledger.jsonl"
    append_events(path, [{"n": 1}], now=NOW)
    before = path.read_bytes()
    real_write = os_module.write
    calls = {"n": 0}

    def short_then_full_disk(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:10]))  # a short write...
        raise OSError(28, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(os_module, "write", short_then_full_disk)
    with pytest.raises(LedgerError, match="No space left"):
        append_events(path, [{"n": 2}], now=NOW)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert append_events(path, [{"n": 3}], now=NOW) == 2
    assert verify_ledger(path).ok


# -- checkpoints: what the chain alone cannot show ---------------------------------------------------


ORIGIN = "registry.example.com/acme/imagevet-audit"


def _signed(tmp_path: Path, records: int = 4) -> AuditSetup:
    setup = AuditSetup(
        ledger=FileLedger.at(tmp_path / ".imagevet" / "ledger.jsonl"),
        signer=generate_key("acme-ledger"),
    )
    import asyncio

    asyncio.run(record_events(setup, None, [{"kind": "run", "n": i} for i in range(records)], now=NOW))
    return setup


def _rechain(lines: list[str], change: int) -> list[str]:
    import hashlib

    out, prev = [], "genesis"
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if i == change:
            rec["event"] = {"kind": "copy", "target": "intruder/image:1"}
        rec["prev"] = prev
        body = json.dumps({k: rec[k] for k in ("seq", "time", "event", "prev")}, sort_keys=True,
                          separators=(",", ":")).encode()
        rec["hash"] = prev = "sha256:" + hashlib.sha256(body).hexdigest()
        out.append(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
    return out


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda ls: ls[:-2], "the ledger has 2 records but the local checkpoint commits to 4"),
        (lambda ls: [], "the ledger has 0 records but the local checkpoint commits to 4"),
        (lambda ls: _rechain(ls, 1), "record 4 does not match the local checkpoint"),
    ],
    ids=["delete-last-records", "empty-the-file", "rewrite-and-recompute-the-chain"],
)
def test_a_signed_checkpoint_catches_what_the_chain_cannot(tmp_path: Path, tamper, reason: str) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    setup = _signed(tmp_path)
    assert asyncio.run(verify_audit(setup, None)).ok
    lines = setup.ledger.path.read_text().splitlines(keepends=True)
    setup.ledger.path.write_text("".join(tamper(lines)))
    assert verify_ledger(setup.ledger.path).ok  # the chain alone still looks fine
    report = asyncio.run(verify_audit(setup, None))
    assert not report.ok and reason in report.reason()
    before = setup.ledger.path.read_bytes()
    with pytest.raises(LedgerDamagedError, match="nothing was appended"):
        asyncio.run(record_events(setup, None, [{"kind": "run"}], now=NOW))
    assert setup.ledger.path.read_bytes() == before


def test_append_checks_the_checkpoint_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    append_events(path, [{"n": 1}, {"n": 2}], now=NOW)
    head = list(read_ledger(path))[-1]["hash"]
    assert append_events(path, [{"n": 3}], now=NOW, anchors={"local": Checkpoint(ORIGIN, 2, head)}) == 3
    with pytest.raises(LedgerDamagedError, match="commits to 5"):
        append_events(path, [{"n": 4}], now=NOW, anchors={"remote": Checkpoint(ORIGIN, 5, head)})
    assert len(list(read_ledger(path))) == 3


def test_recover_a_deleted_ledger_offline(tmp_path: Path) -> None:
    import asyncio

    from imagevet.ledger import recover

    setup = _signed(tmp_path, records=3)
    old_checkpoint = setup.ledger.checkpoint.read_bytes()
    setup.ledger.path.unlink()
    report = asyncio.run(verify_audit(setup, None))
    assert not report.ok and "the ledger has 0 records but the local checkpoint commits to 3" in report.reason()
    done = asyncio.run(recover(setup, None, reason="disk lost", now=NOW))
    assert done.damaged is None  # nothing to move: the file is gone
    assert done.checkpoint_moved is not None and Path(done.checkpoint_moved).read_bytes() == old_checkpoint
    assert done.event["checkpoint"]["size"] == 3 and done.event["last_verified_seq"] == 0
    assert asyncio.run(verify_audit(setup, None)).ok
    assert [r["event"]["kind"] for r in read_ledger(setup.ledger.path)] == ["recovered"]


@pytest.mark.parametrize(
    "line",
    ['[' * 200_000 + ']' * 200_000, '{"seq": true, "time": "t", "event": {}, "prev": "genesis", "hash": "x"}', "x" * (2 << 20)],
    ids=["deep-nesting", "boolean-seq", "huge-line"],
)
def test_hostile_lines_are_reported_not_crashed_on(tmp_path: Path, line: str) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(line + "\n")
    check = verify_ledger(path)
    assert not check.ok and check.bad_line == 1
    with pytest.raises(LedgerError, match="does not verify"):
        append_events(path, [{"n": 1}], now=NOW)


def test_recover_offline_is_refused_when_its_checkpoint_must_be_pushed(tmp_path: Path) -> None:
    import asyncio

    from imagevet.ledger import recover
    from imagevet.reference import Reference

    setup = _signed(tmp_path, records=3)
    setup = AuditSetup(setup.ledger, Reference.parse(ORIGIN + ":checkpoint"), signer=setup.signer)
    setup.ledger.path.write_text("".join(setup.ledger.path.read_text().splitlines(keepends=True)[:-1]))
    before = sorted(p.name for p in setup.ledger.path.parent.iterdir())
    with pytest.raises(LedgerError, match="recover pushes the new checkpoint to"):
        asyncio.run(recover(setup, None, reason="offline", now=NOW))
    assert sorted(p.name for p in setup.ledger.path.parent.iterdir()) == before  # nothing moved
