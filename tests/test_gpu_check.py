"""scripts/gpu_check.sh stays working without a GPU: --cpu-smoke runs every step at toy sizes on
the CPU and writes its table; without a GPU the real check stops at its first step, saying why."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .conftest import REPO

ROWS = {"environment": 2, "cycles": 3, "per_gpu": 3, "eevee": 1, "captioner": 3, "e2e": 3}


@pytest.mark.slow
def test_cpu_smoke_runs_every_step(tmp_path):
    out = tmp_path / "check.md"
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "--cpu-smoke", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    table = out.read_text()
    assert table in done.stdout  # the same table on stdout and in the file
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    steps = [row[0].lstrip("| ") for row in rows]
    assert {step: steps.count(step) for step in ROWS} == ROWS, steps
    for row in rows[2:]:  # every measured figure is a positive number with its unit
        value = re.match(r"([\d.]+) (views/s|images/s|s)$", row[2])
        assert value and float(value.group(1)) > 0, row
    assert "OptiX (smoke: CPU)" in table and "batch 4" in table and "FAILED" not in table


def test_without_a_gpu_the_real_check_stops_at_setup_saying_why(tmp_path):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver: the real check would run")
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "--out", str(tmp_path / "check.md")], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "gpu_check: FAILED at setup: nvidia-smi not found: no NVIDIA driver on this machine "
        "(--cpu-smoke runs without a GPU)")
