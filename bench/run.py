"""Side-by-side benchmark: imagevet vs ``skopeo sync`` on the same data, in the same run.

    python bench/run.py                      # default data set, about 1 GB
    python bench/run.py --repos 4 --tags 2   # a quick look
    python bench/run.py --scale 0.2          # smaller layers
    python bench/run.py --preset issue9      # issue 9's bars: 10 repos / 42 tags, one-image copy

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
4. with ``--copies N`` (the ``issue9`` preset: 5), copies one image N times per tool, process start
   included, each time to a fresh target registry: ``imagevet copy`` against
   ``skopeo copy --all --preserve-digests``, the two tools taking turns;
5. prints wall time, MB/s and the tool's peak RSS (VmHWM, polled) for each run, and the ratios;
   writes the same as JSON under ``bench/out/``.

``--preset issue9`` is the set of issue 9's bars: 10 repositories with 42 tags in all (5, 5 and
eight of 4), 2 platforms, layers x 0.25, 5 one-image copies.  A phase's figure is the best of
``--rounds`` runs (the machine is shared: the best is the least disturbed); every run is printed.

Both tools talk plain HTTP to loopback registries on the same 2 cores as the registries, so
figures are for comparison, not absolutes.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
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
    requests: int = 0
    """Requests the registries saw (counted by the latency proxies; 0 where no proxy was used)."""
    round: int = 1
    cpu_seconds: float = 0.0
    """User + system CPU of the tool process: what a loaded machine multiplies into wall time."""


PRESETS: dict[str, dict[str, object]] = {
    "issue9": {"repos": 10, "tags": 4, "extra_tags": 2, "platforms": 2, "scale": 0.25, "copies": 5},
}
"""Named data sets: issue 9's bars are 10 repositories / 42 tags (4 each, 2 more in the first two)."""


def tags_per_repo(repos: int, tags: int, extra: int) -> list[int]:
    """``tags`` per repository, plus one more in each of the first ``extra`` repositories."""
    return [tags + (1 if r < extra else 0) for r in range(repos)]


def build_dataset(
    repos: int, tags: int, platforms: int, scale: float, seed: int, extra_tags: int = 0
) -> dict[str, dict[str, Image]]:
    """repository -> tag -> image; deterministic for a seed."""
    rnd = random.Random(seed)
    plats = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/s390x"][:platforms]
    size = lambda n: max(1024, int(n * scale))  # noqa: E731
    base = {p: [random_blob(size(12 * MB), f"base/{p}/0"), random_blob(size(2 * MB), f"base/{p}/1")] for p in plats}
    data: dict[str, dict[str, Image]] = {}
    for r, count in enumerate(tags_per_repo(repos, tags, extra_tags)):
        deps = {p: random_blob(size(rnd.randint(2, 25) * MB), f"deps/{r}/{p}") for p in plats}
        data[f"bench/app{r:02d}"] = {}
        for t in range(count):
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


TOOL_ENV: dict[str, str] = dict(os.environ)
"""The environment of the measured tools (see :func:`compiled_env`)."""


def compiled_env() -> dict[str, str]:
    """The environment to run imagevet in as installed: its modules byte-compiled once, before
    anything is measured, as ``pip install`` does (a ``PYTHONDONTWRITEBYTECODE`` shell would
    make every run compile the sources again, about 0.1 s of each process here)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [sys.executable, "-c", "import compileall, imagevet, os; "
         "compileall.compile_dir(os.path.dirname(imagevet.__file__), quiet=1)"],
        env=env, check=True,
    )
    return env


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str, float]:
    """Run ``cmd``; return (seconds, peak RSS in MiB, exit code, stderr tail, CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errfile, env=env or TOOL_ENV)
        peak = 0.0
        while proc.poll() is None:
            rss = _peak_rss_mib(proc.pid)
            if rss is not None:
                peak = max(peak, rss)
            time.sleep(0.01)
        seconds = time.monotonic() - started
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")[-2000:]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the registries are running: not counted
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, peak, proc.returncode, err, cpu


def imagevet_cmd(src: RunningRegistry, dst: RunningRegistry, repos: list[str], work: Path, jobs: int) -> list[str]:
    beside = Path(sys.executable).with_name("imagevet")  # the venv's, when run as .venv/bin/python
    exe = str(beside) if beside.exists() else shutil.which("imagevet") or "imagevet"
    if has_sync(exe):
        work.mkdir(parents=True, exist_ok=True)
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
    work.mkdir(parents=True, exist_ok=True)
    spec = work / f"skopeo-sync-{src.host.replace(':', '-')}.yaml"  # one per source: phases differ
    body = [f"{src.host}:", "  tls-verify: false", "  images:"]
    body += [f"    {repo}: []" for repo in repos]
    spec.write_text("\n".join(body) + "\n")
    return [
        "skopeo", "sync", "--src", "yaml", "--dest", "docker", "--all", "--preserve-digests",
        "--dest-tls-verify=false", str(spec), f"{dst.host}/mirror",
    ]


def copy_cmds(tool: str, src: RunningRegistry, dst: RunningRegistry, image: str) -> list[str]:
    """One image, every platform and digest kept, from ``src`` to ``dst`` (same path)."""
    if tool == "imagevet":
        beside = Path(sys.executable).with_name("imagevet")
        exe = str(beside) if beside.exists() else shutil.which("imagevet") or "imagevet"
        return [exe, "--quiet", "copy", f"{src.host}/{image}", f"{dst.host}/{image}"]
    return [
        "skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
        "--dest-tls-verify=false", f"docker://{src.host}/{image}", f"docker://{dst.host}/{image}",
    ]


def sync_phases(
    tool: str, upstream: RunningRegistry, target: RunningRegistry, repos: list[str], work: Path,
    args: argparse.Namespace,
) -> list[tuple[str, list[str], list[FaultProxy]]]:
    """(phase, command, proxies counting its requests): cold, no-op, and no-op behind latency.

    imagevet's runs keep their state (lock, ledger) in ``work``; the latency no-op names other
    hosts (the proxies), so it has a directory of its own, which :func:`main` fills with one
    unmeasured run before the delay is switched on: it is a no-op with a lock, as the other is."""
    cmd = (imagevet_cmd(upstream, target, repos, work, args.jobs) if tool == "imagevet"
           else skopeo_cmd(upstream, target, repos, work))
    phases: list[tuple[str, list[str], list[FaultProxy]]] = [("cold", cmd, []), ("no-op", cmd, [])]
    if args.latency_ms > 0:
        slow_src, slow_dst = start_fault_proxy(upstream), start_fault_proxy(target)
        remote = (imagevet_cmd(slow_src, slow_dst, repos, work / "remote", args.jobs) if tool == "imagevet"
                  else skopeo_cmd(slow_src, slow_dst, repos, work))
        phases.append((f"no-op +{args.latency_ms:g}ms", remote, [slow_src, slow_dst]))
    return phases


def run_phase(runs: list[Run], tool: str, phase: str, cmd: list[str], proxies: list[FaultProxy],
              moved: int, round_: int) -> None:
    for proxy in proxies:
        proxy.requests.clear()
    seconds, rss, code, err, cpu = measure(cmd)
    count = sum(len(p.requests) for p in proxies)
    runs.append(Run(tool, phase, seconds, rss, code, moved / MB / seconds if moved else 0.0, count, round_, cpu))
    shown = f"  {count} requests" if proxies else ""
    print(f"{tool:9} {phase:14} round {round_}  {seconds:8.2f}s  {cpu:6.2f}s CPU  {rss:7.1f} MiB RSS  "
          f"exit {code}{shown}", flush=True)
    if code != 0:
        print(err, file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="a named data set (flags given override it)")
    ap.add_argument("--repos", type=int)
    ap.add_argument("--tags", type=int, help="tags per repository")
    ap.add_argument("--extra-tags", type=int, help="this many repositories get one tag more")
    ap.add_argument("--platforms", type=int)
    ap.add_argument("--scale", type=float, help="multiply layer sizes")
    ap.add_argument("--copies", type=int, help="one-image copies per tool (0: skip)")
    ap.add_argument("--rounds", type=int, default=1, help="run every sync phase this many times")
    ap.add_argument("--jobs", type=int, default=8, help="imagevet concurrent blob transfers")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tools", default="imagevet,skopeo")
    ap.add_argument("--latency-ms", type=float, default=25.0,
                    help="extra no-op run with this delay on every request (0: skip)")
    args = ap.parse_args()
    defaults: dict[str, object] = {"repos": 20, "tags": 5, "extra_tags": 0, "platforms": 2, "scale": 1.0,
                                   "copies": 0}
    defaults.update(PRESETS.get(args.preset or "", {}))
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    work = Path(tempfile.mkdtemp(prefix="imagevet-bench-"))
    TOOL_ENV.clear()
    TOOL_ENV.update(compiled_env())
    registries: list[RunningRegistry] = []
    tools = args.tools.split(",")
    try:
        counts = tags_per_repo(args.repos, args.tags, args.extra_tags)
        print(f"building data set: {args.repos} repos, {sum(counts)} tags x {args.platforms} platforms ...",
              flush=True)
        data = build_dataset(args.repos, args.tags, args.platforms, args.scale, args.seed, args.extra_tags)
        total = dataset_bytes(data)
        upstream = start_registry(work / "upstream")
        registries.append(upstream)
        t0 = time.monotonic()
        asyncio.run(seed(upstream, data))
        print(f"seeded {total / MB:.0f} MiB of unique blobs in {time.monotonic() - t0:.1f}s", flush=True)
        repos = sorted(data)
        runs: list[Run] = []
        if args.copies:
            repo = repos[0]
            tag = sorted(data[repo])[0]
            image_bytes = sum(len(b) for b in data[repo][tag].blobs.values())
            for n in range(args.copies):
                for tool in tools if n % 2 == 0 else tools[::-1]:
                    fresh = start_registry(work / f"copy-{tool}-{n}")
                    try:
                        run_phase(runs, tool, "copy one image", copy_cmds(tool, upstream, fresh, f"{repo}:{tag}"),
                                  [], image_bytes, n + 1)
                    finally:
                        fresh.stop()
                        shutil.rmtree(work / f"copy-{tool}-{n}", ignore_errors=True)
        for round_ in range(1, args.rounds + 1):
            for tool in tools if round_ % 2 == 1 else tools[::-1]:
                target = start_registry(work / f"target-{tool}-{round_}")
                registries.append(target)
                phases = sync_phases(tool, upstream, target, repos, work / f"{tool}-{round_}", args)
                for phase, cmd, proxies in phases:
                    if proxies and tool == "imagevet":  # the lock and ledger of these hosts, then the delay
                        measure(cmd)
                    for proxy in proxies:
                        proxy.delay(args.latency_ms / 1000)
                    run_phase(runs, tool, phase, cmd, proxies, total if phase == "cold" else 0, round_)
                for proxy in {id(p): p for _, _, ps in phases for p in ps}.values():
                    proxy.stop()
                target.stop()
                registries.remove(target)
                shutil.rmtree(work / f"target-{tool}-{round_}", ignore_errors=True)
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


BARS = {"copy one image": 1.0, "cold": 2.0, "no-op": 5.0}
"""Issue 9's bars: how many times faster than skopeo imagevet must be (the latency no-op: 30)."""


def print_table(runs: list[Run], total: int, args: argparse.Namespace) -> None:
    """The best run of each (tool, phase), its peak RSS the largest of all its runs; the ratios."""
    print()
    counts = tags_per_repo(args.repos, args.tags, args.extra_tags)
    print(f"data set: {args.repos} repos, {sum(counts)} tags x {args.platforms} platforms, "
          f"{total / MB:.0f} MiB unique blobs; best of {args.rounds} round(s), {args.copies} one-image copies")
    print("| tool | run | wall time (best) | all runs | CPU (least) | MB/s | peak RSS | requests |")
    print("|---|---|---|---|---|---|---|---|")
    keys = list(dict.fromkeys((r.tool, r.phase) for r in runs))
    best: dict[tuple[str, str], Run] = {}
    for key in keys:
        mine = [r for r in runs if (r.tool, r.phase) == key]
        b = best[key] = min(mine, key=lambda r: r.seconds)
        rss = max(r.peak_rss_mb for r in mine)
        speed = f"{b.mb_per_s:.0f}" if b.mb_per_s else "-"
        every = ", ".join(f"{r.seconds:.2f}" for r in mine)
        cpu = min(r.cpu_seconds for r in mine)
        print(f"| {key[0]} | {key[1]} | {b.seconds:.2f} s | {every} | {cpu:.2f} s | {speed} | {rss:.0f} MiB | "
              f"{b.requests or '-'} |")
    print()
    for phase in dict.fromkeys(p for _, p in keys):
        a, b = best.get(("imagevet", phase)), best.get(("skopeo", phase))
        if a and b and a.seconds > 0:
            bar = BARS.get(phase, 30.0)
            ratio = b.seconds / a.seconds
            cpu_a = min(r.cpu_seconds for r in runs if (r.tool, r.phase) == ("imagevet", phase))
            cpu_b = min(r.cpu_seconds for r in runs if (r.tool, r.phase) == ("skopeo", phase))
            print(f"{phase}: imagevet is {ratio:.2f}x faster than skopeo (bar {bar:g}x: "
                  f"{'met' if ratio >= bar else 'MISSED'}); CPU {cpu_a:.2f} s vs {cpu_b:.2f} s")
    peak = max((r.peak_rss_mb for r in runs if r.tool == "imagevet"), default=0.0)
    if peak:
        print(f"imagevet peak RSS {peak:.0f} MiB (bar 150 MB: {'met' if peak * 1.048576 < 150 else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())
