"""A full disk under OUT: the run stops with one line naming it, and resumes once there is room."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from .chaos_child import Chaos
from .conftest import copies, farm, farm_command, farm_env, REPO, wait_for
from .fault_assets import assert_views

pytestmark = pytest.mark.slow

CHEAP = ["--preset", "mvcap", "--views", "2", "--resolution", "32", "--samples", "1"]


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path) -> None:
    """Write until the file system says ENOSPC."""
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass


def done_count(out) -> int:
    try:
        lines = (out / "objects.jsonl").read_text().splitlines()
    except OSError:
        return 0
    return sum(json.loads(x)["status"] == "done" for x in lines if x.strip())


def test_a_full_disk_ends_the_run_in_one_line_and_it_resumes_when_enlarged(box_glb, tmp_path, small_tmpfs):
    names = [f"box{i}" for i in range(8)]
    assets = copies(box_glb, tmp_path / "assets", names)
    out = small_tmpfs / "out"
    slow = Chaos(delay_s=0.5)  # real renders, slowed so the disk fills mid-run
    run = subprocess.Popen([*farm_command(slow), "render", str(assets), "-o", str(out), *CHEAP, "--workers", "1"],
                           env=farm_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: done_count(out) >= 1, 120, 0.2, what="a first object")
        fill(small_tmpfs / "filler")
        started = time.time()
        _, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 5, err
    assert time.time() - started < 120
    named = [line for line in err.splitlines() if "no space left on device" in line]
    assert len(named) == 1 and named[0].startswith("farm render: stopped"), err
    assert "Traceback" not in err and len(err.splitlines()) < 10, err

    r = subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = farm("render", assets, "-o", out, *CHEAP, "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr
    for n in names:
        assert_views(out, n)
    objs = [json.loads(x) for x in (out / "objects.jsonl").read_text().splitlines()]
    assert [o["status"] for o in objs] == ["done"] * len(names)
