"""End to end: real `farm` processes, real bpy renders (tiny: 64 px, 1 sample, 2 views)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image

from farm.client import Client, ClientError

from .chaos_child import Chaos
from .conftest import copies, farm, free_port, spawn, stop, wait_for

pytestmark = pytest.mark.slow

TINY = ["--preset", "mvcap", "--views", "2", "--resolution", "64", "--samples", "1"]
HB = "0.5"  # heartbeat for these tests: a dead peer is noticed in about 2 s


def read_objects(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "objects.jsonl").read_text().splitlines()]


def assert_complete(out: Path, uid: str, views: int = 2) -> None:
    d = out / "views" / uid
    names = sorted(p.name for p in d.iterdir())
    assert names == [f"{i:03d}.png" for i in range(views)] + ["transforms.json"], names  # no temp/partial file
    for i in range(views):
        with Image.open(d / f"{i:03d}.png") as im:
            assert im.mode == "RGBA" and im.size == (64, 64)
    frames = json.loads((d / "transforms.json").read_text())["frames"]
    assert [f["file_path"] for f in frames] == [f"{i:03d}.png" for i in range(views)]


def no_stray_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and ".farm" not in p.parts
            and (p.name.startswith(".") or p.suffix in (".part", ".tmp"))]


def assert_done_once(out: Path, state: Path, names: list[str]) -> list[dict]:
    """Every object done with complete files, no stray file, one accepted completion per task."""
    objs = read_objects(out)
    assert [(o["obj_id"], o["uid"]) for o in objs] == list(enumerate(names))
    assert all(o["status"] == "done" for o in objs)
    for n in names:
        assert_complete(out, n)
    assert not no_stray_files(out)
    db = sqlite3.connect(state)
    assert db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == len(names)  # nothing duplicated
    assert db.execute("SELECT task_id FROM attempts WHERE outcome = 'done' GROUP BY task_id"
                      " HAVING COUNT(*) != 1").fetchall() == []
    db.close()
    return objs


class Farm:
    """A `farm broker` process plus `farm worker` processes on a free port."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.addr = f"tcp://127.0.0.1:{free_port()}"
        self.state = tmp / "state.sqlite"
        self.broker = None
        self.workers: list = []
        self.logs = tmp / "logs"
        self.logs.mkdir(exist_ok=True)

    def start_broker(self, *extra: str, curve_keys=None):
        if curve_keys:
            extra = (*extra, "--curve-keys", str(curve_keys))
        self.broker = spawn("broker", "--bind", self.addr, "--state", self.state, "--heartbeat", HB,
                            "--out-root", self.tmp, *extra,
                            log=self.logs / "broker.log")
        wait_for(lambda: self._answers(curve_keys=curve_keys), 30, what="the broker")
        return self.broker

    def _answers(self, **kw) -> bool:
        try:
            with Client(self.addr, timeout_s=1, **kw) as c:
                c.status()
            return True
        except ClientError:
            return False

    def start_worker(self, name: str, *extra: str, chaos: Chaos | None = None):
        p = spawn("worker", "--connect", self.addr, "--name", name, "--heartbeat", HB, *extra,
                  chaos=chaos, log=self.logs / f"{name}.log")
        self.workers.append(p)
        return p

    def status(self, job_id=None, **kw) -> dict:
        with Client(self.addr, timeout_s=5, **kw) as c:
            return c.status(job_id)

    def wait_finished(self, job_id: str, timeout: float = 180, **kw) -> dict:
        def finished():
            try:
                job = self.status(job_id, **kw)["jobs"][0]
            except ClientError:
                return None
            return job if job["state"] == "finished" else None

        return wait_for(finished, timeout, 0.5, what=f"job {job_id} to finish")

    def close(self):
        for p in self.workers:
            stop(p)
        if self.broker is not None:
            stop(self.broker)


@pytest.fixture
def cluster(tmp_path):
    f = Farm(tmp_path)
    yield f
    f.close()


def submit(f: Farm, assets: Path, out: Path, *extra: str) -> str:
    r = farm("submit", assets, "-o", out, *TINY, "--connect", f.addr, "--json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["job_id"]


# --- farm render -----------------------------------------------------------------------------------
def test_render_all_glb_then_resume(glb_dir, tmp_path):
    out = tmp_path / "out"
    r = farm("render", glb_dir, "-o", out, *TINY, "--workers", "2")
    assert r.returncode == 0, r.stderr
    objs = read_objects(out)
    uids = sorted(p.stem for p in glb_dir.glob("*.glb"))
    assert sorted(o["uid"] for o in objs) == uids
    assert [o["obj_id"] for o in objs] == list(range(len(uids)))
    assert all(o["status"] == "done" and o["views"] == 2 for o in objs)
    for uid in uids:
        assert_complete(out, uid)
    assert "objects done" in r.stderr
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "views").rglob("*.png")}
    # rerun: resumes, nothing is rendered again, ids stay
    r2 = farm("render", glb_dir, "-o", out, *TINY, "--workers", "2")
    assert r2.returncode == 0, r2.stderr
    assert "already done" in r2.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "views").rglob("*.png")} == mtimes
    assert [(o["obj_id"], o["uid"]) for o in read_objects(out)] == [(o["obj_id"], o["uid"]) for o in objs]


def test_render_broken_assets_exit_3_with_reasons(broken_dir, tmp_path):
    out = tmp_path / "out"
    r = farm("render", broken_dir, "-o", out, *TINY, "--workers", "1")
    assert r.returncode == 3, r.stderr
    objs = read_objects(out)
    assert len(objs) == len(list(broken_dir.iterdir()))
    for o in objs:
        assert o["status"] == "failed" and o["error"] and o["attempts"] == 3
        assert o["error"].splitlines() == [o["error"]]
    assert not list(out.rglob("*.png")) and not no_stray_files(out)
    assert "failed:" in r.stderr and "Traceback" not in r.stderr


def render_with_one_bad(box_glb, tmp_path, bad: str, good: list[str], *args: str, chaos: Chaos) -> tuple[Path, dict]:
    """`farm render` of Box copies where the `bad` uid misbehaves (the chaos child): exit 3, the
    bad object failed after 3 attempts, the good ones complete."""
    assets = copies(box_glb, tmp_path / "assets", [bad, *good])
    out = tmp_path / "out"
    r = farm("render", assets, "-o", out, *TINY, "--workers", "1", *args, chaos=chaos)
    assert r.returncode == 3, r.stderr
    objs = {o["uid"]: o for o in read_objects(out)}
    assert objs[bad]["status"] == "failed" and objs[bad]["attempts"] == 3
    for uid in good:
        assert objs[uid]["status"] == "done"
        assert_complete(out, uid)
    assert not (out / "views" / bad).exists() or not any((out / "views" / bad).iterdir())
    return out, objs


def test_hanging_render_times_out_and_the_rest_completes(box_glb, tmp_path):
    _, objs = render_with_one_bad(box_glb, tmp_path, "hangs", ["fine"], "--timeout", "3",
                                  chaos=Chaos(hang=("hangs",)))
    assert "timed out" in objs["hangs"]["error"]


def test_child_crash_costs_attempts_not_the_worker_and_children_recycle(box_glb, tmp_path):
    out, objs = render_with_one_bad(box_glb, tmp_path, "crashes", ["ok1", "ok2"], "--max-tasks", "1",
                                    chaos=Chaos(crash=("crashes",)))
    assert "render process died" in objs["crashes"]["error"]
    log = (out / ".farm" / "logs" / "worker-0.log").read_text()
    assert "recycling the render child after 1 tasks" in log  # --max-tasks 1
    assert log.count("stopped after") == 1  # one worker process did it all


# --- faults with a standalone broker -------------------------------------------------------------
def test_worker_killed_mid_render(cluster, box_glb, tmp_path):
    assets = copies(box_glb, tmp_path / "assets", [f"box{i}" for i in range(4)])
    out = tmp_path / "out"
    slow = Chaos(delay_s=1.0)  # real renders, held 1 s after each view
    cluster.start_broker()
    cluster.start_worker("w1", chaos=slow)
    cluster.start_worker("w2", chaos=slow)
    job_id = submit(cluster, assets, out)

    def rendering_worker():
        for w in cluster.status()["workers"]:
            if w.get("task_id") and w["progress"][0] >= 1:
                return w
        return None

    victim = wait_for(rendering_worker, 60, 0.1, what="a worker mid-render")
    os.kill(victim["pid"], signal.SIGKILL)  # its render child dies with it (PDEATHSIG)
    job = cluster.wait_finished(job_id)
    assert job["render"] == {"done": 4}
    objs = assert_done_once(out, cluster.state, [f"box{i}" for i in range(4)])
    assert max(o["attempts"] for o in objs) == 2  # the killed attempt counted once


def test_broker_killed_and_restarted_on_the_same_state(cluster, box_glb, tmp_path):
    names = [f"box{i}" for i in range(6)]
    assets = copies(box_glb, tmp_path / "assets", names)
    out = tmp_path / "out"
    slow = Chaos(delay_s=0.5)
    cluster.start_broker()
    cluster.start_worker("w1", chaos=slow)
    cluster.start_worker("w2", chaos=slow)
    job_id = submit(cluster, assets, out)

    def mid_job():  # one object done, another mid-render: the restarted broker must adopt it
        st = cluster.status(job_id)
        return st["jobs"][0]["render"].get("done", 0) >= 1 and any(
            w.get("task_id") and w["progress"][0] >= 1 for w in st["workers"])

    wait_for(mid_job, 90, 0.1, what="a first object and a render in flight")
    os.killpg(cluster.broker.pid, signal.SIGKILL)
    cluster.broker.wait()
    time.sleep(1.5)  # workers notice the silence and start reconnecting
    cluster.start_broker()
    job = cluster.wait_finished(job_id)
    assert job["render"] == {"done": 6}
    assert_done_once(out, cluster.state, names)


def test_broken_worker_is_blocklisted_and_the_job_completes(cluster, box_glb, tmp_path):
    names = [f"box{i}" for i in range(5)]
    assets = copies(box_glb, tmp_path / "assets", names)
    out = tmp_path / "out"
    cluster.start_broker()
    cluster.start_worker("good")
    cluster.start_worker("bad", chaos=Chaos(fail_all=True))
    wait_for(lambda: len(cluster.status()["workers"]) == 2, 30, what="two workers")
    job_id = submit(cluster, assets, out)
    job = cluster.wait_finished(job_id)
    assert job["render"] == {"done": 5}
    workers = {w["worker"]: w for w in cluster.status()["workers"]}
    assert workers["bad"]["blocked_jobs"] == [job_id]
    assert workers["good"]["blocked_jobs"] == []
    for n in names:
        assert_complete(out, n)
    st = farm("status", job_id, "--connect", cluster.addr)
    assert st.returncode == 0 and "blocked from" in st.stdout and job_id in st.stdout


def test_worker_without_shared_storage_streams_results(cluster, box_glb, tmp_path):
    assets = copies(box_glb, tmp_path / "assets", ["s0", "s1"])
    out = tmp_path / "out"
    scratch = tmp_path / "scratch"
    cluster.start_broker()
    cluster.start_worker("remote", "--no-shared-storage", "--scratch", scratch)
    job_id = submit(cluster, assets, out)
    job = cluster.wait_finished(job_id)
    assert job["render"] == {"done": 2}
    for uid in ("s0", "s1"):
        assert_complete(out, uid)
    assert [o["status"] for o in read_objects(out)] == ["done", "done"]
    def attempt_files():  # the render child's own folder (its TMPDIR, its output) stays while it runs
        return [p for p in scratch.rglob("*") if p.is_file() and not p.relative_to(scratch).parts[0].startswith("child-")]

    wait_for(lambda: not attempt_files(), 10, what="scratch to be cleaned")
    assert not (out / ".farm" / "incoming").exists() or not any((out / ".farm" / "incoming").rglob("*.part"))


def test_curve_keys_end_to_end(cluster, box_glb, tmp_path):
    keys = tmp_path / "keys"
    r = farm("keys", keys)
    assert r.returncode == 0, r.stderr
    assets = copies(box_glb, tmp_path / "assets", ["c0"])
    out = tmp_path / "out"
    cluster.start_broker(curve_keys=keys)
    cluster.start_worker("sealed", "--curve-keys", keys)
    r = farm("submit", assets, "-o", out, *TINY, "--connect", cluster.addr, "--json", "--curve-keys", keys)
    assert r.returncode == 0, r.stderr
    job_id = json.loads(r.stdout)["job_id"]
    cluster.wait_finished(job_id, curve_keys=keys)
    assert_complete(out, "c0")
    # no keys: refused at the handshake, and the CLI says so in one line
    r = farm("status", "--connect", cluster.addr, "--reply-timeout", "2", timeout=60)
    assert r.returncode == 1 and r.stderr.startswith(f"error: the broker at {cluster.addr} refused this client's "
                                                     "handshake"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_render_with_captions_from_a_tiny_model(glb_dir, tmp_path):
    """--caption spawns `captioner serve` beside the workers and waits for the caption queue."""
    from tests.captioner.tiny_models import build_llava

    model = build_llava(tmp_path / "tiny_llava")
    assets = copies(glb_dir / "Box.glb", tmp_path / "assets", ["box_a", "box_b"])
    out = tmp_path / "out"
    r = farm("render", assets, "-o", out, *TINY, "--caption", "--caption-model", model, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((out / "metadata.json").read_text())
    assert sorted((m["obj_id"], m["img_id"]) for m in meta) == [(0, 0), (0, 1), (1, 100), (1, 101)]
    assert all(m["path"].startswith("./views/") and m["caption"] for m in meta)
    assert "captions: 2 objects captioned" in r.stderr
