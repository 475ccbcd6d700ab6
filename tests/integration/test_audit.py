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


# -- a remote checkpoint that cannot be read is "could not check", never damage ----------------------


def _damaged_files(setup: Setup) -> list[Path]:
    return sorted(setup.state.glob("*.damaged-*"))


def _no_recover_for_an_unreadable_remote(setup: Setup, why: str) -> None:
    """verify: exit 1, says the remote could not be read and why, no recover hint; recover refuses."""
    ledger, checkpoint = setup.ledger.read_bytes(), setup.checkpoint.read_bytes()
    out = setup.verify()
    assert out.returncode == 1, out.stdout + out.stderr
    assert "could not check" in out.stderr and "cannot read the remote checkpoint" in out.stderr
    assert why in out.stderr
    assert "does not verify" not in out.stderr and "imagevet audit recover" not in out.stderr
    report = json.loads(setup.verify("--json").stdout)
    assert report["ok"] is False and report["status"] == "unavailable"
    assert report["unavailable"] and not report["problems"]
    refused = setup.run("audit", "recover", "-p", str(setup.policy), "--reason", "network blip")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "nothing is damaged" in refused.stderr and "nothing was moved" in refused.stderr
    assert setup.ledger.read_bytes() == ledger and setup.checkpoint.read_bytes() == checkpoint
    assert _damaged_files(setup) == []


def test_a_refused_connection_to_the_checkpoint_registry_is_not_damage(setup: Setup) -> None:
    setup.registry.stop()
    try:
        _no_recover_for_an_unreadable_remote(setup, "cannot connect")
    finally:
        setup.registry.start()
    ok = setup.verify()
    assert ok.returncode == 0, ok.stderr
    assert setup.sync().returncode == 0  # and the ledger goes on, nothing was lost
    assert setup.verify().returncode == 0


def _proxied(registry_factory: Any, fault_proxy: Any, unique_repo: str, tmp_path: Path) -> tuple[Setup, Any]:
    """A signed setup whose target registry is reached through a fault proxy."""
    import asyncio

    backend = registry_factory(auth="none")
    proxy = fault_proxy(backend)
    asyncio.run(push_image(backend, f"{unique_repo}/app", make_image(seed="audit-proxied"), "1.0"))
    key, public = keygen(tmp_path)
    s = Setup(tmp_path, proxy, f"{unique_repo}/app", public, key)
    assert s.run("lock", "-p", str(s.policy)).returncode == 0
    assert s.sync().returncode == 0
    assert s.verify().returncode == 0
    return s, proxy


@pytest.mark.parametrize(("status", "why"), [(503, "503"), (401, "401")])
def test_an_erroring_checkpoint_registry_is_not_damage(
    registry_factory: Any, fault_proxy: Any, unique_repo: str, tmp_path: Path, status: int, why: str
) -> None:
    s, proxy = _proxied(registry_factory, fault_proxy, unique_repo, tmp_path)
    proxy.fail(None, status, method="GET", path_contains="/acme/imagevet-audit/")
    _no_recover_for_an_unreadable_remote(s, why)
    proxy.clear()
    assert s.verify().returncode == 0


def test_a_checkpoint_not_pushed_yet_is_not_damage(setup: Setup) -> None:
    # the same log (origin) at a tag no sync has pushed to: as after a first signed sync whose push failed
    setup.policy.write_text(setup.policy.read_text().replace(
        "audit:\n", f"audit:\n  checkpoint: {setup.registry.host}/acme/imagevet-audit:next\n"
    ))
    out = setup.verify()
    assert out.returncode == 1, out.stdout + out.stderr
    assert "could not check" in out.stderr and "no checkpoint at" in out.stderr
    assert "imagevet audit recover" not in out.stderr
    assert json.loads(setup.verify("--json").stdout)["status"] == "unavailable"
    refused = setup.run("audit", "recover", "-p", str(setup.policy))
    assert refused.returncode == 1 and "nothing is damaged" in refused.stderr
    assert _damaged_files(setup) == []
    assert setup.sync().returncode == 0  # the next signed sync pushes it
    ok = setup.verify()
    assert ok.returncode == 0, ok.stderr
    assert "imagevet-audit:next: record" in ok.stdout


# -- the public key removed from the policy ----------------------------------------------------------


def _drop_public_key(setup: Setup) -> None:
    text = setup.policy.read_text()
    setup.policy.write_text("".join(line for line in text.splitlines(keepends=True) if "public_key" not in line
                                    and line != "audit:\n"))
    assert "audit" not in setup.policy.read_text()


@pytest.mark.parametrize(
    "tamper",
    [lambda lines: lines[:-1], lambda lines: [], lambda lines: _recompute(lines, 1)],
    ids=["delete-last-records", "empty-the-file", "rewrite-and-recompute-the-chain"],
)
def test_removing_the_public_key_from_the_policy_does_not_hide_tampering(setup: Setup, tamper: Any) -> None:
    setup.ledger.write_text("".join(tamper(_records(setup.ledger))))
    setup.checkpoint.unlink()
    _drop_public_key(setup)
    bad = setup.verify()
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "has signed checkpoints at" in bad.stderr and "the policy names no public key" in bad.stderr
    assert f"{setup.registry.host}/acme/imagevet-audit:checkpoint" in bad.stderr
    report = json.loads(setup.verify("--json").stdout)
    assert report["ok"] is False and "the policy names no public key" in report["reason"]
    # offline there is nothing to compare with: it says what it did not check
    offline = setup.verify("--offline")
    assert offline.returncode == 0 and "offline" in offline.stderr and "not signed" in offline.stderr


def test_an_unsigned_ledger_with_no_checkpoint_anywhere_verifies(registry_factory: Any, unique_repo: str, tmp_path: Path) -> None:
    import asyncio

    target = registry_factory(auth="none")
    asyncio.run(push_image(target, f"{unique_repo}/app", make_image(seed="audit-unsigned"), "1.0"))
    s = Setup(tmp_path, target, f"{unique_repo}/app", "x", tmp_path / "none.key")
    _drop_public_key(s)
    assert s.run("lock", "-p", str(s.policy), signed=False).returncode == 0
    assert s.sync(signed=False).returncode == 0
    ok = s.verify()
    assert ok.returncode == 0, ok.stderr
    assert "chain intact" in ok.stdout and "not signed" in ok.stderr
    target.stop()  # the remote cannot be read: whether it holds checkpoints is unknown
    try:
        out = s.verify()
        assert out.returncode == 1 and "could not check" in out.stderr
        assert "imagevet audit recover" not in out.stderr
    finally:
        target.start()


# -- recover --offline and the whole recovery flow ---------------------------------------------------


def test_recover_offline_is_refused_when_the_new_checkpoint_must_be_pushed(setup: Setup) -> None:
    setup.ledger.write_text("".join(_records(setup.ledger)[:-1]))  # damage: the last record removed
    damaged = setup.ledger.read_bytes()
    offline = setup.run("audit", "recover", "-p", str(setup.policy), "--offline", "--reason", "x")
    assert offline.returncode == 2, offline.stdout + offline.stderr
    assert "recover pushes the new checkpoint" in offline.stderr
    assert setup.ledger.read_bytes() == damaged and _damaged_files(setup) == []
    # online: damage -> recover -> next sync -> verify, all ok
    done = setup.run("audit", "recover", "-p", str(setup.policy), "--reason", "SEC-10")
    assert done.returncode == 0, done.stderr
    assert "pushed to" in done.stdout
    assert setup.verify().returncode == 0
    again = setup.sync()
    assert again.returncode == 0, again.stderr
    ok = setup.verify()
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(line)["event"]["kind"] for line in _records(setup.ledger)][0] == "recovered"


def test_recover_whose_push_fails_moves_nothing(
    registry_factory: Any, fault_proxy: Any, unique_repo: str, tmp_path: Path
) -> None:
    s, proxy = _proxied(registry_factory, fault_proxy, unique_repo, tmp_path)
    s.ledger.write_text("".join(_records(s.ledger)[:-1]))  # damage: the last record removed
    damaged, checkpoint = s.ledger.read_bytes(), s.checkpoint.read_bytes()
    proxy.fail(None, 503, method="PUT", path_contains="/acme/imagevet-audit/manifests/")
    failed = s.run("audit", "recover", "-p", str(s.policy), "--reason", "SEC-11")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "cannot push the new chain's checkpoint" in failed.stderr and "nothing was moved" in failed.stderr
    # the old ledger and checkpoint stay as they were: no new chain the remote checkpoint contradicts
    assert s.ledger.read_bytes() == damaged and s.checkpoint.read_bytes() == checkpoint
    assert _damaged_files(s) == []
    proxy.clear()
    done = s.run("audit", "recover", "-p", str(s.policy), "--reason", "SEC-11")
    assert done.returncode == 0, done.stderr
    assert s.sync().returncode == 0
    ok = s.verify()
    assert ok.returncode == 0, ok.stderr
