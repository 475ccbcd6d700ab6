"""Side-by-side benchmark: imagevet vs ``skopeo sync`` on the same data, in the same run.

    python bench/run.py                      # default data set, about 1 GB
    python bench/run.py --repos 4 --tags 2   # a quick look
    python bench/run.py --scale 0.2          # smaller layers

What it does:

1. starts an upstream Debian ``docker-registry`` on 127.0.0.1 and fills it with a synthetic data
   set: ``--repos`` repositories x ``--tags`` tags, each tag a ``--platforms``-platform index;
   layers from 1 KB to 25 MB (x ``--scale``), a few base layers shared by every repository and
   one dependency layer shared by the tags of a repository (as real images are built);
2. for each tool, on a **fresh** target registry: a cold copy of everything, then a no-op re-run;
   imagevet runs ``imagevet sync`` over a generated policy when the sync command exists, else
   its copy engine over every repository in one process (``bench/imagevet_copy.py``);
   skopeo runs ``skopeo sync --all --preserve-digests`` over a generated YAML source;
3. with ``--latency-ms N`` (default 25), runs each tool's no-op once more with both registries
   behind a proxy that delays every request by N ms, as a remote registry would (Docker Hub is
   tens of milliseconds away; on loopback a no-op is mostly process start-up);
4. prints wall time, MB/s and the tool's peak RSS (VmHWM, polled) for each run, and the ratios;
   writes the same as JSON under ``bench/out/``.

Both tools talk plain HTTP to loopback registries on the same 2 cores as the registries, so
figures are for comparison, not absolutes.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fault_proxy import FaultProxy, start_fault_proxy  # noqa: E402
from tests.support.images import Image, make_image, make_index, random_blob  # noqa: E402
from tests.support.pusher import TestClient  # noqa: E402
from tests.support.registry_process import RunningRegistry, start_registry  # noqa: E402

MB = 1 << 20


@dataclass
class Run:
    tool: str
    phase: str
    seconds: float
    peak_rss_mb: float
    exit_code: int
    mb_per_s: float


def build_dataset(repos: int, tags: int, platforms: int, scale: float, seed: int) -> dict[str, dict[str, Image]]:
    """repository -> tag -> image; deterministic for a seed."""
    rnd = random.Random(seed)
    plats = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/s390x"][:platforms]
    size = lambda n: max(1024, int(n * scale))  # noqa: E731
    base = {p: [random_blob(size(12 * MB), f"base/{p}/0"), random_blob(size(2 * MB), f"base/{p}/1")] for p in plats}
    data: dict[str, dict[str, Image]] = {}
    for r in range(repos):
        deps = {p: random_blob(size(rnd.randint(2, 25) * MB), f"deps/{r}/{p}") for p in plats}
        data[f"bench/app{r:02d}"] = {}
        for t in range(tags):
            children = [
                make_image(
                    seed=f"{r}/{t}/{p}",
                    platform=p,
                    shared_layers=[*base[p], deps[p]],
                    layer_sizes=(1024, size(200 * 1024), size(rnd.randint(1, 4) * MB)),
                )
                for p in plats
            ]
            data[f"bench/app{r:02d}"][f"1.{t}.0"] = make_index(children)
    return data


def dataset_bytes(data: dict[str, dict[str, Image]]) -> int:
    blobs: dict[object, int] = {}
    for tags in data.values():
        for image in tags.values():
            for digest, blob in image.blobs.items():
                blobs[digest] = len(blob)
    return sum(blobs.values())


async def seed(registry: RunningRegistry, data: dict[str, dict[str, Image]]) -> None:
    async with TestClient(registry) as client:
        for repo, tags in data.items():
            for tag, image in tags.items():
                await client.push_image(repo, image, tag)


def _peak_rss_mib(pid: int) -> float | None:
    """VmHWM of ``pid`` (the peak since its exec; ``ru_maxrss`` would count the forked parent)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Run ``cmd``; return (seconds, peak RSS in MiB, exit code, stderr tail)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errfile, env=env)
        peak = 0.0
        while proc.poll() is None:
            rss = _peak_rss_mib(proc.pid)
            if rss is not None:
                peak = max(peak, rss)
            time.sleep(0.01)
        seconds = time.monotonic() - started
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")[-2000:]
    return seconds, peak, proc.returncode, err


def imagevet_cmd(src: RunningRegistry, dst: RunningRegistry, repos: list[str], work: Path, jobs: int) -> list[str]:
    beside = Path(sys.executable).with_name("imagevet")  # the venv's, when run as .venv/bin/python
    exe = str(beside) if beside.exists() else shutil.which("imagevet") or "imagevet"
    if has_sync(exe):
        policy = work / "imagevet.yaml"
        policy.write_text(bench_policy(src, dst, repos))
        return [exe, "--quiet", "sync", "--policy", str(policy), "--jobs", str(jobs)]
    return [sys.executable, str(ROOT / "bench" / "imagevet_copy.py"), src.host, dst.host, str(jobs), *repos]


def has_sync(exe: str) -> bool:
    if os.environ.get("BENCH_IMAGEVET_ENGINE") == "copy":
        return False
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    return " sync " in out.stdout


def bench_policy(src: RunningRegistry, dst: RunningRegistry, repos: list[str]) -> str:
    lines = [
        "version: 1",
        "target:",
        f"  registry: {dst.host}",
        "  namespace: mirror",
        "defaults:",
        "  mode: follow",
        "  tags:",
        "    allow: ['.*']",
        "  approval:",
        "    approved_by: bench",
        "    reason: benchmark",
        "    expires: 2099-01-01",
        "images:",
    ]
    for repo in repos:
        lines.append(f"  - source: {src.host}/{repo}")
    return "\n".join(lines) + "\n"


def skopeo_cmd(src: RunningRegistry, dst: RunningRegistry, repos: list[str], work: Path) -> list[str]:
    spec = work / "skopeo-sync.yaml"
    body = [f"{src.host}:", "  tls-verify: false", "  images:"]
    body += [f"    {repo}: []" for repo in repos]
    spec.write_text("\n".join(body) + "\n")
    return [
        "skopeo", "sync", "--src", "yaml", "--dest", "docker", "--all", "--preserve-digests",
        "--dest-tls-verify=false", str(spec), f"{dst.host}/mirror",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repos", type=int, default=20)
    ap.add_argument("--tags", type=int, default=5)
    ap.add_argument("--platforms", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply layer sizes")
    ap.add_argument("--jobs", type=int, default=8, help="imagevet concurrent blob transfers")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tools", default="imagevet,skopeo")
    ap.add_argument("--latency-ms", type=float, default=25.0,
                    help="extra no-op run with this delay on every request (0: skip)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="imagevet-bench-"))
    registries: list[RunningRegistry] = []
    try:
        print(f"building data set: {args.repos} repos x {args.tags} tags x {args.platforms} platforms ...", flush=True)
        data = build_dataset(args.repos, args.tags, args.platforms, args.scale, args.seed)
        total = dataset_bytes(data)
        upstream = start_registry(work / "upstream")
        registries.append(upstream)
        t0 = time.monotonic()
        asyncio.run(seed(upstream, data))
        print(f"seeded {total / MB:.0f} MiB of unique blobs in {time.monotonic() - t0:.1f}s", flush=True)
        repos = sorted(data)
        runs: list[Run] = []
        for tool in args.tools.split(","):
            target = start_registry(work / f"target-{tool}")
            registries.append(target)
            cmd = (imagevet_cmd(upstream, target, repos, work, args.jobs) if tool == "imagevet"
                   else skopeo_cmd(upstream, target, repos, work))
            phases: list[tuple[str, list[str]]] = [("cold", cmd), ("no-op", cmd)]
            proxies: list[FaultProxy] = []
            if args.latency_ms > 0:
                slow_src, slow_dst = start_fault_proxy(upstream), start_fault_proxy(target)
                for proxy in (slow_src, slow_dst):
                    proxy.delay(args.latency_ms / 1000)
                    proxies.append(proxy)
                remote = (imagevet_cmd(slow_src, slow_dst, repos, work, args.jobs) if tool == "imagevet"
                          else skopeo_cmd(slow_src, slow_dst, repos, work))
                phases.append((f"no-op +{args.latency_ms:g}ms", remote))
            for phase, cmd in phases:
                seconds, rss, code, err = measure(cmd)
                moved = total if phase == "cold" else 0
                runs.append(Run(tool, phase, seconds, rss, code, moved / MB / seconds if moved else 0.0))
                print(f"{tool:9} {phase:6} {seconds:8.2f}s  {rss:7.1f} MiB RSS  exit {code}", flush=True)
                if code != 0:
                    print(err, file=sys.stderr)
            for proxy in proxies:
                proxy.stop()
        print_table(runs, total, args)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "results.json").write_text(json.dumps(
            {"args": vars(args), "unique_mib": total / MB, "runs": [asdict(r) for r in runs]}, indent=2))
        return 0 if all(r.exit_code == 0 for r in runs) else 1
    finally:
        for r in registries:
            r.stop()
        shutil.rmtree(work, ignore_errors=True)


def print_table(runs: list[Run], total: int, args: argparse.Namespace) -> None:
    print()
    print(f"data set: {args.repos} repos x {args.tags} tags x {args.platforms} platforms, "
          f"{total / MB:.0f} MiB unique blobs")
    print("| tool | run | wall time | MB/s | peak RSS |")
    print("|---|---|---|---|---|")
    for r in runs:
        speed = f"{r.mb_per_s:.0f}" if r.mb_per_s else "-"
        print(f"| {r.tool} | {r.phase} | {r.seconds:.2f} s | {speed} | {r.peak_rss_mb:.0f} MiB |")
    by = {(r.tool, r.phase): r for r in runs}
    for phase in sorted({r.phase for r in runs}, key=lambda p: (p != "cold", p)):
        a, b = by.get(("imagevet", phase)), by.get(("skopeo", phase))
        if a and b and a.seconds > 0:
            print(f"{phase}: imagevet is {b.seconds / a.seconds:.1f}x faster than skopeo")


if __name__ == "__main__":
    sys.exit(main())
