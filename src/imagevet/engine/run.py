"""A whole sync run as one library call: :func:`run_sync` (and :func:`plan_run`, its first half).

The sequence, the same for ``imagevet sync``, ``imagevet plan`` and a future ``watch`` service::

    repository specs (with the Hub overview)  repo_specs
    observe + plan                            plan_run   (HEADs and tag listings only)
    apply                                     sync.apply_plan (repositories, then images)
    follow entries' new lock                  sync.follow_lock
    records: run summary, lock file, ledger   state store, write_lock, ledger.record_events
    held updates (pinned, waiting for a person) engine.holds.record_holds

Everything comes in as arguments: the loaded policy and lock, the source and target image stores
(a registry client, an OCI layout store, or one ``StoreRouter`` serving both ends), the optional
repository manager (Docker Hub), the state store, the options, a clock and a progress sink.
Nothing here prints or reads the environment; the caller (the CLI) builds the pieces and renders
the :class:`RunReport`.  A failing image, an entry whose source cannot be read, a run summary or
lock that cannot be written, a ledger that refuses the records: each is in the report, and the
other steps still happen (records are never dropped because another record failed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagevet.engine.copy import DEFAULT_JOBS, CopyProgress
from imagevet.engine.holds import HoldChanges, record_holds
from imagevet.engine.observe import plan_policy, pulls_left
from imagevet.engine.state import HeldUpdate, StateStore
from imagevet.engine.verify import Verifier
from imagevet.errors import ImagevetError
from imagevet.ledger import AuditSetup, Recorded, record_events
from imagevet.lock import Lock, LockEntry, Verified, diff_locks, write_lock
from imagevet.plan import ActionKind, EntryProblem, Observed, Plan
from imagevet.policy import Policy
from imagevet.policy.model import Mode, VerifyRule
from imagevet.repository_spec import RepositoryManager, RepoSpec
from imagevet.statefiles import write_state_file
from imagevet.store import ImageStore
from imagevet.sync import (
    ActionOutcome,
    OverviewRenderer,
    SyncOptions,
    SyncReport,
    apply_plan,
    follow_lock,
    repo_specs,
    summarize_requests,
)

if TYPE_CHECKING:
    from imagevet.engine.attest import AttestResult, Records
    from imagevet.signature.keys import PrivateKey

__all__ = ["PlannedRun", "RunOptions", "RunReport", "plan_run", "run_sync", "utc_now"]


def utc_now() -> datetime:
    """The default clock: now, UTC, to the second (what plans and records are stamped with)."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run goes (``imagevet sync``'s options)."""

    dry_run: bool = False
    """Observe and plan only: nothing is copied and nothing is recorded."""
    prune: bool = False
    jobs: int = DEFAULT_JOBS
    """Blob transfers (and manifest requests) at once, across all images."""
    images: int = 4
    """Images copied at once."""
    budget_reserve: int = 0
    """Docker Hub pulls to leave unspent."""
    sign_key: PrivateKey | None = None
    """The organization's key (policy ``sign:``): each image copied or updated gets a signed
    attestation (``imagevet.engine.attest``); None: nothing is signed."""


@dataclass(frozen=True, slots=True)
class PlannedRun:
    """What :func:`plan_run` found: the plan, the observation it was made from, entry problems."""

    plan: Plan
    observed: Observed
    problems: tuple[EntryProblem, ...]
    specs: Mapping[str, RepoSpec]


async def plan_run(
    policy: Policy,
    lock: Lock,
    *,
    source: ImageStore,
    target: ImageStore,
    manager: RepositoryManager | None = None,
    state: StateStore | None = None,
    now: datetime,
    budget_reserve: int = 0,
    overview: OverviewRenderer | None = None,
    verifiers: Mapping[VerifyRule, Verifier] | None = None,
) -> PlannedRun:
    """Observe the sources and targets and plan (HEAD requests and tag listings only).

    With a repository ``manager`` each repository spec gets the overview (``overview``, by
    default Docker Hub's ``imagevet.hub.render_overview``), so the plan shows overview changes.
    ``state`` supplies the verified source-index cache (platform-subset mirrors are checked
    without a manifest GET when it holds their index).  ``verifiers``: the keys of each
    ``verify:`` rule (docs/verify.md); an entry with a rule and no keys holds what it would push.
    """
    if manager is not None and overview is None:
        # only runs that manage Hub repositories import the Hub package
        from imagevet.hub import render_overview

        overview = render_overview
    specs = repo_specs(policy, lock, overview if manager is not None else None)
    plan, observed, problems = await plan_policy(
        source, target, policy, lock, now=now, manager=manager, specs=specs,
        cache=state.manifests if state is not None else None, budget_reserve=budget_reserve,
        verifiers=verifiers,
    )
    return PlannedRun(plan, observed, tuple(problems), specs)


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one :func:`run_sync` did, for the caller to render; no field needs a registry.

    ``sync`` is the run itself (plan, every action's outcome, problems, requests, seconds: what
    the run summary and the ledger events are made of).  The rest says what was recorded.
    """

    sync: SyncReport
    lock: Lock
    """The lock after the run: follow entries brought along to what is mirrored now."""
    lock_changed: bool
    dry_run: bool = False
    summary_written: bool = False
    lock_written: bool = False
    recorded: Recorded | None = None
    """The ledger append (seq, the signed checkpoint and where it was pushed); None: not recorded."""
    summary_error: str | None = None
    lock_error: str | None = None
    ledger_error: str | None = None
    errors: tuple[str, ...] = field(default=())
    """Every record error, in the order they happened."""
    holds: HoldChanges = field(default=HoldChanges())
    """What the run did to the held updates (empty for a dry run): ``holds.new`` is what was
    newly held (see :mod:`imagevet.engine.holds`)."""
    holds_error: str | None = None
    pull_budget: Mapping[str, Any] = field(default_factory=dict)
    """``{"remaining": {registry: pulls}, "reserve": n, "deferred": n}`` as the run ended: pulls
    left per registry that reports them, the reserve asked for, copies deferred for the budget."""
    attestations: tuple[AttestResult, ...] = field(default=())
    """The attestations signed (or found already there) for this run's copies (``sign:``)."""

    @property
    def newly_held(self) -> tuple[HeldUpdate, ...]:
        """Updates held for the first time (or at a new upstream digest) by this run."""
        return self.holds.new

    @property
    def plan(self) -> Plan:
        return self.sync.plan

    @property
    def outcomes(self) -> tuple[ActionOutcome, ...]:
        return self.sync.outcomes

    @property
    def failed(self) -> list[ActionOutcome]:
        return self.sync.failed

    @property
    def problems(self) -> tuple[EntryProblem, ...]:
        return self.sync.problems

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self.sync.plan.warnings)

    @property
    def requests(self) -> Mapping[str, int]:
        return self.sync.requests

    @property
    def bytes_copied(self) -> int:
        return self.sync.bytes_copied

    @property
    def seconds(self) -> float:
        return self.sync.seconds

    def counts(self) -> dict[str, int]:
        return self.sync.counts()

    @property
    def records_written(self) -> bool:
        """The run summary and the ledger both hold this run (a dry run records nothing)."""
        return self.dry_run or (self.summary_written and self.recorded is not None)

    @property
    def ok(self) -> bool:
        """Every action and entry went through, and everything was recorded."""
        return (
            self.sync.ok and self.records_written and self.lock_error is None
            and self.holds_error is None
        )

    def summary(self) -> dict[str, Any]:
        """The run summary (``last-sync.json``): the sync's, with ``pull_budget``."""
        return {**self.sync.to_json(), "pull_budget": dict(self.pull_budget)}


async def run_sync(
    policy: Policy,
    lock: Lock,
    *,
    source: ImageStore,
    target: ImageStore,
    state: StateStore,
    manager: RepositoryManager | None = None,
    audit: AuditSetup | None = None,
    options: RunOptions = RunOptions(),
    clock: Callable[[], datetime] = utc_now,
    progress: CopyProgress | None = None,
    lock_problems: Sequence[EntryProblem] = (),
    lock_path: Path | None = None,
    summary_file: Path | None = None,
    verifiers: Mapping[VerifyRule, Verifier] | None = None,
    attest_records: Records | None = None,
) -> RunReport:
    """One whole sync: plan, apply, bring follow entries' lock along, record; see the module doc.

    ``lock_problems``: entries the caller left out of ``policy`` because their lock records
    cannot be read; they come first among the report's problems (and make it not ok).
    ``audit``: the ledger and its keys (default: ``state``'s ledger, unsigned); its checkpoint is
    pushed to ``target``.  ``lock_path``: where to write the new lock when it changed (None:
    not written; the caller has ``RunReport.lock``).  ``summary_file``: the run summary goes
    there (its directory followed as the user named it) instead of into ``state``.
    With ``options.sign_key`` every image copied or updated is signed after the copies, over
    the lock as this run writes it (each predicate carries the lock's ``verified`` and
    ``evidence`` records of the digest; ``attest_records`` replaces how they are found); an
    image that cannot be signed is a failed outcome, and the next run signs it even when it is
    then up to date (from ``state``'s run summary).

    Records are written in this order, each whatever happened to the one before: the run
    summary, the lock, the held updates (:func:`imagevet.engine.holds.record_holds`; what was
    newly held is ``RunReport.newly_held``), the ledger.  A dry run records nothing and leaves
    the lock as it was.
    Raises only what stops a run before it starts (an error from the registry client's setup);
    an image, an entry or a record that fails is in the report.
    """
    planned = await plan_run(
        policy, lock, source=source, target=target, manager=manager, state=state, now=clock(),
        budget_reserve=options.budget_reserve, verifiers=verifiers,
    )
    problems = (*lock_problems, *planned.problems)
    if options.dry_run:
        report = SyncReport(planned.plan, problems=problems, requests=summarize_requests(source, target))
        return RunReport(report, lock, lock_changed=False, dry_run=True,
                         pull_budget=_pull_budget(planned.plan, options, source, target))

    applied = await apply_plan(
        source, target, planned.plan, planned.observed, manager=manager, specs=planned.specs,
        options=SyncOptions(jobs=options.jobs, images=options.images, prune=options.prune),
        progress=progress, cache=state.manifests,
    )
    new_lock = _with_verified(policy, follow_lock(policy, lock, applied, planned.observed), planned.observed)
    attested: tuple[AttestResult, ...] = ()
    if options.sign_key is not None:
        from imagevet.engine.attest import sign_mirrors, unsigned_last_run

        try:  # what the last run copied but could not sign is signed now, even if up to date
            last = await asyncio.to_thread(state.read_run_summary)
        except ImagevetError:
            last = None
        applied, attested = await sign_mirrors(
            policy, applied, target=target, key=options.sign_key, lock=new_lock, now=clock(),
            records=attest_records, concurrency=options.images, retry=unsigned_last_run(last),
        )
    report = SyncReport(
        planned.plan, applied.outcomes, problems, applied.seconds, summarize_requests(source, target)
    )
    errors: list[str] = []
    budget = _pull_budget(planned.plan, options, source, target)

    summary_error: str | None = None
    summary = {**report.to_json(), "pull_budget": budget}
    try:
        if summary_file is not None:  # atomic, never through a symlink; the directory is the user's
            await asyncio.to_thread(
                write_state_file, summary_file, _summary_bytes(summary), follow_dir=True
            )
        else:
            await asyncio.to_thread(state.write_run_summary, summary)
    except ImagevetError as e:  # the lock and the ledger are still written
        summary_error = str(e)
        errors.append(summary_error)

    lock_diff = diff_locks(lock, new_lock)
    changed = lock_diff.has_changes or bool(lock_diff.verified)
    lock_written = False
    lock_error: str | None = None
    if changed and lock_path is not None:
        try:
            await asyncio.to_thread(write_lock, lock_path, new_lock)  # follow entries: what is mirrored now
            lock_written = True
        except (ImagevetError, OSError) as e:
            lock_error = f"cannot write {lock_path}: {e.strerror}" if isinstance(e, OSError) else str(e)
            errors.append(lock_error)

    holds = HoldChanges()
    holds_error: str | None = None
    try:  # what waits for a person: kept whatever happened to the other records
        holds = await asyncio.to_thread(record_holds, state, planned.plan, problems)
    except ImagevetError as e:
        holds_error = f"held updates not recorded: {e}"
        errors.append(holds_error)

    setup = audit or AuditSetup(state.ledger)
    recorded: Recorded | None = None
    ledger_error: str | None = None
    try:
        recorded = await record_events(
            setup, target if setup.signer is not None else None, report.ledger_events(), now=clock()
        )
    except ImagevetError as e:  # the records stay in the run summary
        ledger_error = str(e)
        errors.append(ledger_error)

    return RunReport(
        report, new_lock, lock_changed=changed, summary_written=summary_error is None,
        lock_written=lock_written, recorded=recorded, summary_error=summary_error,
        lock_error=lock_error, ledger_error=ledger_error, errors=tuple(errors),
        holds=holds, holds_error=holds_error, pull_budget=budget,
        attestations=attested,
    )


def _pull_budget(plan: Plan, options: RunOptions, *stores: ImageStore) -> dict[str, Any]:
    """The run summary's ``pull_budget``: pulls left per registry as last seen, the reserve, and
    how many copies the budget deferred."""
    return {
        "remaining": dict(sorted(pulls_left(*stores).items())),
        "reserve": options.budget_reserve,
        "deferred": len(plan.of_kind(ActionKind.DEFER)),
    }


def _with_verified(policy: Policy, lock: Lock, observed: Observed) -> Lock:
    """``lock`` with the signature that verified each ``follow`` entry's digest this run (its
    ``verify:`` rule's verdicts) on the records that lack it; ``pinned`` entries are never
    touched (only ``imagevet lock`` verifies them)."""
    for entry in policy.entries:
        locked = lock.entry(entry.key)
        verdicts = observed.verdicts.get(entry.name)
        if entry.mode is not Mode.FOLLOW or entry.verify is None or locked is None or not verdicts:
            continue
        tags = {}
        for tag, image in locked.tags.items():
            verdict = verdicts.get(image.digest)
            if isinstance(verdict, Verified) and image.verified != verdict:
                image = replace(image, verified=verdict)
            tags[tag] = image
        lock = lock.with_entry(LockEntry(locked.source, locked.target, tags, locked.digests))
    return lock


def _summary_bytes(summary: Mapping[str, Any]) -> bytes:
    return (json.dumps(summary, indent=2) + "\n").encode()
