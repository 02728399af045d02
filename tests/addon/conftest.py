"""Fixtures for the add-on tests: bpy 5.0.1 with the add-on registered on an empty scene."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..ports import free_port  # noqa: F401  (the tests import it from here)

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def addon():
    """The add-on registered on an empty scene; unregistered afterwards."""
    bpy = pytest.importorskip("bpy")
    import blender_addon

    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    try:
        yield bpy
    finally:
        blender_addon.unregister()


def farm_cli() -> list[str] | None:
    """The `farm` console script, when the farm package's CLI exists."""
    if importlib.util.find_spec("farm.cli") is None:
        return None
    exe = shutil.which("farm", path=str(VENV_BIN)) or shutil.which("farm")
    return [exe] if exe else [sys.executable, "-m", "farm"]


@pytest.fixture
def local_farm(tmp_path):
    """A real `farm broker` (its OUT root: tmp_path) and one `farm worker`, on a free port."""
    cli = farm_cli()
    assert cli is not None, "the farm CLI is missing"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    broker = ["broker", "--bind", endpoint, "--state", str(tmp_path / "farm.sqlite"), "--out-root", str(tmp_path)]
    procs = [subprocess.Popen(cli + broker, **quiet), subprocess.Popen(cli + ["worker", "--connect", endpoint], **quiet)]
    try:
        yield endpoint
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(cmd, timeout=600, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, **kw)
