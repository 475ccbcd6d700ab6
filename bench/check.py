"""Time ``imagevet check`` over a generated repository of ~300 files, as a user runs it.

    python bench/check.py [COPIES] [--crds N]

Copies the check fixture repository (tests/fixtures/check) COPIES times (default 38: 8 scanned
files each, 304 in all) into a temporary directory and runs ``imagevet check --offline`` with the
fixture's vetted mirrors: best and median of 5 whole-process runs (start-up included), plus the
scan and judgement alone in this process.  ``--crds N`` adds N generated CustomResourceDefinition
files of about 460 KB each (tests/unit/check/crds.py; one to three documents per file), as a
chart repository's ``crds/`` folders hold them.
"""

from __future__ import annotations

import argparse
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
from tests.unit.check.conftest import REPO, VETTED_JSON  # noqa: E402
from tests.unit.check.crds import crd_file  # noqa: E402


def build(root: Path, copies: int, crds: int = 0) -> int:
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
    args = parser.parse_args()
    copies = args.copies
    context = CheckContext("acme", AccessSettings("acme", enabled=True), read_vetted(VETTED_JSON))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = build(root, copies, args.crds)
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        inner = []
        for _ in range(5):
            started = time.perf_counter()
            report = check_scan(scan_paths([root], root=root), context)
            inner.append(time.perf_counter() - started)
        whole = []
        cmd = [sys.executable, "-m", "imagevet.cli", "check", str(root), "--offline", "--org", "acme",
               "--vetted", str(VETTED_JSON), "--format", "json"]
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=False)
            whole.append(time.perf_counter() - started)
        print(f"{files} files ({size / 1e6:.1f} MB), {len(report.verdicts)} references")
        print(f"imagevet check (whole process): best {min(whole) * 1000:.0f} ms, "
              f"median {statistics.median(whole) * 1000:.0f} ms")
        print(f"scan + judgement alone:         best {min(inner) * 1000:.0f} ms, "
              f"median {statistics.median(inner) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
