"""``imagevet audit keygen|verify|show|recover``: the signed, hash-chained audit ledger.

The signing key comes from the environment: ``IMAGEVET_LEDGER_KEY_FILE`` (a file holding the
private key) or ``IMAGEVET_LEDGER_KEY`` (the key itself).  The public key that checks
checkpoints is ``audit.public_key`` in the policy, or ``--public-key FILE``.  See docs/audit.md.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from imagevet.checkpoint import Signer, SigningKeyError, Verifier, generate_key
from imagevet.cli._policy import load, state_store
from imagevet.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    console,
    err_console,
    fail,
    handle_errors,
    make_store,
    print_json,
    terminal_safe,
)
from imagevet.ledger import (
    AuditReport,
    AuditSetup,
    FileLedger,
    Recovered,
    RecoverRefusedError,
    read_ledger,
    recover,
    verify_audit,
)
from imagevet.policy import Policy

__all__ = [
    "DEFAULT_LEDGER",
    "KEY_ENV",
    "KEY_FILE_ENV",
    "audit_setup",
    "register",
]

DEFAULT_LEDGER = Path(".imagevet/ledger.jsonl")
KEY_FILE_ENV = "IMAGEVET_LEDGER_KEY_FILE"
KEY_ENV = "IMAGEVET_LEDGER_KEY"
_KEY_FILE_MAX = 4096
T = TypeVar("T")

audit_app = typer.Typer(help="Check and read the audit ledger.", no_args_is_help=True)

_POLICY = typer.Option(
    None, "--policy", "-p",
    help="The policy (default ./imagevet.yaml when it exists): state directory, checkpoint repository, public key.",
)
_LEDGER = typer.Option(None, "--ledger", help="The ledger file (default .imagevet/ledger.jsonl next to the policy).")
_INSECURE = typer.Option([], "--insecure", help="Plain-HTTP registry host (repeatable).")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


# -- keys and setup ---------------------------------------------------------------------------------


def load_signer(env: Mapping[str, str]) -> Signer | None:
    """The signing key from ``IMAGEVET_LEDGER_KEY_FILE`` or ``IMAGEVET_LEDGER_KEY``; None when neither is set."""
    path, text = env.get(KEY_FILE_ENV), env.get(KEY_ENV)
    if path and text:
        raise SigningKeyError(f"set {KEY_FILE_ENV} or {KEY_ENV}, not both")
    if path:
        try:
            with open(path, "rb") as f:
                data = f.read(_KEY_FILE_MAX + 1)
        except OSError as e:
            raise SigningKeyError(f"{KEY_FILE_ENV}: cannot read {path}: {e.strerror}") from None
        if len(data) > _KEY_FILE_MAX:
            raise SigningKeyError(f"{KEY_FILE_ENV}: {path} is not a signing key (too large)")
        try:
            return Signer.parse(data.decode("ascii"))
        except UnicodeDecodeError:
            raise SigningKeyError(f"{KEY_FILE_ENV}: {path} is not a signing key") from None
        except SigningKeyError as e:
            raise SigningKeyError(f"{KEY_FILE_ENV}: {path}: {e}") from None
    if text:
        try:
            return Signer.parse(text)
        except SigningKeyError as e:
            raise SigningKeyError(f"{KEY_ENV}: {e}") from None
    return None


def _read_public_key(path: Path) -> Verifier:
    try:
        text = path.read_bytes()[:_KEY_FILE_MAX].decode("ascii", "replace")
    except OSError as e:
        raise SigningKeyError(f"--public-key: cannot read {path}: {e.strerror}") from None
    return Verifier.parse(text)


def audit_setup(
    policy: Policy | None,
    *,
    ledger: Path | None = None,
    public_key: Path | None = None,
    signer: Signer | None = None,
) -> AuditSetup:
    """Ledger, checkpoint file, checkpoint repository and keys, from the policy and the options."""
    store = (
        FileLedger.at(ledger) if ledger is not None
        else state_store(policy).ledger if policy is not None
        else FileLedger.at(DEFAULT_LEDGER)
    )
    verifier: Verifier | None = None
    if public_key is not None:
        verifier = _read_public_key(public_key)
    elif policy is not None and policy.audit.public_key:
        verifier = Verifier.parse(policy.audit.public_key)
    setup = AuditSetup(
        ledger=store,
        repository=policy.checkpoint_ref if policy is not None else None,
        verifier=verifier,
        signer=signer,
    )
    setup.key()  # a signing key that is not the configured public key is refused here
    return setup


def _bad_key(e: SigningKeyError) -> NoReturn:
    fail(str(e), EXIT_USAGE)


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; a key problem or a refused option is bad input (exit 2), any other error exits 1."""
    with handle_errors():
        try:
            return asyncio.run(_call(factory))
        except (SigningKeyError, RecoverRefusedError) as e:
            fail(str(e), EXIT_USAGE)


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


def _policy_or_none(policy: Path | None) -> Policy | None:
    if policy is None:
        default = Path("imagevet.yaml")
        if not default.exists():
            return None
        policy = default
    return load(policy).policy


def sync_setup(policy: Policy) -> AuditSetup:
    """For ``sync``, before any work: the signing key from the environment, checked against the policy."""
    try:
        return audit_setup(policy, signer=load_signer(os.environ))
    except SigningKeyError as e:
        _bad_key(e)


# -- commands ---------------------------------------------------------------------------------------


@audit_app.command("keygen")
def keygen_command(
    out: Path = typer.Option(Path("imagevet-ledger.key"), "--out", "-o", help="Where to write the private key (mode 0600; never overwritten)."),
    name: str = typer.Option("imagevet-ledger", "--name", help="The key's name (shown in signatures)."),
) -> None:
    """Create the organization's Ed25519 signing key; print the public key for the policy."""
    try:
        signer = generate_key(name)
    except SigningKeyError as e:
        _bad_key(e)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        fail(f"{out} exists; imagevet never overwrites a key", EXIT_USAGE)
    except OSError as e:
        fail(f"cannot write {out}: {e.strerror}", EXIT_FAILURE)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(signer.text() + "\n")
    console.print(f"private key written to {terminal_safe(str(out))} (keep it secret: a CI secret, then "
                  f"{KEY_FILE_ENV}=<file> or {KEY_ENV}=<its contents>)", highlight=False)
    console.print("add the public key to the policy:", highlight=False)
    console.out(f"audit:\n  public_key: {signer.verifier}")


def _report_json(setup: AuditSetup, report: AuditReport) -> dict[str, Any]:
    def cp(c: Any) -> Any:
        return None if c is None else {"size": c.size, "head": c.head}

    return {
        "ok": report.ok,
        "status": report.status,
        "records": report.check.records,
        "head": report.check.head,
        "bad_line": report.check.bad_line,
        "reason": report.reason(),
        "problems": report.problems,
        "misconfigured": report.misconfigured,
        "unavailable": report.unavailable,
        "local_checkpoint": cp(report.local),
        "remote_checkpoint": cp(report.remote),
        "repository": str(setup.repository) if setup.repository else None,
        "notes": report.notes,
    }


@audit_app.command("verify")
def verify_command(
    policy: Path | None = _POLICY,
    ledger: Path | None = _LEDGER,
    public_key: Path | None = typer.Option(None, "--public-key", help="A file with the public key (instead of audit.public_key)."),
    offline: bool = typer.Option(False, "--offline", help="Do not fetch the remote checkpoint (weaker: see docs/audit.md)."),
    insecure: list[str] = _INSECURE,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check the chain and the signed checkpoints; exit 1 if records were altered, removed or rewritten."""
    loaded = _policy_or_none(policy)
    try:
        setup = audit_setup(loaded, ledger=ledger, public_key=public_key)
    except SigningKeyError as e:
        _bad_key(e)

    async def _go() -> AuditReport:
        # the remote checkpoint is read whenever its repository is known, with or without a public
        # key: a policy whose key was removed must not turn the check off
        if offline or setup.repository is None:
            return await verify_audit(setup, None)
        async with make_store(insecure=insecure) as store:
            return await verify_audit(setup, store)

    report = _run(_go)
    if as_json:
        print_json(_report_json(setup, report))
    else:
        for note in report.notes:
            err_console.print(f"[yellow]note:[/] {terminal_safe(note)}", highlight=False)
        if report.ok:
            signed = ""
            if report.local is not None:
                signed = f"; signed checkpoint at record {report.local.size} verified"
                if report.remote is not None:
                    signed += f" (remote {terminal_safe(str(setup.repository))}: record {report.remote.size})"
            console.print(f"{terminal_safe(setup.ledger.location)}: {report.check.records} records, chain intact{signed}", highlight=False)
        else:
            _print_failure(setup, report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


def _print_failure(setup: AuditSetup, report: AuditReport) -> None:
    """Why the ledger is not verified, and what to do: recover only for damage."""
    where = terminal_safe(setup.ledger.location)
    intact = f"{report.check.records} records form an intact chain"
    if report.damaged:
        err_console.print(f"[red]{where}: does not verify: {terminal_safe(report.reason())}[/] ({intact})", highlight=False)
        err_console.print(
            "to keep the damaged file and start a new signed chain: imagevet audit recover "
            "(docs/audit.md)", highlight=False,
        )
    elif report.misconfigured:
        err_console.print(f"[red]{where}: not verified: {terminal_safe(report.reason())}[/] ({intact})", highlight=False)
    else:
        if report.local is not None:
            intact += f", matching the signed local checkpoint at record {report.local.size}"
        err_console.print(
            f"[red]{where}: could not check: {terminal_safe(report.reason())}[/] ({intact}; nothing "
            "found is damaged, but the ledger is not verified until the remote checkpoint is read)",
            highlight=False,
        )
        err_console.print(
            "run 'imagevet audit verify' again when the registry answers (--offline checks without "
            "it, and cannot detect a rollback: docs/audit.md)", highlight=False,
        )


@audit_app.command("recover")
def recover_command(
    policy: Path | None = _POLICY,
    ledger: Path | None = _LEDGER,
    reason: str = typer.Option("", "--reason", help="Why (recorded in the new chain's first record)."),
    offline: bool = typer.Option(False, "--offline", help="Do not fetch or push the remote checkpoint (refused when a signing key and a checkpoint repository are configured)."),
    insecure: list[str] = _INSECURE,
) -> None:
    """Move a ledger that does not verify aside (never deleted) and start a new signed chain naming it."""
    loaded = _policy_or_none(policy)
    try:
        setup = audit_setup(loaded, ledger=ledger, signer=load_signer(os.environ))
    except SigningKeyError as e:
        _bad_key(e)

    async def _go() -> Recovered:
        if offline or setup.repository is None:
            return await recover(setup, None, reason=reason)
        async with make_store(insecure=insecure) as store:
            return await recover(setup, store, reason=reason)

    done = _run(_go)
    if done.damaged is not None:
        console.print(f"moved the damaged ledger to {terminal_safe(done.damaged)}", highlight=False)
    if done.checkpoint_moved is not None:
        console.print(f"moved its checkpoint to {terminal_safe(done.checkpoint_moved)}", highlight=False)
    ev = done.event
    console.print(
        f"new chain in {terminal_safe(setup.ledger.location)}: record 1 names the damaged file; its chain was "
        f"intact through record {ev['last_verified_seq']} ({terminal_safe(str(ev['last_verified_hash']))})",
        highlight=False,
    )
    rec = done.recorded
    if rec.checkpoint is not None:
        where = f"and pushed to {terminal_safe(rec.pushed)}" if rec.pushed else "(no checkpoint repository: not pushed)"
        console.print(f"signed checkpoint written to {terminal_safe(setup.ledger.checkpoint_location)} {where}", highlight=False)
    else:
        err_console.print("[yellow]note:[/] no signing key: the new chain is unsigned", highlight=False)


@audit_app.command("show")
def show_command(
    ledger: Path = typer.Option(DEFAULT_LEDGER, "--ledger", help="The ledger file."),
    last: int = typer.Option(20, "--last", "-n", min=0, help="How many records (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON record per line."),
) -> None:
    """Print the last records of the ledger."""
    with handle_errors():
        records = list(read_ledger(ledger))
    if last:
        records = records[-last:]
    for rec in records:
        if as_json:
            console.out(json.dumps(rec, sort_keys=True))
            continue
        event = rec.get("event", {})
        kind = event.get("kind", "?")
        rest = " ".join(f"{k}={v}" for k, v in event.items() if k != "kind" and v not in (None, ""))
        console.print(terminal_safe(f"{rec['seq']:>6} {rec['time']} {kind:<10} {rest}", markup=False), markup=False)
