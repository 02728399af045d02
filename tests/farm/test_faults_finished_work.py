"""Finished work is never deleted: a worker that comes back from the dead (SIGSTOP longer than its
lease) finds its task finished by another worker, and must not touch the object's folder."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from .chaos_child import Chaos
from .conftest import copies, wait_for
from .test_e2e import Farm, assert_complete, submit

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path):
    f = Farm(tmp_path)
    yield f
    f.close()


def folder_snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_worker_back_from_sigstop_leaves_the_finished_object_alone(cluster, box_glb, tmp_path):
    assets = copies(box_glb, tmp_path / "assets", ["box0"])
    out = tmp_path / "out"
    obj = out / "views" / "box0"
    obj.mkdir(parents=True)
    (obj / "keep.png").write_bytes(b"the user's own file")  # a user's files in a target folder
    (obj / ".keep").write_text("keep me")
    cluster.start_broker()
    stale = cluster.start_worker("stale", chaos=Chaos(delay_s=2.0))  # slow: stopped mid-render
    job_id = submit(cluster, assets, out)

    def mid_render():
        return any(w["worker"] == "stale" and w.get("task_id") and w["progress"][0] >= 1
                   for w in cluster.status()["workers"])

    wait_for(mid_render, 90, 0.1, what="the first view of the stale worker")
    os.killpg(stale.pid, signal.SIGSTOP)  # the worker and its render child: a VM pause
    try:
        wait_for(lambda: all(w["worker"] != "stale" for w in cluster.status()["workers"]), 30,
                 what="the broker to give up on the stopped worker")
        cluster.start_worker("fresh")
        job = cluster.wait_finished(job_id)
        assert job["render"] == {"done": 1}
        assert_complete_with_keepers(out)
        finished = folder_snapshot(obj)
    finally:
        os.killpg(stale.pid, signal.SIGCONT)

    def stale_back_and_idle():
        return any(w["worker"] == "stale" and not w.get("task_id") for w in cluster.status()["workers"])

    wait_for(stale_back_and_idle, 60, 0.2, what="the stale worker to reconnect")
    time.sleep(5)  # its child had a view left to render: let it finish and report, if it does
    assert folder_snapshot(obj) == finished  # not one byte of the finished object changed
    assert (obj / "keep.png").read_bytes() == b"the user's own file" and (obj / ".keep").read_text() == "keep me"
    objs = [json.loads(x) for x in (out / "objects.jsonl").read_text().splitlines()]
    assert [o["status"] for o in objs] == ["done"]
    attempts = out / ".farm" / "attempts"
    assert not attempts.exists() or not any(attempts.iterdir())  # every attempt folder removed


def assert_complete_with_keepers(out) -> None:
    obj = out / "views" / "box0"
    keepers = {"keep.png", ".keep"}
    assert keepers <= {p.name for p in obj.iterdir()}
    # the views and transforms.json are complete; the user's files sit beside them
    tmp = out.parent / "views-only" / "views" / "box0"
    tmp.mkdir(parents=True)
    for p in obj.iterdir():
        if p.name not in keepers:
            (tmp / p.name).write_bytes(p.read_bytes())
    assert_complete(out.parent / "views-only", "box0")
