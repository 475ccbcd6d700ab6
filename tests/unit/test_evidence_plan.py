"""The planner's scan holds: an entry with ``scan:`` holds each copy or update whose digest's
scan is at or above ``fail_on`` or has no verdict; other entries and mirrored tags are not
touched."""

from __future__ import annotations

from imagevet.evidence import ScanVerdict
from imagevet.plan import Copy, Hold, Noop, Update, plan_sync
from imagevet.scanreport import ScanReport
from tests.unit.test_plan import NOW, A, B, lock, observed, policy

SCAN = "    scan: {command: [trivy, image, --format, json, '{ref}'], fail_on: high}\n"
BAD = ScanVerdict(ScanReport("trivy", {"critical": 2, "high": 5, "low": 7}))
FINE = ScanVerdict(ScanReport("grype", {"medium": 1, "negligible": 4}))


def test_a_copy_above_the_threshold_is_held_with_the_counts() -> None:
    plan = plan_sync(policy(extra=SCAN), lock({"7.2.4": A}), observed({"7.2.4": A}, {}), now=NOW,
                     scans={A: BAD})
    (hold,) = plan.actions
    assert isinstance(hold, Hold)
    assert hold.reason == "scan: 2 critical, 5 high (fail_on: high)"
    assert (hold.target.tag, hold.wanted, hold.current) == ("7.2.4", A, None)


def test_below_the_threshold_it_is_copied() -> None:
    plan = plan_sync(policy(extra=SCAN), lock({"7.2.4": A}), observed({"7.2.4": A}, {}), now=NOW,
                     scans={A: FINE})
    assert [type(a) for a in plan.actions] == [Copy]


def test_an_update_is_held_and_the_target_keeps_what_it_has() -> None:
    plan = plan_sync(policy(extra=SCAN), lock({"7.2.4": B}), observed({"7.2.4": B}, {"7.2.4": A}),
                     now=NOW, scans={B: BAD})
    (hold,) = plan.actions
    assert isinstance(hold, Hold) and (hold.wanted, hold.current) == (B, A)
    released = plan_sync(policy(extra=SCAN), lock({"7.2.4": B}), observed({"7.2.4": B}, {"7.2.4": A}),
                         now=NOW, scans={B: FINE})
    assert [type(a) for a in released.actions] == [Update]


def test_no_verdict_holds_fail_closed() -> None:
    none = plan_sync(policy(extra=SCAN), lock({"7.2.4": A}), observed({"7.2.4": A}, {}), now=NOW)
    (hold,) = none.actions
    assert isinstance(hold, Hold) and hold.reason.startswith(f"scan: no scan is recorded for sha256:{A.hex[:12]}")
    failed = plan_sync(policy(extra=SCAN), lock({"7.2.4": A}), observed({"7.2.4": A}, {}), now=NOW,
                       scans={A: ScanVerdict(problem="the scanner trivy did not finish within 600s")})
    (hold,) = failed.actions
    assert isinstance(hold, Hold)
    assert hold.reason == f"scan: no verdict for sha256:{A.hex[:12]}: the scanner trivy did not finish within 600s"


def test_what_is_mirrored_stays_and_entries_without_scan_ignore_verdicts() -> None:
    mirrored = plan_sync(policy(extra=SCAN), lock({"7.2.4": A}), observed({"7.2.4": A}, {"7.2.4": A}),
                         now=NOW, scans={A: BAD})
    assert [type(a) for a in mirrored.actions] == [Noop]
    unscanned = plan_sync(policy(), lock({"7.2.4": A}), observed({"7.2.4": A}, {}), now=NOW, scans={A: BAD})
    assert [type(a) for a in unscanned.actions] == [Copy]
