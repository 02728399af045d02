"""Helpers for the farm tests: real processes, free ports, polling."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..ports import free_port  # noqa: F401  (the tests import it from here)
from .chaos_child import Chaos

REPO = Path(__file__).resolve().parents[2]


def farm_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def farm_command(chaos: Chaos | None = None) -> list[str]:
    """`farm` in a fresh Python; with `chaos`, the launcher whose workers run the chaos render child."""
    if chaos is None:
        return [sys.executable, "-m", "farm"]
    return [sys.executable, "-m", "tests.farm.chaos_farm", chaos.to_json()]


def farm(*args: str, chaos: Chaos | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the `farm` command line in a fresh process."""
    return subprocess.run([*farm_command(chaos), *map(str, args)], capture_output=True, text=True,
                          env=farm_env(), timeout=timeout, cwd=REPO)


def spawn(*args: str, chaos: Chaos | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([*farm_command(chaos), *map(str, args)], env=farm_env(), cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log:
            out.close()


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)  # the worker and its render child
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def copies(src: Path, dest: Path, names: list[str]) -> Path:
    """Copies of one asset under several uids (uid = file stem)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src, dest / f"{name}{src.suffix}")
    return dest


@pytest.fixture
def box_glb(glb_dir) -> Path:
    return glb_dir / "Box.glb"
