"""What the benchmarks share: the record of what was run where, a child-process runner, and the
one way a benchmark rewrites its own block of BENCHMARKS.md.

Every figure in BENCHMARKS.md sits beside the command that printed it, so each benchmark prints
`run_header()` (its exact command line, the machine, the load and the time) with its results.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
RESULT_PREFIX = "BENCH "  # children print their result on a line of its own (bpy prints too)


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed from the repository root, arguments quoted as a shell needs them."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0]).resolve()
    if script.is_relative_to(REPO):
        script = script.relative_to(REPO)
    return "python " + shlex.join([str(script), *argv[1:]])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    return (f"{cpu_name()} ({os.cpu_count()} cores, {platform.machine()}), Python {platform.python_version()}, "
            f"1-min load average {os.getloadavg()[0]:.1f}")


def run_header(argv: list[str] | None = None) -> str:
    """`command` on machine, at time: the first line of every benchmark's output."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"`{command_line(argv)}` on {machine()}, {when}"


def run_child(code: str, *args: str) -> tuple[float, dict]:
    """Run `python -c code args...`; its wall time and the JSON it printed after RESULT_PREFIX."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"error: benchmark child failed (rc {proc.returncode}): {proc.stderr.strip()[-3000:]}")
    return wall, json.loads(lines[-1][len(RESULT_PREFIX):])


def write_block(name: str, text: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the text between `<!-- name:begin -->` and `<!-- name:end -->` in BENCHMARKS.md
    (appended when absent), leaving everything else alone."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.strip()}\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + block + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
