"""``notify_run`` against a local receiver on 127.0.0.1: what arrives, how often, how long it
takes, and that no secret shows anywhere.  The run reports are built by hand from plan actions
(the integration test makes them with real registries)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.engine.run import RunReport
from imagevet.engine.state import FileStateStore
from imagevet.lock import Lock
from imagevet.notify import SCHEMA, DeliverySettings, EventKind, NotifyOutcome, notify_run
from imagevet.plan import EntryProblem, Plan
from imagevet.plan.actions import Action, Copy, Defer, Hold, Noop
from imagevet.policy import Policy, parse_policy
from imagevet.reference import Reference
from imagevet.registry.retry import RetryPolicy
from imagevet.sync import ActionOutcome, SyncReport
from tests.unit.notify.receiver import HANG, Receiver

NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
D1, D2, D3 = (Digest.parse("sha256:" + c * 64) for c in "123")
FAST = DeliverySettings(total_seconds=10.0, attempt_seconds=3.0,
                        retry=RetryPolicy(attempts=3, wait_initial=0.05, wait_max=0.1, wait_jitter=0.0,
                                          max_retry_after=5.0))
SLACK_TOKEN = "T0AAAAAAA/B0BBBBBBB/xoxsecretpathtoken1234"
HMAC_KEY = "hmac-key-do-not-show-8c1f"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def policy(notify: str, *, expires: str = "2099-12-31") -> Policy:
    return parse_policy(
        "version: 1\n"
        "target:\n  registry: registry.example.com\n  namespace: acme\n"
        f"defaults:\n  approval: {{approved_by: sec@acme.example, expires: {expires}}}\n"
        "images:\n"
        "  - source: docker.io/library/redis\n    tags: {tags: ['7.2']}\n"
        "  - source: docker.io/library/nginx\n    tags: {tags: ['1.27']}\n"
        + ("notify:\n" + notify if notify else ""),
        path="imagevet.yaml", env={},
    )


def ref(entry: str, tag: str) -> Reference:
    return Reference.parse(f"registry.example.com/acme/{entry}:{tag}")


def held(entry: str = "redis", tag: str = "7.2", upstream: Digest = D2) -> Hold:
    return Hold(entry, ref(entry, tag), f"upstream moved to {upstream}; the lock holds {D1}",
                wanted=D1, current=D1, upstream=upstream)


def copy(entry: str = "nginx", tag: str = "1.27", digest: Digest = D3) -> Copy:
    return Copy(entry, Reference.parse(f"docker.io/library/{entry}:{tag}@{digest}"), ref(entry, tag), digest)


def report(*actions: Action, failed: tuple[Action, ...] = (), problems: tuple[EntryProblem, ...] = (),
           dry_run: bool = False) -> RunReport:
    outcomes = tuple(ActionOutcome(a, "failed", "copy failed: HTTP 500 from the source") for a in failed)
    plan = Plan((*actions, *failed), NOW)
    return RunReport(SyncReport(plan, outcomes, problems), Lock(), lock_changed=False, dry_run=dry_run)


async def run(rep: RunReport, pol: Policy, state: FileStateStore, env: dict[str, str], *,
              now: datetime = NOW, settings: DeliverySettings = FAST) -> NotifyOutcome:
    return await notify_run(rep, pol, state, now=now, env=env, settings=settings)


HOOK = "  - type: webhook\n    url_env: HOOK_URL\n"
SLACK = "  - type: slack\n    url_env: SLACK_URL\n"


# -- nothing configured, nothing sent --------------------------------------------------------------


async def test_without_targets_nothing_is_sent_or_stored(tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    out = await run(report(held()), policy(""), state, {"HOOK_URL": "http://127.0.0.1:9/x"})
    assert out == NotifyOutcome() and out.ok
    assert not (tmp_path / ".imagevet").exists()


# -- bodies --------------------------------------------------------------------------------------------


async def test_the_webhook_body_carries_kind_entry_tag_digests_reason_time_and_version(
    receiver: Receiver, tmp_path: Path
) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    env = {"HOOK_URL": receiver.url("/hook")}
    out = await run(report(held()), policy(HOOK), state, env)
    assert [d.describe() for d in out.deliveries] == [
        f"notified HOOK_URL (127.0.0.1:{receiver.port}): held-update redis:7.2 (sha256:222222222222)"
    ]
    (got,) = receiver.to("/hook")
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"].startswith("imagevet/")
    assert got.headers["X-Imagevet-Event"] == "held-update"
    assert "X-Imagevet-Signature" not in got.headers  # no secret configured
    body = got.json()
    assert set(body) == {"schema", "id", "kind", "entry", "tag", "source", "target", "digests", "reason",
                         "time", "imagevet_version", "approval", "deferred"}
    assert body["schema"] == SCHEMA and body["kind"] == "held-update"
    assert (body["entry"], body["tag"]) == ("redis", "7.2")
    assert body["source"] == "docker.io/library/redis:7.2"
    assert body["target"] == "registry.example.com/acme/redis:7.2"
    assert body["digests"] == {"wanted": str(D1), "current": str(D1), "upstream": str(D2)}
    assert body["reason"].startswith("upstream moved to") and body["time"] == "2026-11-30T10:00:00Z"
    assert body["imagevet_version"] and body["approval"] is None and body["deferred"] is None
    assert got.headers["X-Imagevet-Delivery"] == body["id"] and len(body["id"]) == 32


async def test_the_slack_body_has_text_and_blocks_with_mrkdwn_escaped(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    bad = copy()
    rep = report(failed=(bad,))
    rep = RunReport(SyncReport(rep.plan, (ActionOutcome(bad, "failed", "source said <!channel> & <https://evil|click>"),)),
                    Lock(), lock_changed=False)
    await run(rep, policy(SLACK), state, {"SLACK_URL": receiver.url("/services/" + SLACK_TOKEN)})
    (got,) = receiver.requests
    body = got.json()
    assert set(body) == {"text", "blocks"}
    assert body["text"] == "imagevet: Sync failing: nginx:1.27"
    section, context = body["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "*Sync failing: nginx:1.27*" in section["text"]["text"]
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in section["text"]["text"]
    assert "<!channel>" not in got.body.decode()
    assert context["type"] == "context" and "imagevet " in context["elements"][0]["text"]
    assert "`registry.example.com/acme/nginx:1.27`" in context["elements"][0]["text"]


async def test_every_kind_of_event_reaches_the_target(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    pol = policy(HOOK, expires="2026-12-10")  # 10 days left: within the default 14
    new_tag = Hold("redis", ref("redis", "8.0"), "new upstream tag, not in the lock yet", upstream=D3)
    defer = Defer("nginx", copy(tag="1.26"), "the Docker Hub pull budget would run out (2 left)")
    rep = report(held(), new_tag, defer, failed=(copy(),),
                 problems=(EntryProblem("redis", "docker.io/library/redis", "HTTP 401: unauthorized"),))
    out = await run(rep, pol, state, {"HOOK_URL": receiver.url("/hook")})
    assert out.ok and len(out.sent) == 7
    bodies = [r.json() for r in receiver.to("/hook")]
    kinds = sorted((b["kind"], b["entry"], b["tag"]) for b in bodies)
    assert kinds == [
        ("approval-expiring", "nginx", ""), ("approval-expiring", "redis", ""),
        ("budget-exhausted", "", ""),
        ("held-update", "redis", "7.2"), ("held-update", "redis", "8.0"),
        ("sync-failure", "nginx", "1.27"), ("sync-failure", "redis", ""),
    ]
    by = {(b["kind"], b["entry"], b["tag"]): b for b in bodies}
    assert by[("approval-expiring", "redis", "")]["approval"] == {
        "expires": "2026-12-10", "approved_by": "sec@acme.example", "days_left": 10}
    assert by[("budget-exhausted", "", "")]["deferred"] == {"count": 1, "listed": ["nginx:1.26"]}
    assert by[("held-update", "redis", "8.0")]["digests"] == {"wanted": None, "current": None, "upstream": str(D3)}
    assert by[("sync-failure", "nginx", "1.27")]["digests"]["wanted"] == str(D3)
    assert by[("sync-failure", "redis", "")]["reason"] == "docker.io/library/redis: HTTP 401: unauthorized"


async def test_a_target_gets_only_the_kinds_it_asks_for(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    pol = policy(HOOK + "    events: [sync-failure]\n", expires="2026-12-10")
    await run(report(held(), failed=(copy(),)), pol, state, {"HOOK_URL": receiver.url("/hook")})
    assert [r.json()["kind"] for r in receiver.requests] == ["sync-failure"]


async def test_a_dry_run_sends_nothing(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    out = await run(report(held(), dry_run=True), policy(HOOK), state, {"HOOK_URL": receiver.url("/hook")})
    assert out.deliveries == () and receiver.requests == []


# -- once ----------------------------------------------------------------------------------------------


async def test_a_held_update_is_sent_once_then_again_only_after_it_cleared(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    pol, env = policy(HOOK), {"HOOK_URL": receiver.url("/hook")}
    for _ in range(3):
        await run(report(held()), pol, state, env)
    assert len(receiver.requests) == 1
    # upstream moves again: another digest is another event
    await run(report(held(upstream=D3)), pol, state, env)
    assert [r.json()["digests"]["upstream"] for r in receiver.requests] == [str(D2), str(D3)]
    # approved: the entry is planned without a hold; the hold comes back later: sent again
    await run(report(Noop("redis", ref("redis", "7.2"), D3)), pol, state, env)
    assert len(receiver.requests) == 2
    await run(report(held(upstream=D3)), pol, state, env)
    assert len(receiver.requests) == 3


async def test_a_held_update_is_not_forgotten_when_its_entry_could_not_be_read(
    receiver: Receiver, tmp_path: Path
) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    pol, env = policy(HOOK + "    events: [held-update]\n"), {"HOOK_URL": receiver.url("/hook")}
    await run(report(held()), pol, state, env)
    await run(report(problems=(EntryProblem("redis", "docker.io/library/redis", "HTTP 503"),)), pol, state, env)
    await run(report(held()), pol, state, env)
    assert len(receiver.requests) == 1  # the source being down for a run did not clear the hold


async def test_a_failure_is_sent_once_while_it_lasts_and_again_when_it_comes_back(
    receiver: Receiver, tmp_path: Path
) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    pol, env = policy(HOOK), {"HOOK_URL": receiver.url("/hook")}
    for _ in range(2):
        await run(report(failed=(copy(),)), pol, state, env)
    assert len(receiver.requests) == 1
    out = await run(report(Noop("nginx", ref("nginx", "1.27"), D3)), pol, state, env)  # it went through
    assert out.forgotten == 1 and len(receiver.requests) == 1
    await run(report(failed=(copy(),)), pol, state, env)
    assert len(receiver.requests) == 2


async def test_budget_exhausted_is_sent_once_per_spell(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    pol, env = policy(HOOK), {"HOOK_URL": receiver.url("/hook")}
    defer = Defer("nginx", copy(), "the Docker Hub pull budget would run out")
    for _ in range(3):
        await run(report(defer), pol, state, env)
    assert [r.json()["kind"] for r in receiver.requests] == ["budget-exhausted"]
    await run(report(Noop("nginx", ref("nginx", "1.27"), D3)), pol, state, env)  # the window reset
    await run(report(Defer("nginx", copy(tag="1.28"), "the Docker Hub pull budget would run out")), pol, state, env)
    assert [r.json()["deferred"]["listed"] for r in receiver.requests] == [["nginx:1.27"], ["nginx:1.28"]]


async def test_an_expiring_approval_is_sent_once_per_expiry_date(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    env = {"HOOK_URL": receiver.url("/hook")}
    target = HOOK + "    events: [approval-expiring, approval-expired]\n    expiring_within: 7d\n"
    pol = policy(target, expires="2026-12-10")
    for day in (0, 2, 3, 4, 5):  # 10 days left, then 8, 7, 6, 5: inside the window from day 3
        await run(report(), pol, state, env, now=NOW + timedelta(days=day))
    assert sorted((r.json()["entry"], r.json()["approval"]["days_left"]) for r in receiver.requests) == [
        ("nginx", 7), ("redis", 7)]
    # renewed to a later date, which comes near in its turn: sent again
    renewed = policy(target, expires="2027-03-01")
    await run(report(), renewed, state, env, now=datetime(2027, 2, 25, tzinfo=UTC))
    # and the first date, once past, is an expired approval (sent once as well)
    await run(report(), pol, state, env, now=datetime(2026, 12, 11, tzinfo=UTC))
    await run(report(), pol, state, env, now=datetime(2026, 12, 12, tzinfo=UTC))
    assert [(r.json()["kind"], r.json()["approval"]["expires"]) for r in receiver.requests[2:]] == [
        ("approval-expiring", "2027-03-01"), ("approval-expiring", "2027-03-01"),
        ("approval-expired", "2026-12-10"), ("approval-expired", "2026-12-10"),
    ]


# -- delivery: failures, retries, bounds ------------------------------------------------------------------


async def test_two_targets_one_failing_the_good_one_is_not_resent_the_bad_one_is_retried(
    receiver: Receiver, tmp_path: Path
) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    pol = policy(HOOK + "  - type: webhook\n    url_env: BAD_URL\n")
    env = {"HOOK_URL": receiver.url("/good"), "BAD_URL": receiver.url("/bad")}
    receiver.script("/bad", [503])
    first = await run(report(held()), pol, state, env)
    assert [d.sent for d in first.deliveries] == [True, False]
    assert first.failed[0].describe() == (
        f"notification to BAD_URL (127.0.0.1:{receiver.port}) failed: held-update redis:7.2 (sha256:222222222222): "
        "HTTP 503: error 503 (after 3 attempts); retried next run")
    assert len(receiver.to("/bad")) == 3 and len(receiver.to("/good")) == 1
    receiver.script("/bad", [200])
    second = await run(report(held()), pol, state, env)
    assert [(d.target.split()[0], d.sent) for d in second.deliveries] == [("BAD_URL", True)]
    assert len(receiver.to("/good")) == 1 and len(receiver.to("/bad")) == 4
    await run(report(held()), pol, state, env)
    assert len(receiver.requests) == 5  # nothing more


async def test_a_5xx_then_2xx_is_retried_within_the_run(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    receiver.script("/hook", [500, 502, 200])
    out = await run(report(held()), policy(HOOK), state, {"HOOK_URL": receiver.url("/hook")})
    assert out.ok and out.sent[0].attempts == 3 and len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1  # the same body each time


async def test_429_waits_as_retry_after_says(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    receiver.script("/hook", [(429, {"Retry-After": "1"}, "slow down"), 200])
    out = await run(report(held()), policy(HOOK), state, {"HOOK_URL": receiver.url("/hook")})
    first, second = receiver.requests
    assert out.ok and second.at - first.at >= 0.95


async def test_a_retry_after_beyond_the_bound_is_not_waited_for(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    receiver.script("/hook", [(429, {"Retry-After": "3600"}, "")])
    started = time.monotonic()
    out = await run(report(held(), failed=(copy(),)), policy(HOOK), state, {"HOOK_URL": receiver.url("/hook")})
    assert time.monotonic() - started < 2
    assert len(receiver.requests) == 1  # the second event waits for the next run, not sent now
    assert [d.reason for d in out.failed][0] == "HTTP 429; asked to wait 3600 s (more than 5 s)"
    assert out.failed[1].reason.startswith(f"not sent: HOOK_URL (127.0.0.1:{receiver.port}) failed earlier in this run")


async def test_a_receiver_that_hangs_is_bounded_in_time(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    receiver.script("/hang", [HANG])
    pol = policy(HOOK + "  - type: webhook\n    url_env: HANG_URL\n")
    env = {"HOOK_URL": receiver.url("/hook"), "HANG_URL": receiver.url("/hang")}
    settings = DeliverySettings(total_seconds=2.0, attempt_seconds=0.7,
                                retry=RetryPolicy(attempts=10, wait_initial=0.05, wait_max=0.05, wait_jitter=0.0))
    started = time.monotonic()
    out = await run(report(held(), failed=(copy(),)), pol, state, env, settings=settings)
    took = time.monotonic() - started
    assert took < 3.0, took
    assert len(out.sent) == 2  # the good target was not held up
    assert len(out.failed) == 2 and all("HANG_URL" in d.target for d in out.failed)
    assert "no answer within" in out.failed[0].reason


async def test_a_redirect_is_not_followed(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    receiver.script("/hook", [(307, {"Location": receiver.url("/elsewhere")}, "")])
    out = await run(report(held()), policy(HOOK), state, {"HOOK_URL": receiver.url("/hook")})
    assert out.failed[0].reason == "HTTP 307: redirects are not followed"
    assert receiver.to("/elsewhere") == []


async def test_a_dead_port_fails_and_is_retried_next_run(tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    out = await run(report(held()), policy(HOOK), state, {"HOOK_URL": "http://127.0.0.1:9/hook"})
    assert not out.ok and out.failed[0].reason.startswith("cannot connect")
    assert state.notices() == []


async def test_a_huge_error_answer_is_read_bounded_and_shown_short(receiver: Receiver, tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    receiver.script("/hook", [(400, {}, "\x1b[31m" + "x" * (4 << 20))])
    out = await run(report(held()), policy(HOOK), state, {"HOOK_URL": receiver.url("/hook")})
    reason = out.failed[0].reason
    assert reason.startswith("HTTP 400: \\x1b[31mxxx") and len(reason) <= 220


async def test_an_unreadable_notified_file_sends_nothing_and_says_so(receiver: Receiver, tmp_path: Path) -> None:
    (tmp_path / ".imagevet").mkdir()
    (tmp_path / ".imagevet" / "notified.json").write_text("{not json")
    state = FileStateStore(tmp_path / ".imagevet")
    out = await run(report(held()), policy(HOOK), state, {"HOOK_URL": receiver.url("/hook")})
    assert receiver.requests == [] and out.deliveries == ()
    (problem,) = out.problems
    assert problem.startswith("notifications not sent: ") and "notified.json: not JSON" in problem


# -- configuration and secrets ----------------------------------------------------------------------------


async def test_targets_left_out_say_why_without_the_url(tmp_path: Path) -> None:
    state = FileStateStore(tmp_path / ".imagevet")
    pol = policy(HOOK + SLACK + "  - type: webhook\n    url_env: SIGNED_URL\n    secret_env: SIGNED_KEY\n"
                 "  - type: webhook\n    url_env: ODD_URL\n")
    env = {"SLACK_URL": "http://hooks.example.com/services/secretpath1", "SIGNED_URL": "https://h.example.com/x",
           "ODD_URL": "ftp://files.example.com/secretpath2"}
    out = await run(report(held()), pol, state, env)
    assert out.deliveries == ()
    assert list(out.problems) == [
        "HOOK_URL is not set: notifications for it are not sent",
        "SLACK_URL (hooks.example.com): plain http is allowed only for a receiver on this machine "
        "(localhost, 127.0.0.0/8, [::1]); use https: notifications for it are not sent",
        "SIGNED_KEY (the HMAC key of SIGNED_URL) is not set: notifications for it are not sent unsigned",
        "ODD_URL does not hold an http(s) URL: notifications for it are not sent",
    ]
    assert "secretpath" not in " ".join(out.problems)


async def test_no_secret_shows_in_outcomes_state_or_logs(
    receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    state = FileStateStore(tmp_path / ".imagevet")
    pol = policy("  - type: webhook\n    url_env: HOOK_URL\n    secret_env: HOOK_KEY\n"
                 "  - type: slack\n    url_env: SLACK_URL\n")
    hook_url = receiver.url("/hook/" + SLACK_TOKEN + "?token=querysecret98765")
    env = {"HOOK_URL": hook_url, "HOOK_KEY": HMAC_KEY, "SLACK_URL": receiver.url("/services/" + SLACK_TOKEN)}
    # the receiver echoes the URL, the token and the key back in its error
    echo = f"bad request to {hook_url} token={SLACK_TOKEN} key={HMAC_KEY}"
    receiver.script("/hook/" + SLACK_TOKEN, [(500, {}, echo), 200])
    receiver.script("/services/" + SLACK_TOKEN, [(400, {}, echo)])
    out = await run(report(held(), failed=(copy(),)), pol, state, env)
    assert len(out.sent) == 2 and len(out.failed) == 2
    signed = receiver.to("/hook/" + SLACK_TOKEN)[-1]
    expected = "sha256=" + hmac.new(HMAC_KEY.encode(), signed.body, hashlib.sha256).hexdigest()
    assert signed.headers["X-Imagevet-Signature"] == expected
    shown = "\n".join([*(d.describe() for d in out.deliveries), *out.problems, caplog.text,
                       *(p.read_text() for p in (tmp_path / ".imagevet").iterdir() if p.is_file()),
                       json.dumps([r.json() for r in receiver.requests])])
    assert "HTTP 400: bad request to *** token=***/***/*** key=***" in shown  # the answer, masked
    for secret in (SLACK_TOKEN, "xoxsecretpathtoken1234", "querysecret98765", HMAC_KEY, "/services/", "/hook/"):
        assert secret not in shown, secret


def test_event_kinds_are_the_policy_names() -> None:
    from imagevet.policy.model import NOTIFY_EVENTS

    assert tuple(str(k) for k in EventKind) == NOTIFY_EVENTS
