"""The scanner hook's runner: real processes (small Python scripts written by the tests) that
print a published Trivy report, fail, hang, flood or print garbage.  Whatever they do, the
result is a report or a ScanError with the reason, in bounded time and memory."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import pytest

from imagevet.engine.scan import run_scanner
from imagevet.errors import ScanError
from imagevet.policy.model import Scan

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scanners"
REF = "127.0.0.1:5000/acme/app@sha256:" + "a" * 64


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "scanner.py"
    path.write_text("import sys, time, os\n" + body)
    return path


def scan_with(path: Path, *args: str, timeout: int = 20) -> Scan:
    return Scan((sys.executable, str(path), *args), "high", timeout)


async def test_the_report_is_read_and_ref_is_one_argument(tmp_path: Path) -> None:
    report = FIXTURES / "trivy-fluentd-multiple-lockfiles.json"
    seen = tmp_path / "argv.txt"
    path = script(tmp_path, (
        f"open({str(seen)!r}, 'w').write('\\n'.join(sys.argv[1:]))\n"
        f"sys.stdout.write(open({str(report)!r}).read())\n"
        "sys.stderr.write('2024-01-01 INFO scanning\\n')\n"
    ))
    result = await run_scanner(scan_with(path, "image", "--format", "json", "{ref}", "x{ref} ;rm -rf /"), REF)
    assert (result.scanner, dict(result.counts)) == ("trivy", {"critical": 1, "high": 1, "low": 1})
    assert seen.read_text().split("\n") == ["image", "--format", "json", REF, f"x{REF} ;rm -rf /"]


async def test_a_failing_scanner_says_why_with_its_stderr_tail_escaped(tmp_path: Path) -> None:
    path = script(tmp_path, (
        "sys.stderr.write('x' * 100000)\n"
        "sys.stderr.write('\\nFATAL \\x1b[31mimage not found\\x1b[0m Authorization: Bearer abcdef123456\\n')\n"
        "sys.exit(2)\n"
    ))
    with pytest.raises(ScanError) as e:
        await run_scanner(scan_with(path), REF)
    said = str(e.value)
    assert said.startswith("the scanner python")
    assert "exited with status 2; stderr: " in said
    assert "FATAL \\x1b[31mimage not found\\x1b[0m" in said and "\x1b" not in said
    assert "abcdef123456" not in said
    assert len(said) < 2300  # the tail only


async def test_a_scanner_that_cannot_be_started(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="cannot run the scanner no-such-scanner-here"):
        await run_scanner(Scan((str(tmp_path / "no-such-scanner-here"), "{ref}"), "high"), REF)


async def test_a_hanging_scanner_and_its_children_are_ended_at_the_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = script(tmp_path, (
        "import subprocess\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "sys.stderr.write('pulling layers...\\n'); sys.stderr.flush()\n"
        "time.sleep(300)\n"
    ))
    started = time.monotonic()
    with pytest.raises(ScanError) as e:
        await run_scanner(scan_with(path, timeout=2), REF)
    assert time.monotonic() - started < 15
    assert "did not finish within 2s" in str(e.value)
    assert "pulling layers..." in str(e.value)
    for pid in map(int, pids.read_text().split()):
        _gone(pid)


def _gone(pid: int) -> None:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):  # a zombie of ours: reap it
            os.waitpid(pid, os.WNOHANG)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still runs")


async def test_a_flood_is_cut_and_refused(tmp_path: Path) -> None:
    path = script(tmp_path, "while True:\n    sys.stdout.write('{' * 65536)\n")
    with pytest.raises(ScanError, match="printed more than 100000 bytes"):
        await run_scanner(scan_with(path), REF, max_output=100_000)


@pytest.mark.parametrize(
    ("output", "said"),
    [
        ("", "printed no report"),
        ("Vulnerabilities: lots\n", "not JSON"),
        ('{"results": []}', "not a Trivy"),
    ],
)
async def test_garbage_is_no_verdict(tmp_path: Path, output: str, said: str) -> None:
    path = script(tmp_path, f"sys.stdout.write({output!r}); sys.stderr.write('done')\n")
    with pytest.raises(ScanError) as e:
        await run_scanner(scan_with(path), REF)
    assert said in str(e.value) and str(e.value).endswith("; stderr: done")
