"""The signed audit ledger as a user runs it: keygen, sync (signs and pushes the checkpoint to a real
docker-registry), audit verify against tampering, and audit recover."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.images import make_image
from tests.support.pusher import get_blob, get_manifest_bytes, push_image
from tests.support.registry_process import RunningRegistry


def imagevet(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEVET_LEDGER")}
    return subprocess.run(
        [sys.executable, "-m", "imagevet.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env={**full_env, **(env or {})},
    )


def keygen(tmp: Path, name: str = "acme-ledger", out: str = "ledger.key") -> tuple[Path, str]:
    done = imagevet("audit", "keygen", "--name", name, "--out", str(tmp / out), cwd=tmp)
    assert done.returncode == 0, done.stderr
    public = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if "public_key:" in line)
    assert (tmp / out).stat().st_mode & 0o077 == 0  # private to its owner
    assert (tmp / out).read_text().strip() not in done.stdout  # the secret is never printed
    return tmp / out, public


class Setup:
    def __init__(self, tmp: Path, registry: RunningRegistry, source: str, public_key: str, key: Path) -> None:
        self.tmp, self.registry, self.key = tmp, registry, key
        self.policy = tmp / "imagevet.yaml"
        self.policy.write_text(
            "version: 1\n"
            f"target:\n  registry: {registry.host}\n  namespace: acme\n"
            "defaults:\n  approval:\n    approved_by: security@acme.example\n    expires: 2099-12-31\n"
            f"audit:\n  public_key: {public_key}\n"
            f"images:\n  - source: {registry.host}/{source}\n    tags:\n      tags: ['1.0']\n"
        )
        self.state = tmp / ".imagevet"
        self.ledger = self.state / "ledger.jsonl"
        self.checkpoint = self.state / "checkpoint"

    def run(self, *args: str, key: Path | None = None, signed: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"IMAGEVET_LEDGER_KEY_FILE": str(key or self.key)} if signed else {}
        return imagevet(*args, cwd=self.tmp, env=env)

    def sync(self, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("sync", "-p", str(self.policy), **kw)

    def verify(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("audit", "verify", "-p", str(self.policy), *args, signed=False)


@pytest.fixture
def setup(registry_factory: Any, unique_repo: str, tmp_path: Path) -> Setup:
    import asyncio

    target = registry_factory(auth="none")
    asyncio.run(push_image(target, f"{unique_repo}/app", make_image(seed="audit-app"), "1.0"))
    key, public = keygen(tmp_path)
    s = Setup(tmp_path, target, f"{unique_repo}/app", public, key)
    assert s.run("lock", "-p", str(s.policy)).returncode == 0
    first = s.sync()
    assert first.returncode == 0, first.stderr
    assert "unsigned" not in first.stderr
    return s


def _records(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _recompute(lines: list[str], change: int) -> list[str]:
    """Rewrite record ``change`` and recompute every hash after it, as someone without the key can."""
    out: list[str] = []
    prev = "genesis"
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if i == change:
            rec["event"] = {"kind": "copy", "target": "intruder/image:1.0", "digest": "sha256:" + "0" * 64}
        rec["prev"] = prev
        body = json.dumps({k: rec[k] for k in ("seq", "time", "event", "prev")}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False).encode()
        rec["hash"] = "sha256:" + hashlib.sha256(body).hexdigest()
        prev = rec["hash"]
        out.append(json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
    return out


def test_sync_signs_and_pushes_the_checkpoint_and_it_verifies(setup: Setup) -> None:
    records = len(_records(setup.ledger))
    note = setup.checkpoint.read_bytes()
    lines = note.decode().split("\n")
    assert lines[0] == f"{setup.registry.host}/acme/imagevet-audit"
    assert lines[1] == str(records)
    assert lines[4].startswith("\u2014 acme-ledger ")
    # the same note is an OCI artifact in the target registry, read back by an independent client
    body, _, _ = asyncio_run(get_manifest_bytes(setup.registry, "acme/imagevet-audit", "checkpoint"))
    manifest = json.loads(body)
    assert manifest["artifactType"] == "application/vnd.imagevet.ledger.checkpoint.v1"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert len(manifest["layers"]) == 1
    assert asyncio_run(get_blob(setup.registry, "acme/imagevet-audit", manifest["layers"][0]["digest"])) == note

    ok = setup.verify()
    assert ok.returncode == 0, ok.stderr
    assert f"{records} records, chain intact; signed checkpoint at record {records} verified" in ok.stdout
    assert "acme/imagevet-audit:checkpoint: record" in ok.stdout

    again = setup.sync()  # a second run appends, signs and pushes a newer checkpoint
    assert again.returncode == 0, again.stderr
    assert len(_records(setup.ledger)) > records
    report = json.loads(setup.verify("--json").stdout)
    assert report["ok"] and report["remote_checkpoint"]["size"] == len(_records(setup.ledger))


def asyncio_run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda lines: lines[:-1], "records were removed"),                      # delete the last record
        (lambda lines: [], "the ledger has 0 records but the local checkpoint commits to"),  # empty it
        (lambda lines: _recompute(lines, 1), "does not match the local checkpoint"),  # rewrite, recompute
    ],
    ids=["delete-last-records", "empty-the-file", "rewrite-and-recompute-the-chain"],
)
def test_tampering_that_keeps_the_chain_valid_is_detected(setup: Setup, tamper: Any, message: str) -> None:
    lines = _records(setup.ledger)
    setup.ledger.write_text("".join(tamper(lines)))
    bad = setup.verify()
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "does not verify" in bad.stderr and message in bad.stderr
    assert "imagevet audit recover" in bad.stderr
    # the remote checkpoint alone catches it too (the local one deleted along with the records)
    setup.checkpoint.unlink()
    bad = setup.verify("--json")
    assert bad.returncode == 1
    assert "no local checkpoint" in json.loads(bad.stdout)["reason"]


def test_rollback_to_an_older_signed_checkpoint_is_caught_by_the_remote_one(setup: Setup) -> None:
    old_ledger, old_checkpoint = setup.ledger.read_bytes(), setup.checkpoint.read_bytes()
    assert setup.sync().returncode == 0
    assert setup.verify().returncode == 0
    setup.ledger.write_bytes(old_ledger)           # both files back to a consistent, signed past
    setup.checkpoint.write_bytes(old_checkpoint)
    offline = setup.verify("--offline")
    assert offline.returncode == 0  # locally it all matches: only the remote checkpoint shows it
    assert "offline" in offline.stderr
    bad = setup.verify()
    assert bad.returncode == 1
    assert "the remote checkpoint commits to" in bad.stderr and "records were removed" in bad.stderr
    # and a sync refuses to append to (and so re-sign) the rolled-back ledger
    refused = setup.sync()
    assert refused.returncode == 1
    assert "nothing was appended" in refused.stderr and "imagevet audit recover" in refused.stderr
    assert setup.ledger.read_bytes() == old_ledger
    assert json.loads((setup.state / "last-sync.json").read_text())["counts"]  # the run summary is written


def test_a_wrong_key_is_an_error(setup: Setup, tmp_path: Path) -> None:
    other_key, other_public = keygen(tmp_path, name="acme-ledger", out="other.key")
    (tmp_path / "other.pub").write_text(other_public + "\n")
    wrong = setup.verify("--public-key", str(tmp_path / "other.pub"))
    assert wrong.returncode == 1
    assert "not signed by the configured key" in wrong.stderr
    # a signing key that is not the policy's public key stops sync before it does anything
    refused = setup.sync(key=other_key)
    assert refused.returncode == 2
    assert "is not the configured public key" in refused.stderr
    garbage = tmp_path / "garbage.key"
    garbage.write_text("PRIVATE+KEY+x+00000000+c2VjcmV0LXNob3VsZC1uZXZlci1iZS1wcmludGVk\n")
    bad = setup.sync(key=garbage)
    assert bad.returncode == 2 and "c2VjcmV0" not in bad.stderr


def test_a_forged_checkpoint_is_refused(setup: Setup) -> None:
    note = setup.checkpoint.read_text().split("\n")
    note[1] = str(int(note[1]) + 5)  # claim more records than were signed
    setup.checkpoint.write_text("\n".join(note))
    bad = setup.verify()
    assert bad.returncode == 1 and "does not verify: the checkpoint was altered or forged" in bad.stderr


def test_recover_moves_the_damaged_ledger_aside_and_starts_a_signed_chain(setup: Setup) -> None:
    lines = _records(setup.ledger)
    damaged = "".join(_recompute(lines, 0))
    setup.ledger.write_text(damaged)
    refused = setup.sync()
    assert refused.returncode == 1 and "imagevet audit recover" in refused.stderr
    assert setup.ledger.read_text() == damaged  # nothing appended to a ledger that does not verify

    unsigned = setup.run("audit", "recover", "-p", str(setup.policy), signed=False)
    assert unsigned.returncode == 2 and "IMAGEVET_LEDGER_KEY" in unsigned.stderr

    done = setup.run("audit", "recover", "-p", str(setup.policy), "--reason", "SEC-9 ledger edited")
    assert done.returncode == 0, done.stderr
    aside = sorted(setup.state.glob("ledger.jsonl.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text() == damaged  # kept, never deleted
    assert len(sorted(setup.state.glob("checkpoint.damaged-*"))) == 1
    first = json.loads(setup.ledger.read_text())
    assert first["seq"] == 1 and first["event"]["kind"] == "recovered"
    assert first["event"]["damaged_file"] == aside[0].name
    assert first["event"]["reason"] == "SEC-9 ledger edited"
    assert first["event"]["checkpoint"]["size"] == len(lines)
    assert "does not match" in first["event"]["problem"]
    ok = setup.verify()
    assert ok.returncode == 0, ok.stderr
    assert "1 records, chain intact; signed checkpoint at record 1" in ok.stdout
    again = setup.sync()
    assert again.returncode == 0, again.stderr
    assert setup.verify().returncode == 0
    nothing = setup.run("audit", "recover", "-p", str(setup.policy))
    assert nothing.returncode == 1 and "nothing to recover" in nothing.stderr


def test_unsigned_sync_says_so_once(setup: Setup) -> None:
    plain = setup.sync(signed=False)
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.count("the audit ledger is unsigned") == 1
    # the records appended after the last checkpoint still verify against it
    assert setup.verify().returncode == 0


def test_state_files_planted_as_symlinks_are_refused(setup: Setup, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    for name in ("last-sync.json", "ledger.jsonl", "checkpoint"):
        target = setup.state / name
        saved = target.read_bytes()
        target.unlink()
        target.symlink_to(outside)
        run = setup.sync()
        assert run.returncode == 1, (name, run.stdout, run.stderr)
        assert "symbolic link" in run.stderr, name
        assert outside.read_text() == "precious\n", name
        assert target.is_symlink()
        target.unlink()
        target.write_bytes(saved)
    # a symlinked state directory pointing elsewhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    setup.state.rename(tmp_path / "state-saved")
    setup.state.symlink_to(elsewhere)
    run = setup.sync()
    assert run.returncode == 1 and "symbolic link" in run.stderr
    assert list(elsewhere.iterdir()) == []


def test_an_unreachable_checkpoint_repository_keeps_the_records_in_the_summary(setup: Setup, registry_factory: Any) -> None:
    locked = registry_factory(auth="basic")  # no credentials for it: 401 on every request
    text = setup.policy.read_text().replace(
        "audit:\n", f"audit:\n  checkpoint: {locked.host}/acme/imagevet-audit:checkpoint\n"
    )
    setup.policy.write_text(text)
    moved = setup.sync()  # another checkpoint repository is another log: the local checkpoint names the old one
    assert moved.returncode == 1 and "checkpoint of another ledger" in moved.stderr
    setup.checkpoint.unlink()
    before = setup.ledger.read_bytes()
    run = setup.sync()
    assert run.returncode == 1
    assert "cannot read the remote checkpoint" in run.stderr and "run summary" in run.stderr
    assert setup.ledger.read_bytes() == before
    assert json.loads((setup.state / "last-sync.json").read_text())["counts"]
