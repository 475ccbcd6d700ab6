"""``imagevet verify REF``: check the cosign signature of any image, as ``lock`` and ``sync`` do;
and :func:`load_verifiers`, which reads the public keys a policy's ``verify:`` rules name (the
only place key files and key variables are read; the engine gets the keys as values).

Exit codes: 0 verified (which signature, whose key), 1 not verified (why), 2 usage errors (a
bad reference, no key or two, a key that cannot be read, no policy entry for REF).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from imagevet.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    console,
    err_console,
    fail,
    make_store,
    print_json,
    run,
    terminal_safe,
)
from imagevet.errors import ImagevetError, SignatureError
from imagevet.reference import Reference

if TYPE_CHECKING:
    from imagevet.engine.attest import AttestationCheck
    from imagevet.engine.verify import Keyless, Verifier, VerifyResult
    from imagevet.policy.model import KeylessRule, KeySource, Policy, VerifyRule
    from imagevet.signature.keys import PublicKey

__all__ = ["load_verifiers", "policy_verifiers", "read_public_key", "register"]


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_command)


def _read_regular(path: str, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit`` (+1 to tell it is longer); a FIFO or a device
    is refused at once."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)


def _read_key_file(path: str) -> bytes:
    """A PEM file's bytes: a regular file, at most MAX_PEM_BYTES (+1 to tell it is longer)."""
    from imagevet.signature.keys import MAX_PEM_BYTES

    return _read_regular(path, MAX_PEM_BYTES)


def read_public_key(source: KeySource, env: Mapping[str, str]) -> PublicKey:
    """The public key ``source`` names (a file or a variable); SignatureError naming the source
    (and where the policy names it), never quoting the key."""
    from imagevet.signature.keys import load_public_key

    where = f"{source.location}: " if source.location is not None else ""
    if source.env is not None:
        what = f"{where}verify.key_env {source.env}"
        value = env.get(source.env)
        if not value:
            raise SignatureError(what, "the variable is not set (it should hold a PEM public key)")
        return load_public_key(value.encode("utf-8", "replace"), what=what)
    assert source.path is not None
    what = f"{where}verify.key {source.path}"
    try:
        data = _read_key_file(source.path)
    except OSError as e:
        raise SignatureError(what, f"cannot read it: {e.strerror or e}") from None
    return load_public_key(data, what=what)


MAX_TRUST_ROOT_BYTES = 1024 * 1024
"""A ``trusted_root.json`` longer than this is refused (the public-good root is about 10 KiB)."""


def keyless_verifier(rule: KeylessRule, *, what: str) -> Keyless:
    """The identity rule and trust root of a keyless ``verify:`` rule (the trust root file is
    read here; none named: Sigstore's public-good root as the ``sigstore`` package ships it)."""
    import re

    from imagevet.engine.verify import Keyless
    from imagevet.signature.keyless import IdentityRule
    from imagevet.signature.trustroot import TrustRoot

    identity = IdentityRule(
        subject=rule.subject,
        subject_pattern=re.compile(rule.subject_pattern) if rule.subject_pattern is not None else None,
        issuer=rule.issuer,
        issuer_pattern=re.compile(rule.issuer_pattern) if rule.issuer_pattern is not None else None,
    )
    if rule.trust_root is None:
        return Keyless(identity, TrustRoot.public_good())
    where = f"{what}verify.trust_root {rule.trust_root}"
    try:
        data = _read_regular(rule.trust_root, MAX_TRUST_ROOT_BYTES)
    except OSError as e:
        raise SignatureError(where, f"cannot read it: {e.strerror or e}") from None
    if len(data) > MAX_TRUST_ROOT_BYTES:
        raise SignatureError(where, f"longer than {MAX_TRUST_ROOT_BYTES} bytes: not a trust root")
    return Keyless(identity, TrustRoot.load(data, what=where))


def read_verifiers(policy: Policy, env: Mapping[str, str]) -> dict[VerifyRule, Verifier]:
    """The keys (or keyless identity and trust root) of every ``verify:`` rule of ``policy``,
    each source read once; SignatureError naming the first that cannot be read (``imagevet
    watch`` skips that run with it)."""
    from imagevet.engine.verify import Verifier

    keys: dict[KeySource, PublicKey] = {}
    out: dict[VerifyRule, Verifier] = {}
    for entry in policy.entries:
        rule = entry.verify
        if rule is None or rule in out:
            continue
        if rule.keyless is not None:
            where = f"{rule.location}: " if rule.location is not None else ""
            out[rule] = Verifier(rule, keyless=keyless_verifier(rule.keyless, what=where))
            continue
        for source in rule.keys:
            if source not in keys:
                keys[source] = read_public_key(source, env)
        out[rule] = Verifier(rule, tuple(keys[s] for s in rule.keys))
    return out


def load_verifiers(policy: Policy, env: Mapping[str, str] | None = None) -> dict[VerifyRule, Verifier]:
    """:func:`read_verifiers` for a command: a key that cannot be read stops it (exit 2),
    before any request."""
    try:
        return read_verifiers(policy, os.environ if env is None else env)
    except SignatureError as e:
        fail(str(e), EXIT_USAGE)


def policy_verifiers(policy: Policy) -> Mapping[VerifyRule, Verifier]:
    """What ``lock``, ``plan`` and ``sync`` pass down: the keys of the policy's verify: rules
    (nothing is read, nor the crypto library loaded, for a policy without one)."""
    if not any(e.verify is not None for e in policy.entries):
        return {}
    return load_verifiers(policy)


def _same_repository(a: Reference, b: Reference) -> bool:
    if a.is_layout or b.is_layout:
        return a.scheme == b.scheme and os.path.normpath(a.repository) == os.path.normpath(b.repository)
    return a.repo() == b.repo()


def _policy_verifier(policy_path: Path, ref: Reference) -> Verifier:
    """The rule of the policy entry whose source or target is ``ref``'s repository."""
    from imagevet.cli._policy import load

    policy = load(policy_path).every_entry
    matches = [e for e in policy.entries if _same_repository(e.source, ref) or _same_repository(e.target, ref)]
    if not matches:
        fail(f"no entry of {policy_path} has the source or target {ref.repo().name}", EXIT_USAGE)
    entry = matches[0]
    if entry.verify is None:
        fail(f"the entry {entry.name} of {policy_path} has no verify: rule; give --key or --key-env", EXIT_USAGE)
    return load_verifiers(dataclasses.replace(policy, entries=(entry,)))[entry.verify]


def _option_verifier(key: Path | None, key_env: str | None) -> Verifier:
    from imagevet.engine.verify import Verifier
    from imagevet.policy.model import KeySource, VerifyRule

    source = KeySource(path=str(key)) if key is not None else KeySource(env=key_env)
    try:
        public = read_public_key(source, os.environ)
    except SignatureError as e:
        fail(str(e), EXIT_USAGE)
    return Verifier(VerifyRule((source,)), (public,))


def _keyless_option_verifier(
    identity: str | None, identity_regexp: str | None, issuer: str | None, issuer_regexp: str | None,
    trust_root: Path | None,
) -> Verifier:
    import re

    from imagevet.engine.verify import Verifier
    from imagevet.policy.model import KeylessRule, VerifyRule

    if (identity is None) == (identity_regexp is None):
        fail("keyless: give exactly one of --identity or --identity-regexp", EXIT_USAGE)
    if (issuer is None) == (issuer_regexp is None):
        fail("keyless: give exactly one of --issuer or --issuer-regexp", EXIT_USAGE)
    for option, pattern in (("--identity-regexp", identity_regexp), ("--issuer-regexp", issuer_regexp)):
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as e:
                fail(f"{option}: invalid regular expression: {e}", EXIT_USAGE)
    rule = KeylessRule(identity, identity_regexp, issuer, issuer_regexp,
                       str(trust_root) if trust_root is not None else None)
    try:
        return Verifier(VerifyRule(keyless=rule), keyless=keyless_verifier(rule, what=""))
    except SignatureError as e:
        fail(str(e), EXIT_USAGE)


def verify_command(
    ref: str = typer.Argument(..., help="The image: NAME[:TAG|@DIGEST] (a registry) or oci:DIR[:TAG|@DIGEST] (an OCI layout)."),
    key: Path | None = typer.Option(None, "--key", help="A cosign public key (PEM file)."),
    key_env: str | None = typer.Option(None, "--key-env", help="An environment variable holding a cosign public key (PEM)."),
    identity: str | None = typer.Option(None, "--identity", help="Keyless: the certificate's subject (an email or URI), exactly."),
    identity_regexp: str | None = typer.Option(None, "--identity-regexp", help="Keyless: a regular expression the whole subject matches."),
    issuer: str | None = typer.Option(None, "--issuer", help="Keyless: the OIDC issuer, exactly."),
    issuer_regexp: str | None = typer.Option(None, "--issuer-regexp", help="Keyless: a regular expression the whole issuer matches."),
    trust_root: Path | None = typer.Option(None, "--trust-root", help="Keyless: a trusted_root.json (default: Sigstore's public-good root)."),
    policy: Path | None = typer.Option(
        None, "--policy", "-p", help="Without --key: the verify: rule of the policy entry whose source or target is REF."
    ),
    attestation_key: Path | None = typer.Option(
        None, "--attestation-key", help="Instead: check REF's imagevet attestation (an org mirror) with this public key (PEM)."
    ),
    insecure: list[str] = typer.Option([], "--insecure", help="Plain-HTTP registry host (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="The result as JSON."),
) -> None:
    """Check that REF carries a valid cosign signature: exit 0 verified, 1 not verified."""
    try:
        image = Reference.parse(ref)
    except ImagevetError as e:
        fail(str(e), EXIT_USAGE)
    keyless = [identity, identity_regexp, issuer, issuer_regexp, trust_root]
    if attestation_key is not None:
        if key is not None or key_env is not None or policy is not None or any(v is not None for v in keyless):
            fail("--attestation-key checks an org mirror's attestation: give it alone", EXIT_USAGE)
        _verify_attestation(image, attestation_key, insecure=insecure, as_json=as_json)
        return
    if key is not None and key_env is not None:
        fail("give --key or --key-env, not both", EXIT_USAGE)
    if (key is not None or key_env is not None) and any(v is not None for v in keyless):
        fail("give a key (--key, --key-env) or a keyless identity (--identity, --issuer), not both", EXIT_USAGE)
    if key is None and key_env is None and policy is None and not any(v is not None for v in keyless):
        fail("give --key FILE, --key-env NAME, --identity and --issuer (keyless), or --policy FILE "
             "(the rule of the entry for REF)", EXIT_USAGE)
    verifier = _option_verifier(key, key_env) if key is not None or key_env is not None else None
    if any(v is not None for v in keyless):
        verifier = _keyless_option_verifier(identity, identity_regexp, issuer, issuer_regexp, trust_root)
    if verifier is None:
        assert policy is not None
        verifier = _policy_verifier(policy, image)
    chosen = verifier

    async def _go() -> tuple[Reference, VerifyResult | None]:
        from imagevet.engine.verify import verify_digest

        async with make_store(insecure=insecure) as store:
            target = image if image.tag or image.digest else image.with_tag("latest")
            digest = image.digest
            if digest is None:
                head = await store.head_manifest(target)
                if head is None:
                    return target, None
                digest = head.digest
            return target, await verify_digest(store, target, digest, chosen)

    target, result = run(_go)
    if result is None:
        fail(f"{target}: no such image", EXIT_FAILURE)
    _report(target, result, chosen, as_json=as_json)
    if not result.ok:
        raise typer.Exit(EXIT_FAILURE)


def _verify_attestation(image: Reference, key_file: Path, *, insecure: list[str], as_json: bool) -> None:
    """``verify --attestation-key``: that an org mirror carries imagevet's attestation, signed
    by the organization's key, about this very digest; exit 0 when one verifies, 1 when none."""
    from imagevet.policy.model import KeySource

    try:
        public = read_public_key(KeySource(path=str(key_file)), os.environ)
    except SignatureError as e:
        fail(str(e), EXIT_USAGE)

    async def _go() -> AttestationCheck:
        from imagevet.engine.attest import verify_attestation

        async with make_store(insecure=insecure) as store:
            ref = image if image.tag or image.digest else image.with_tag("latest")
            return await verify_attestation(store, ref, public)

    check = run(_go)
    if as_json:
        print_json(check.to_json())
    elif check.latest is not None:
        found = check.latest
        predicate = found.predicate
        console.print(terminal_safe(f"attested: {image.repo().with_digest(check.digest) if check.digest else image}"),
                      highlight=False)
        console.print(terminal_safe(f"  mirror of {predicate.source}@{predicate.source_digest} (entry {predicate.entry})"),
                      highlight=False)
        console.print(terminal_safe(
            f"  approved by {predicate.approved_by}"
            + (f" until {predicate.expires}" if predicate.expires else "")
            + f"; lock sha256:{predicate.lock_sha256}; signed {predicate.time:%Y-%m-%dT%H:%M:%SZ} ({found.where})"
        ), highlight=False)
    else:
        for problem in check.problems or ("no imagevet attestation",):
            err_console.print(f"[red]not attested:[/] {terminal_safe(problem)}", highlight=False)
    if not check.ok:
        raise typer.Exit(EXIT_FAILURE)


def _report(ref: Reference, result: VerifyResult, verifier: Verifier, *, as_json: bool) -> None:
    image = ref.repo().with_digest(result.digest)
    if as_json:
        v = result.verified
        print_json({
            "reference": str(ref),
            "digest": str(result.digest),
            "verified": v is not None,
            "signature": str(v.signature) if v is not None else None,
            "found_by": result.found_by,
            "key": v.key if v is not None else None,
            "identity": v.identity if v is not None else None,
            "issuer": v.issuer if v is not None else None,
            "keys": [k.key_id for k in verifier.keys],
            "reasons": list(result.reasons),
            "examined": result.examined,
        })
        return
    if result.verified is not None:
        console.print(terminal_safe(f"verified: {image}"), highlight=False)
        console.print(terminal_safe(f"  signature {result.verified.signature} ({result.found_by})"), highlight=False)
        if result.verified.key is not None:
            console.print(terminal_safe(f"  key {result.verified.key}"), highlight=False)
        else:
            console.print(terminal_safe(
                f"  keyless: {result.verified.identity} from {result.verified.issuer}"
            ), highlight=False)
        return
    err_console.print(f"[red]not verified:[/] {terminal_safe(f'{image}: {result.reason}')}", highlight=False)
