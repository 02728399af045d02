"""Attempt folders (OUT/.farm/attempts/<attempt_id>/) of attempts that can no longer deliver are
removed by the broker, and nothing else: not a live attempt's, not a folder it did not name, not
what a symbolic link points to."""
from __future__ import annotations

import json
import os
import signal
import sqlite3

import pytest

from farm.broker.attempt_folders import remove_attempt_folder, sweep_attempt_folders
from farm.store import Store

from .chaos_child import Chaos
from .conftest import copies, farm, wait_for
from .fault_assets import assert_views
from .test_e2e import Farm
from .test_store import assets, job, lease_one


def plant(folder, files=("keep.txt",)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_text("not the broker's to delete")
    return folder


def key(task: dict) -> tuple[int, int]:
    return task["task_id"], task["attempt_id"]


def test_the_start_sweep_removes_only_dead_attempts_folders(tmp_path):
    allowed = tmp_path / "allowed"
    out, other = allowed / "out", tmp_path / "elsewhere"
    store = Store(tmp_path / "state.sqlite")
    try:
        store.submit(job(out), assets("a", "b", "c"))
        (dead_task, dead), (_, live), (done_task, done) = (key(lease_one(store, w)) for w in ("w1", "w2", "w3"))
        store.submit(job(other), assets("z"))
        foreign_task, foreign = key(lease_one(store, "w4"))
        with store.transaction():
            store.fail(dead_task, dead, "boom", kind="worker")
            store.fail(foreign_task, foreign, "boom", kind="worker")
            assert store.complete(done_task, done, {"views": 2})
        attempts = out / ".farm" / "attempts"
        plant(attempts / str(dead))
        plant(attempts / str(live))
        plant(attempts / f"0{dead}")  # not how a worker names a folder
        plant(attempts / "not-an-attempt")
        plant(attempts / str(foreign))  # an attempt of a job in another OUT
        target = plant(out / "views" / "c")  # a link named by a dead attempt, into OUT: never followed
        (attempts / str(done)).symlink_to(target, target_is_directory=True)
        plant(other / ".farm" / "attempts" / str(foreign))  # OUT outside the broker's --out-root

        assert sweep_attempt_folders(store, (str(allowed),)) == 1
        assert sorted(p.name for p in attempts.iterdir()) == sorted(
            [str(live), f"0{dead}", "not-an-attempt", str(foreign), str(done)])
        assert (attempts / str(done)).is_symlink() and (target / "keep.txt").exists()
        assert (other / ".farm" / "attempts" / str(foreign) / "keep.txt").exists()
    finally:
        store.close()


def test_a_linked_attempts_folder_is_not_followed(tmp_path):
    out, outside = tmp_path / "out", plant(tmp_path / "outside" / "attempts" / "7")
    (out / ".farm").mkdir(parents=True)
    (out / ".farm" / "attempts").symlink_to(outside.parent, target_is_directory=True)
    remove_attempt_folder(str(out), 7)
    assert (outside / "keep.txt").exists()
    (out / ".farm" / "attempts").unlink()
    (out / ".farm" / "attempts").mkdir()
    (out / ".farm" / "attempts" / "7").symlink_to(outside, target_is_directory=True)
    remove_attempt_folder(str(out), 7)
    assert (out / ".farm" / "attempts" / "7").is_symlink() and (outside / "keep.txt").exists()


@pytest.fixture
def cluster(tmp_path):
    f = Farm(tmp_path)
    yield f
    f.close()


def query_one(state, sql: str):
    db = sqlite3.connect(state)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def live_attempt(state) -> int:
    return query_one(state, "SELECT attempt_id FROM tasks WHERE state = 'leased'")


def last_attempt(state) -> int:
    return query_one(state, "SELECT MAX(attempt_id) FROM attempts")


def kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # a worker with its render child
    proc.wait()


@pytest.mark.slow
def test_a_killed_attempts_folder_goes_and_nothing_else(cluster, box_glb, tmp_path):
    assets_dir = copies(box_glb, tmp_path / "assets", ["box0"])
    out = tmp_path / "out"
    attempts = out / ".farm" / "attempts"
    cluster.start_broker()
    victim = cluster.start_worker("victim", chaos=Chaos(delay_s=3.0))
    r = farm("submit", assets_dir, "-o", out, "--preset", "mvcap", "--views", "2", "--resolution", "32",
             "--samples", "1", "--connect", cluster.addr, "--json")
    assert r.returncode == 0, r.stderr
    job_id = json.loads(r.stdout)["job_id"]
    wait_for(lambda: any(w.get("task_id") and w["progress"][0] >= 1 for w in cluster.status()["workers"]),
             90, 0.1, what="a view of the victim's attempt")
    killed = live_attempt(cluster.state)
    assert (attempts / str(killed)).is_dir()
    kill(cluster.broker)
    kill(victim)
    plant(attempts / "not-an-attempt")

    # the restarted broker keeps the lease a while for its worker, then gives up: the folder goes
    cluster.start_broker()
    cluster.start_worker("fresh")
    assert cluster.wait_finished(job_id)["render"] == {"done": 1}
    assert_views(out, "box0")
    assert sorted(p.name for p in attempts.iterdir()) == ["not-an-attempt"]

    # at start: a dead attempt's folder goes (a late finisher recreated it); a link named by an
    # attempt stays, and so does what it points to
    kill(cluster.broker)
    plant(attempts / str(killed), ("000.png",))
    done = last_attempt(cluster.state)
    outside = plant(tmp_path / "outside")
    (attempts / str(done)).symlink_to(outside, target_is_directory=True)
    cluster.start_broker()
    assert sorted(p.name for p in attempts.iterdir()) == sorted(["not-an-attempt", str(done)])
    assert (attempts / str(done)).is_symlink() and (outside / "keep.txt").exists()
    assert (attempts / "not-an-attempt" / "keep.txt").exists()
    assert_views(out, "box0")
