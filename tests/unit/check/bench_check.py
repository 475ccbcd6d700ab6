"""Measure ``imagevet check`` over a generated repository of ~300 files (a script, not a test).

    python -m tests.unit.check.bench_check [N_PER_KIND]

Copies the fixture repository's files N times (default 38: 8 files each, 304 in all) into a
temporary directory under numbered folders and times the scan and the judgement, as the CLI runs
them (offline), best of 5.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from imagevet.category import AccessSettings
from imagevet.check import CheckContext, check_scan, read_vetted, scan_paths
from tests.unit.check.conftest import REPO, VETTED_JSON


def build(root: Path, copies: int) -> int:
    for i in range(copies):
        shutil.copytree(REPO, root / f"svc{i:03d}", ignore=shutil.ignore_patterns("node_modules"))
    return sum(1 for p in root.rglob("*") if p.is_file())


def main() -> None:
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 38
    context = CheckContext("acme", AccessSettings("acme", enabled=True), read_vetted(VETTED_JSON))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = build(root, copies)
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            scan = scan_paths([root], root=root)
            report = check_scan(scan, context)
            timings.append(time.perf_counter() - started)
        print(
            f"{files} files on disk, {len(scan.files)} read, {len(report.verdicts)} references: "
            f"best {min(timings) * 1000:.0f} ms, median {sorted(timings)[2] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
