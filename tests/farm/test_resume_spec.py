"""Resume is keyed to the spec: real `farm render` / `farm submit` processes, real bpy renders
(32 px, 1 sample). One 4-view render of Box is made once and copied for each test (a copied OUT
keeps resuming: its state follows it)."""
from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image

from .chaos_child import Chaos
from .conftest import farm, free_port, spawn, stop, wait_for

pytestmark = pytest.mark.slow

SPEC = ["--preset", "mvcap", "--samples", "1"]
TINY = [*SPEC, "--no-progress"]
FOUR = [*TINY, "--views", "4", "--resolution", "32"]
# the broker's lock beside its state file holds the pid of the broker that opened it last
LOCK_FILE = "state.sqlite.lock"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def views(n: int) -> list[str]:
    return [f"{i:03d}.png" for i in range(n)] + ["transforms.json"]


def file_stamps(out: Path) -> dict[str, tuple[int, int]]:
    """Every file under OUT, .farm/ included: (mtime_ns, size)."""
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in out.rglob("*") if p.is_file() and p.name != LOCK_FILE}


def state_dump(out: Path) -> list[str]:
    db = sqlite3.connect(out / ".farm" / "state.sqlite")
    try:
        return list(db.iterdump())
    finally:
        db.close()


def objects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def base_out(tmp_path_factory, glb_dir) -> Path:
    out = tmp_path_factory.mktemp("base") / "out"
    r = farm("render", glb_dir / "Box.glb", "-o", out, *FOUR)
    assert r.returncode == 0, r.stderr
    assert listing(out / "views" / "Box") == views(4)
    return out


@pytest.fixture
def out(base_out, tmp_path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(base_out, copy)
    return copy


def test_a_changed_spec_is_refused_naming_the_fields_and_nothing_changes(out, box_glb):
    # a resume first: this copy's state then knows where it is (a copied OUT's first run records that)
    assert farm("render", box_glb, "-o", out, *FOUR).returncode == 0
    before, db_before = file_stamps(out), state_dump(out)
    time.sleep(0.05)  # a rewrite would show in mtime_ns
    r = farm("render", box_glb, "-o", out, *TINY, "--views", "8", "--resolution", "64")
    assert r.returncode == 2, r.stderr
    line = last_line(r.stderr)
    assert line.startswith("error: ") and "Traceback" not in r.stderr
    assert "camera.num_views 4 -> 8" in line and "render.resolution_x 32 -> 64" in line, line
    assert "a new OUT" in line and "--rerender" in line and "--add-views" not in line, line  # more than views change
    assert file_stamps(out) == before and state_dump(out) == db_before

    r = farm("render", box_glb, "-o", out, *TINY, "--views", "8", "--resolution", "32")
    assert r.returncode == 2 and "camera.num_views 4 -> 8" in last_line(r.stderr)
    assert "--add-views" in last_line(r.stderr)  # only views are added: that way on is offered too
    r = farm("render", box_glb, "-o", out, *TINY, "--views", "8", "--resolution", "64", "--add-views")
    assert r.returncode == 2 and "--add-views cannot" in last_line(r.stderr), r.stderr
    assert "render.resolution_x 32 -> 64" in last_line(r.stderr)
    assert file_stamps(out) == before and state_dump(out) == db_before


def test_the_same_spec_resumes(out, box_glb):
    pngs = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    r = farm("render", box_glb, "-o", out, *FOUR)
    assert r.returncode == 0, r.stderr
    assert "1 of 1 objects already done" in r.stderr and " 0 views rendered" in r.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == pngs


def test_add_views_renders_only_the_new_views(out, box_glb):
    box = out / "views" / "Box"
    old = {n: (box / n).stat() for n in views(4)[:-1]}
    old_frames = json.loads((box / "transforms.json").read_text())["frames"]
    r = farm("render", box_glb, "-o", out, *TINY, "--views", "8", "--resolution", "32", "--add-views")
    assert r.returncode == 0, r.stderr
    assert " 4 views rendered" in r.stderr, r.stderr
    assert listing(box) == views(8) and listing(out / "views") == ["Box"]  # no staging folder left
    for name, st in old.items():  # the first four are the old files themselves
        now = (box / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), name
    frames = json.loads((box / "transforms.json").read_text())["frames"]
    assert [f["file_path"] for f in frames] == views(8)[:-1]
    assert frames[:4] == old_frames  # prefix-stable: the same cameras, merged with the new ones
    [obj] = objects(out)
    assert obj["status"] == "done" and obj["views"] == 8 and [q["view"] for q in obj["quality"]] == list(range(8))
    db = sqlite3.connect(out / ".farm" / "state.sqlite")
    rendered = db.execute("SELECT json_extract(result, '$.rendered_views') FROM objects").fetchall()
    modes = db.execute("SELECT mode, first_view, state FROM tasks WHERE queue = 'render' ORDER BY task_id").fetchall()
    db.close()
    assert rendered == [(4,)]  # what the render child reported: 4 views rendered in this attempt
    assert modes == [("full", 0, "done"), ("add_views", 4, "done")]

    r = farm("render", box_glb, "-o", out, *TINY, "--views", "8", "--resolution", "32")
    assert r.returncode == 0 and "already done" in r.stderr and " 0 views rendered" in r.stderr
    r = farm("render", box_glb, "-o", out, *FOUR)  # the 4-view spec is now the other one
    assert r.returncode == 2 and "camera.num_views 8 -> 4" in last_line(r.stderr)


def test_rerender_swaps_in_the_whole_new_set(out, box_glb):
    """A slow rerender (a real render held 0.7 s after each view): whenever the folder is looked at,
    it holds the old set or the new one, never a mix."""
    box = out / "views" / "Box"
    proc = spawn("render", box_glb, "-o", out, *TINY, "--views", "3", "--resolution", "48", "--rerender",
                 chaos=Chaos(delay_s=0.7), log=out.parent / "render.log")
    seen = set()
    try:
        while proc.poll() is None:
            seen.add(tuple(listing(box)))
            time.sleep(0.02)
    finally:
        stop(proc)
    assert proc.returncode == 0, (out.parent / "render.log").read_text()
    assert seen <= {tuple(views(4)), tuple(views(3))} and tuple(views(4)) in seen, seen
    assert listing(box) == views(3) and listing(out / "views") == ["Box"]
    for name in views(3)[:-1]:
        with Image.open(box / name) as im:
            assert im.size == (48, 48)
    assert [o["views"] for o in objects(out)] == [3]


def test_a_moved_out_resumes_with_no_view_rendered(out, box_glb, tmp_path):
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    before = objects(out)
    shutil.move(out, moved)
    pngs = {p: p.stat().st_mtime_ns for p in moved.rglob("*.png")}
    r = farm("render", box_glb, "-o", moved, *FOUR)
    assert r.returncode == 0, r.stderr
    assert "1 of 1 objects already done" in r.stderr and " 0 views rendered" in r.stderr, r.stderr
    assert {p: p.stat().st_mtime_ns for p in moved.rglob("*.png")} == pngs
    assert [(o["obj_id"], o["uid"]) for o in objects(moved)] == [(o["obj_id"], o["uid"]) for o in before]


def test_farm_submit_is_refused_with_exit_2(out, box_glb, tmp_path):
    addr = f"tcp://127.0.0.1:{free_port()}"
    broker = spawn("broker", "--bind", addr, "--state", out / ".farm" / "state.sqlite", "--out-root", tmp_path,
                   log=tmp_path / "broker.log")
    try:
        def submit(*args):
            return farm("submit", box_glb, "-o", out, *SPEC, *args, "--connect", addr, "--reply-timeout", "5")

        r = wait_for(lambda: (lambda r: r if r.returncode != 1 else None)(submit("--views", "8", "--resolution", "32")),
                     30, 0.5, what="the broker to answer")
        assert r.returncode == 2, r.stderr
        assert last_line(r.stderr).startswith("error: ") and "camera.num_views 4 -> 8" in r.stderr
        r = submit("--views", "4", "--resolution", "32")
        assert r.returncode == 0 and "1 already done" in r.stdout, r.stdout + r.stderr
    finally:
        stop(broker)


def test_views_override_warns_when_it_moves_the_cameras(box_glb, tmp_path):
    dead = f"tcp://127.0.0.1:{free_port()}"  # nobody answers: the warning comes before the request
    args = ["-o", tmp_path / "o", "--connect", dead, "--reply-timeout", "0.2"]
    r = farm("submit", box_glb, "--preset", "objaverse-rendering-12", "--views", "6", *args)
    assert "warning: --views 6 changes the cameras: the ring pattern" in r.stderr, r.stderr
    r = farm("submit", box_glb, "--preset", "mvcap", "--views", "6", *args)
    assert "warning" not in r.stderr, r.stderr
