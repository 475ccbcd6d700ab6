"""plan_sync scenarios: pinned and follow modes, approvals, prune candidates, platform subsets, budget."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from imagevet.digest import Digest
from imagevet.lock import Lock, LockedImage, LockEntry
from imagevet.manifest import Platform
from imagevet.mediatype import OCI_INDEX, OCI_MANIFEST
from imagevet.plan import (
    UNKNOWN_PLATFORMS,
    ActionKind,
    Copy,
    CreateRepo,
    Defer,
    Hold,
    Noop,
    Observed,
    Plan,
    Prune,
    SourceState,
    TargetState,
    Update,
    UpdateRepo,
    apply_budget,
    estimate_pulls,
    plan_sync,
)
from imagevet.policy import Policy, parse_policy
from imagevet.reference import Reference
from imagevet.repository_spec import RepoChange, RepoChangeKind

NOW = datetime(2026, 6, 15, 8, 0, 0, tzinfo=UTC)
T0 = datetime(2026, 5, 1, tzinfo=UTC)
A, B, C, X, S = (Digest.of(x) for x in (b"a", b"b", b"c", b"x", b"sig"))
SRC = Reference.parse("bitnami/redis")
DST = Reference.parse("docker.io/acme/redis")


def policy(
    mode: str = "pinned",
    extra: str = "",
    expires: str = "2027-01-01",
    source: str = "bitnami/redis",
) -> Policy:
    return parse_policy(
        f"""\
version: 1
target: {{namespace: acme}}
defaults:
  approval: {{approved_by: alice, ticket: SEC-1, expires: {expires}}}
images:
  - source: {source}
    mode: {mode}
    tags: {{allow: ['7\\.2\\.\\d+']}}
{extra}""",
        env={},
    )


def img(
    digest: Digest,
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
    referrers: tuple[Digest, ...] = (),
) -> LockedImage:
    return LockedImage(digest, OCI_INDEX, T0, platforms, referrers)


def lock(tags: dict[str, Digest], src: Reference = SRC, dst: Reference = DST) -> Lock:
    return Lock((LockEntry(src, dst, {t: img(d) for t, d in tags.items()}),))


def observed(
    upstream: dict[str, Digest] | None = None,
    target: dict[str, Digest | None] | None = None,
    *,
    listed: bool = True,
    exists: bool | None = True,
    changes: tuple[RepoChange, ...] = (),
    remaining: dict[str, int] | None = None,
    subsets: dict[Digest, Digest] | None = None,
    entry: str = "bitnami/redis",
) -> Observed:
    return Observed(
        sources={entry: SourceState(upstream)} if upstream is not None else {},
        targets={
            DST: TargetState(
                exists=exists,
                tags=target or {},
                listed=listed,
                changes=changes,
                subsets=subsets or {},
            )
        },
        remaining=remaining or {},
    )


def kinds(plan: Plan) -> list[str]:
    return [str(a.kind) for a in plan.actions]


# ---- pinned ----------------------------------------------------------------------------------


def test_first_sync_creates_repository_and_copies() -> None:
    changes = (
        RepoChange(RepoChangeKind.CREATE, "create acme/redis"),
        RepoChange(RepoChangeKind.TEAM, "grant dev read", "dev"),
    )
    plan = plan_sync(
        policy(),
        lock({"7.2.4": A, "7.2.5": B}),
        observed({"7.2.4": A, "7.2.5": B}, {}, exists=False, changes=changes),
        now=NOW,
    )
    assert kinds(plan) == ["create-repo", "copy", "copy"]
    create, copy4, copy5 = plan.actions
    assert (
        isinstance(create, CreateRepo)
        and create.changes == changes
        and create.spec.path == "acme/redis"
    )
    assert isinstance(copy4, Copy)
    assert copy4.source == SRC.with_tag("7.2.4").with_digest(A)
    assert copy4.target == DST.with_tag("7.2.4")
    assert (copy4.digest, copy4.platforms, copy4.referrers, copy4.pulls, copy4.note) == (
        A,
        None,
        True,
        3,
        "",
    )
    assert not copy4.rewrites_index
    assert plan.has_changes
    assert plan.summary() == {
        "create-repo": 1,
        "update-repo": 0,
        "copy": 2,
        "update": 0,
        "hold": 0,
        "prune": 0,
        "noop": 0,
        "defer": 0,
    }


def test_second_sync_is_all_noop() -> None:
    plan = plan_sync(
        policy(),
        lock({"7.2.4": A, "7.2.5": B}),
        observed({"7.2.4": A, "7.2.5": B}, {"7.2.4": A, "7.2.5": B}),
        now=NOW,
    )
    assert plan.actions == (
        Noop("bitnami/redis", DST.with_tag("7.2.4"), A),
        Noop("bitnami/redis", DST.with_tag("7.2.5"), B),
    )
    assert not plan.has_changes


def test_pinned_repointed_upstream_is_held_target_unchanged() -> None:
    plan = plan_sync(policy(), lock({"7.2.4": A}), observed({"7.2.4": B}, {"7.2.4": A}), now=NOW)
    (hold,) = plan.actions
    assert isinstance(hold, Hold)
    assert (hold.target, hold.wanted, hold.current, hold.upstream) == (
        DST.with_tag("7.2.4"),
        A,
        A,
        B,
    )
    assert (
        f"upstream moved to sha256:{B.hex[:12]}; the lock holds sha256:{A.hex[:12]}" in hold.reason
    )
    assert "run `imagevet lock`" in hold.reason
    assert not plan.has_changes


def test_pinned_new_upstream_tag_waits_for_the_lock() -> None:
    plan = plan_sync(
        policy(), lock({"7.2.4": A}), observed({"7.2.4": A, "7.2.6": C}, {"7.2.4": A}), now=NOW
    )
    assert kinds(plan) == ["noop", "hold"]
    hold = plan.actions[1]
    assert (
        isinstance(hold, Hold)
        and hold.target.tag == "7.2.6"
        and hold.upstream == C
        and hold.wanted is None
    )
    assert "not in the lock yet" in hold.reason


def test_pinned_copies_the_locked_digest_even_if_upstream_moved() -> None:
    plan = plan_sync(policy(), lock({"7.2.4": A}), observed({"7.2.4": B}, {}), now=NOW)
    (copy,) = plan.actions
    assert isinstance(copy, Copy) and copy.digest == A and copy.source.digest == A
    assert "upstream has since moved" in copy.note


def test_pinned_without_source_observation_uses_the_lock() -> None:
    plan = plan_sync(policy(), lock({"7.2.4": A}), observed(None, {"7.2.4": A}), now=NOW)
    assert kinds(plan) == ["noop"]


def test_pinned_target_tampered_is_restored_with_backup() -> None:
    plan = plan_sync(policy(), lock({"7.2.4": A}), observed({"7.2.4": A}, {"7.2.4": X}), now=NOW)
    (update,) = plan.actions
    assert isinstance(update, Update)
    assert (update.digest, update.old_digest) == (A, X)
    assert update.backup == DST.with_tag(f"7.2.4-backup-{X.hex[:12]}")


# ---- follow ----------------------------------------------------------------------------------


def test_follow_repointed_upstream_is_updated_with_backup() -> None:
    plan = plan_sync(
        policy("follow"), lock({"7.2.4": A}), observed({"7.2.4": B}, {"7.2.4": A}), now=NOW
    )
    (update,) = plan.actions
    assert isinstance(update, Update)
    assert update.source == SRC.with_tag("7.2.4").with_digest(B)
    assert update.target == DST.with_tag("7.2.4")
    assert (update.digest, update.old_digest) == (B, A)
    assert update.backup == DST.with_tag(f"7.2.4-backup-{A.hex[:12]}")
    assert update.costs() == {
        "docker.io": 4
    }  # B not in the lock: same-tag record (index, 2 platforms) + backup GET
    assert plan.has_changes


def test_follow_new_tag_is_copied_and_unselected_tag_is_a_prune_candidate() -> None:
    plan = plan_sync(
        policy("follow"),
        lock({"7.2.3": C, "7.2.4": A}),
        observed({"7.2.4": A, "7.2.5": B}, {"7.2.3": C, "7.2.4": A}),
        now=NOW,
    )
    assert kinds(plan) == ["noop", "copy", "prune"]
    prune = plan.actions[2]
    assert isinstance(prune, Prune) and prune.target == DST.with_tag("7.2.3") and prune.digest == C
    assert plan.actions[1].describe().startswith("copy bitnami/redis:7.2.5@sha256:")
    assert plan.actions[1].pulls == 1 + UNKNOWN_PLATFORMS  # type: ignore[union-attr]


def test_follow_backup_tag_template_with_date() -> None:
    p = policy("follow", extra="    backup_tag: '{tag}-{date}'\n")
    (update,) = plan_sync(
        p, lock({"7.2.4": A}), observed({"7.2.4": B}, {"7.2.4": A}), now=NOW
    ).actions
    assert isinstance(update, Update) and update.backup.tag == "7.2.4-20260615"


def test_backup_tag_too_long_is_held() -> None:
    long_tag = "7.2." + "1" * 120
    p = policy("follow")
    (hold,) = plan_sync(p, Lock(), observed({long_tag: B}, {long_tag: A}), now=NOW).actions
    assert isinstance(hold, Hold) and "is not a valid tag" in hold.reason


# ---- approvals -------------------------------------------------------------------------------


def test_expired_approval_holds_new_digests_but_keeps_mirrored_ones() -> None:
    p = policy(expires="2026-06-14")
    plan = plan_sync(
        p,
        lock({"7.2.4": A, "7.2.5": B}),
        observed({"7.2.4": A, "7.2.5": B}, {"7.2.4": A}, exists=True),
        now=NOW,
    )
    assert kinds(plan) == ["noop", "hold"]
    hold = plan.actions[1]
    assert isinstance(hold, Hold) and hold.wanted == B and hold.current is None
    assert hold.reason.startswith("approval expired on 2026-06-14 (alice)")
    assert plan.warnings == (
        "APPROVAL EXPIRED for bitnami/redis on 2026-06-14 (alice, SEC-1): new digests are held; renew approval.expires in the policy",
    )
    assert not plan.has_changes


def test_expired_approval_holds_follow_updates_and_skips_repository_creation() -> None:
    p = policy("follow", expires="2026-01-01")
    plan = plan_sync(
        p,
        Lock(),
        observed(
            {"7.2.4": B}, {}, exists=False, changes=(RepoChange(RepoChangeKind.CREATE, "create"),)
        ),
        now=NOW,
    )
    assert kinds(plan) == ["hold"]  # nothing to push, so no empty repository is created


def test_approval_valid_through_its_expiry_day_and_warned_before() -> None:
    p = policy(expires="2026-06-15")
    plan = plan_sync(p, lock({"7.2.4": A}), observed({"7.2.4": A}, {}), now=NOW)
    assert kinds(plan) == ["copy"]
    assert plan.warnings == ("approval for bitnami/redis expires on 2026-06-15 (in 0 days)",)


# ---- prune, repositories, explicit digests -------------------------------------------------------


def test_prune_candidates_skip_backups_and_digest_tags() -> None:
    target = {
        "7.2.4": A,
        "6.0": C,
        f"7.2.4-backup-{X.hex[:12]}": X,
        f"sha256-{A.hex}.sig": S,
        f"sha256-{A.hex}": S,
        "latest": None,
    }
    plan = plan_sync(policy(), lock({"7.2.4": A}), observed({"7.2.4": A}, target), now=NOW)
    assert [(str(a.kind), a.target.tag) for a in plan.actions] == [
        ("noop", "7.2.4"),
        ("prune", "6.0"),
        ("prune", "latest"),
    ]
    assert not plan.has_changes


def test_no_prune_without_a_full_tag_list() -> None:
    plan = plan_sync(
        policy(),
        lock({"7.2.4": A}),
        observed({"7.2.4": A}, {"7.2.4": A, "6.0": C}, listed=False),
        now=NOW,
    )
    assert kinds(plan) == ["noop"]


def test_repository_settings_drift_is_an_update_repo() -> None:
    changes = (RepoChange(RepoChangeKind.PRIVACY, "make private"),)
    plan = plan_sync(
        policy(), lock({"7.2.4": A}), observed({"7.2.4": A}, {"7.2.4": A}, changes=changes), now=NOW
    )
    assert kinds(plan) == ["update-repo", "noop"]
    assert isinstance(plan.actions[0], UpdateRepo) and plan.has_changes


def test_target_tag_with_unread_digest_is_held() -> None:
    plan = plan_sync(policy(), lock({"7.2.4": A}), observed({"7.2.4": A}, {"7.2.4": None}), now=NOW)
    (hold,) = plan.actions
    assert isinstance(hold, Hold) and "HEAD it first" in hold.reason


def test_explicit_digests_are_copied_by_digest_whole() -> None:
    p = parse_policy(
        f"""\
version: 1
target: {{namespace: acme}}
images:
  - source: bitnami/redis
    approval: {{approved_by: a}}
    platforms: [linux/amd64]
    tags: {{digests: ["{A}", "{B}"]}}
""",
        env={},
    )
    obs = Observed(targets={DST: TargetState(exists=True, digests=frozenset({B}))})
    plan = plan_sync(p, Lock(), obs, now=NOW)
    by_target = {a.target: a for a in plan.actions}
    assert sorted(kinds(plan)) == ["copy", "noop"]  # sorted by digest text
    copy, noop = by_target[DST.with_digest(A)], by_target[DST.with_digest(B)]
    assert isinstance(copy, Copy) and isinstance(noop, Noop)
    assert (copy.source, copy.target, copy.platforms) == (
        SRC.with_digest(A),
        DST.with_digest(A),
        None,
    )
    assert "copied whole" in copy.note


# ---- platform subsets ------------------------------------------------------------------------


def test_platform_subset_is_noted_and_recognised_once_mirrored() -> None:
    p = policy(extra="    platforms: [linux/arm64]\n")
    plan = plan_sync(p, lock({"7.2.4": A}), observed({"7.2.4": A}, {}), now=NOW)
    (copy,) = plan.actions
    assert (
        isinstance(copy, Copy)
        and copy.platforms == (Platform("linux", "arm64"),)
        and copy.rewrites_index
    )
    assert f"the target index digest will differ from the source's sha256:{A.hex[:12]}" in copy.note
    assert copy.pulls == 2  # the index + the one platform copied
    assert copy.to_json()["platforms"] == ["linux/arm64"]
    # after the copy the target holds X, the subset derived from A's bytes: nothing to do
    again = plan_sync(
        p, lock({"7.2.4": A}), observed({"7.2.4": A}, {"7.2.4": X}, subsets={A: X}), now=NOW
    )
    assert again.actions == (Noop("bitnami/redis", DST.with_tag("7.2.4"), X),)


# ---- pull budget -----------------------------------------------------------------------------


def test_budget_defers_what_does_not_fit_new_tags_first() -> None:
    # 7.2.3 is re-pointed (update, 3 + 1 pulls), 7.2.4 and 7.2.5 are new (3 pulls each)
    plan = plan_sync(
        policy("follow"),
        lock({"7.2.3": A, "7.2.4": B, "7.2.5": C}),
        observed({"7.2.3": B, "7.2.4": B, "7.2.5": C}, {"7.2.3": A}, remaining={"docker.io": 7}),
        now=NOW,
    )
    assert kinds(plan) == ["defer", "copy", "copy"]
    defer = plan.actions[0]
    assert isinstance(defer, Defer) and isinstance(defer.action, Update)
    assert defer.reason == "pull budget: needs 4 pulls at docker.io, 1 left"
    assert plan.has_changes


def test_budget_skips_big_copy_and_admits_a_smaller_one() -> None:
    actions = [
        Copy("e", SRC.with_digest(A), DST.with_tag("a"), A, pulls=6),
        Copy("e", SRC.with_digest(B), DST.with_tag("b"), B, pulls=2),
        Copy("e", Reference.parse("ghcr.io/x/y").with_digest(C), DST.with_tag("c"), C, pulls=50),
    ]
    out = apply_budget(actions, {"docker.io": 5})
    assert [str(a.kind) for a in out] == ["defer", "copy", "copy"]  # ghcr.io is not budgeted
    out = apply_budget(actions, {"docker.io": 5}, reserve=4)
    assert [str(a.kind) for a in out] == ["defer", "defer", "copy"]
    assert "keeping 4 in reserve" in out[1].reason  # type: ignore[union-attr]


ESTIMATES = [
    ("unknown image", None, None, True, 1 + UNKNOWN_PLATFORMS),
    ("unknown image, subset", None, (Platform("linux", "amd64"),), True, 2),
    ("single manifest", LockedImage(A, OCI_MANIFEST, T0), None, True, 1),
    ("single manifest with referrers", LockedImage(A, OCI_MANIFEST, T0, (), (S, X)), None, True, 3),
    ("referrers not copied", LockedImage(A, OCI_MANIFEST, T0, (), (S, X)), None, False, 1),
    ("index", img(A, ("linux/amd64", "linux/arm64", "linux/arm/v7")), None, True, 4),
    (
        "index, subset",
        img(A, ("linux/amd64", "linux/arm64", "linux/arm/v7")),
        (Platform("linux", "arm"),),
        True,
        2,
    ),
    ("index, platforms unknown", img(A, ()), None, True, 1 + UNKNOWN_PLATFORMS),
]


@pytest.mark.parametrize(
    ("image", "platforms", "referrers", "pulls"),
    [e[1:] for e in ESTIMATES],
    ids=[e[0] for e in ESTIMATES],
)
def test_estimate_pulls(
    image: LockedImage | None, platforms: tuple[Platform, ...] | None, referrers: bool, pulls: int
) -> None:
    assert estimate_pulls(image, platforms, referrers) == pulls


# ---- machine-readable form -------------------------------------------------------------------


def test_to_json_is_stable() -> None:
    plan = plan_sync(
        policy("follow"),
        lock({"7.2.4": A}),
        observed({"7.2.4": B}, {"7.2.4": A, "old": C}),
        now=NOW,
    )
    doc = plan.to_json()
    assert json.dumps(doc) == json.dumps(
        plan_sync(
            policy("follow"),
            lock({"7.2.4": A}),
            observed({"7.2.4": B}, {"old": C, "7.2.4": A}),
            now=NOW,
        ).to_json()
    )
    assert (
        doc["version"] == 1 and doc["now"] == "2026-06-15T08:00:00Z" and doc["has_changes"] is True
    )
    assert doc["summary"]["update"] == 1 and doc["summary"]["prune"] == 1
    assert doc["actions"] == [
        {
            "kind": "update",
            "entry": "bitnami/redis",
            "source": f"docker.io/bitnami/redis:7.2.4@{B}",
            "target": "docker.io/acme/redis:7.2.4",
            "tag": "7.2.4",
            "digest": str(B),
            "old_digest": str(A),
            "backup": f"docker.io/acme/redis:7.2.4-backup-{A.hex[:12]}",
            "platforms": None,
            "rewrites_index": False,
            "referrers": True,
            "pulls": 4,
            "note": "",
        },
        {
            "kind": "prune",
            "entry": "bitnami/redis",
            "target": "docker.io/acme/redis:old",
            "tag": "old",
            "digest": str(C),
            "reason": "not selected by the policy",
        },
    ]


def test_every_action_kind_describes_itself() -> None:
    assert {str(k) for k in ActionKind} == {
        "create-repo",
        "update-repo",
        "copy",
        "update",
        "hold",
        "prune",
        "noop",
        "defer",
    }


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_sync(policy(), Lock(), Observed(), now=datetime(2026, 1, 1))


def test_source_state_from_a_fresh_lock_entry() -> None:
    entry = LockEntry(SRC, DST, {"7.2.4": img(A), "7.2.5": img(B)})
    state = SourceState.from_lock_entry(entry)
    assert state.tags == {"7.2.4": A, "7.2.5": B} and set(state.images) == {A, B}


# ---- two entries on one source; platform subsets checked against the source bytes ---------------

ONE_SOURCE = parse_policy(
    """\
version: 1
target: {namespace: acme}
defaults:
  approval: {approved_by: alice, expires: 2027-01-01}
images:
  - {name: app-a, source: bitnami/redis, target: app-a, tags: {tags: ['1']}}
  - name: app-b
    source: bitnami/redis
    target: app-b
    mode: follow
    platforms: [linux/arm64]
    tags: {tags: ['2']}
  - {name: app-c, source: bitnami/redis, target: app-c, mode: follow, tags: {allow: ['[23]']}}
""",
    env={},
)
DST_A, DST_B, DST_C = (Reference.parse(f"docker.io/acme/app-{x}") for x in "abc")


def test_two_entries_on_one_source_plan_their_own_tags_every_time() -> None:
    # what each entry selected from the one upstream listing (1 -> A, 2 -> B, 3 -> C)
    lk = Lock((
        LockEntry(SRC, DST_A, {"1": img(A)}),
        LockEntry(SRC, DST_B, {"2": img(B)}),
        LockEntry(SRC, DST_C, {"2": img(B), "3": img(C)}),
    ))
    obs = Observed(
        sources={
            "app-a": SourceState({"1": A}),
            "app-b": SourceState({"2": B}),
            "app-c": SourceState({"2": B, "3": C}),
        },
        targets={
            DST_A: TargetState(exists=True, listed=True),
            DST_B: TargetState(exists=True, listed=True, tags={"2": B}, subsets={B: X}),
            DST_C: TargetState(exists=True, listed=True, tags={"2": B}),
        },
    )
    plans = [plan_sync(ONE_SOURCE, lk, obs, now=NOW) for _ in range(5)]
    assert all(p == plans[0] for p in plans)
    got = [(a.entry, str(a.kind), a.target.familiar) for a in plans[0].actions]
    assert got == [
        ("app-a", "copy", "acme/app-a:1"),
        ("app-b", "update", "acme/app-b:2"),  # holds the whole index B, not its arm64 subset X
        ("app-c", "noop", "acme/app-c:2"),
        ("app-c", "copy", "acme/app-c:3"),
    ]
    update = plans[0].actions[1]
    assert isinstance(update, Update) and update.platforms == (Platform("linux", "arm64"),)
    assert f"not sha256:{X.hex[:12]}" in update.note


def test_a_subset_mirror_is_a_noop_only_at_the_digest_derived_from_the_source() -> None:
    p = policy(extra="    platforms: [linux/arm64]\n")
    lk = lock({"7.2.4": A})
    derived = observed({"7.2.4": A}, {"7.2.4": X}, subsets={A: X})
    assert kinds(plan_sync(p, lk, derived, now=NOW)) == ["noop"]
    # an intruder at the tag, whatever any record says about it, is replaced (backup kept)
    intruder = observed({"7.2.4": A}, {"7.2.4": C}, subsets={A: X})
    (update,) = plan_sync(p, lk, intruder, now=NOW).actions
    assert isinstance(update, Update) and (update.old_digest, update.digest) == (C, A)
    assert update.note.startswith(f"the target holds sha256:{C.hex[:12]}, not sha256:{X.hex[:12]}")
    # no subset derived (the source index could not be read): the target is held, not trusted
    unknown = Observed(
        sources={"bitnami/redis": SourceState({"7.2.4": A})},
        targets={DST: TargetState(
            exists=True, listed=True, tags={"7.2.4": C}, unverified={A: "HTTP 503"}
        )},
    )
    (hold,) = plan_sync(p, lk, unknown, now=NOW).actions
    assert isinstance(hold, Hold) and hold.current == C
    assert "cannot be checked against the platform subset" in hold.reason and "HTTP 503" in hold.reason


def test_an_unobserved_target_plans_nothing_for_its_entry_only() -> None:
    lk = Lock((LockEntry(SRC, DST_A, {"1": img(A)}), LockEntry(SRC, DST_C, {"2": img(B)})))
    obs = Observed(
        sources={"app-c": SourceState({"2": B})},
        targets={
            DST_A: TargetState(error="GET .../tags/list: HTTP 500"),
            DST_B: TargetState(error="HTTP 500"),
            DST_C: TargetState(exists=True, listed=True),
        },
        warnings=("target docker.io/acme/app-c lists 1 invalid tag, skipped: 'a b'",),
    )
    plan = plan_sync(ONE_SOURCE, lk, obs, now=NOW)
    assert [(a.entry, str(a.kind)) for a in plan.actions] == [("app-c", "copy")]
    assert plan.warnings[0] == "target docker.io/acme/app-c lists 1 invalid tag, skipped: 'a b'"
