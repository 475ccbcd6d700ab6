"""Time ``imagevet check`` over a generated repository of ~300 files, as a user runs it.

    python bench/check.py [COPIES] [--crds N] [--charts N] [--tree DIR]

Copies the check fixture repository (tests/fixtures/check) COPIES times (default 38: 8 scanned
files each, 304 in all) into a temporary directory and runs ``imagevet check --offline`` with the
fixture's vetted mirrors: best and median of 5 whole-process runs (start-up included), plus the
scan and judgement alone in this process.  ``--crds N`` adds N generated CustomResourceDefinition
files of about 460 KB each (tests/unit/check/crds.py; one to three documents per file), as a
chart repository's ``crds/`` folders hold them.  ``--charts N`` adds N Helm charts copied in
turn from the real charts of the check corpus (tests/fixtures/check/corpus: kube-state-metrics,
prometheus-operator-admission-webhook, kube-prometheus-stack with its CRD subchart; templates in
subfolders, a 5,981-line values.yaml).  ``--tree DIR`` times a directory as it is instead (a
checkout of a chart repository: ``--tree helm-charts/charts``).  CPU time is printed too: on a
shared machine it moves less than wall time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagevet.category import AccessSettings  # noqa: E402
from imagevet.check import CheckContext, check_scan, read_vetted, scan_paths  # noqa: E402
from tests.unit.check.conftest import FIXTURES, REPO, VETTED_JSON  # noqa: E402
from tests.unit.check.crds import crd_file  # noqa: E402

CHARTS = sorted(p.parent for p in (FIXTURES / "corpus").glob("*/*/Chart.yaml"))


def build(root: Path, copies: int, crds: int = 0, charts: int = 0) -> int:
    for i in range(charts):
        shutil.copytree(CHARTS[i % len(CHARTS)], root / "charts" / f"chart{i:03d}")
    for i in range(copies):
        shutil.copytree(REPO, root / f"svc{i:03d}", ignore=shutil.ignore_patterns("node_modules"))
    if crds:
        (root / "crds").mkdir()
    for i in range(crds):
        (root / "crds" / f"crd{i:03d}.yaml").write_text(crd_file(i, documents=1 + i % 3))
    return sum(1 for p in root.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("copies", nargs="?", type=int, default=38)
    parser.add_argument("--crds", type=int, default=0, metavar="N", help="add N CRD files (~460 KB each)")
    parser.add_argument("--charts", type=int, default=0, metavar="N", help="add N real Helm charts (corpus)")
    parser.add_argument("--tree", type=Path, default=None, metavar="DIR", help="time DIR as it is")
    args = parser.parse_args()
    copies = 0 if (args.charts or args.tree) and args.copies == 38 else args.copies
    context = CheckContext("acme", AccessSettings("acme", enabled=True), read_vetted(VETTED_JSON))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.tree.resolve() if args.tree else Path(tmp)
        files = (sum(1 for p in root.rglob("*") if p.is_file()) if args.tree
                 else build(root, copies, args.crds, args.charts))
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        inner, cpu = [], []
        for _ in range(5):
            started, started_cpu = time.perf_counter(), time.process_time()
            report = check_scan(scan_paths([root], root=root), context)
            inner.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        whole = []
        cmd = [sys.executable, "-m", "imagevet.cli", "check", str(root), "--offline", "--org", "acme",
               "--vetted", str(VETTED_JSON), "--format", "json"]
        whole_cpu = []
        for _ in range(5):
            started = time.perf_counter()
            before = os.times()
            subprocess.run(cmd, capture_output=True, check=False)
            after = os.times()
            whole.append(time.perf_counter() - started)
            whole_cpu.append(after.children_user + after.children_system
                             - before.children_user - before.children_system)
        scanned = len(report.files)
        print(f"{files} files ({size / 1e6:.1f} MB; {scanned} scanned), {len(report.verdicts)} references, "
              f"{len(report.notes)} notes")
        print(f"imagevet check (whole process): best {min(whole) * 1000:.0f} ms, "
              f"median {statistics.median(whole) * 1000:.0f} ms")
        print(f"  CPU time:                     best {min(whole_cpu) * 1000:.0f} ms, "
              f"median {statistics.median(whole_cpu) * 1000:.0f} ms")
        print(f"scan + judgement alone:         best {min(inner) * 1000:.0f} ms, "
              f"median {statistics.median(inner) * 1000:.0f} ms")
        print(f"  CPU time:                     best {min(cpu) * 1000:.0f} ms, "
              f"median {statistics.median(cpu) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
