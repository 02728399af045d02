"""Resource limits inside a task: the memory ceiling, nothing left in the system temp folder, and
captioner leases that come back about as soon as a dead worker's."""
from __future__ import annotations

import re
import subprocess
import time

import pytest
import zmq

from blender_addon.contract.peer_auth import PeerAuth
from farm import protocol as P
from farm.broker import Broker

from .chaos_child import Chaos
from .conftest import REPO, copies, farm_command, farm_env, stop, wait_for
from .fault_assets import huge_buffer_glb
from .test_e2e import HB, Farm, assert_complete, read_objects, submit

CEILING_MB = 1024


@pytest.mark.slow
def test_a_10gb_buffer_glb_fails_alone_under_the_memory_ceiling(box_glb, tmp_path):
    assets = copies(box_glb, tmp_path / "assets", ["box0", "box1"])
    huge_buffer_glb(assets / "huge.glb")  # the importer would take 13 GB and more
    out = tmp_path / "out"
    f = Farm(tmp_path)
    try:
        f.start_broker()
        f.start_worker("w", "--max-rss-mb", str(CEILING_MB))
        job_id = submit(f, assets, out, "--max-attempts", "2")
        job = f.wait_finished(job_id, timeout=300)
    finally:
        f.close()
    assert job["render"] == {"done": 2, "failed": 1}
    objs = {o["uid"]: o for o in read_objects(out)}
    assert f"exceeded {CEILING_MB} MB" in objs["huge"]["error"], objs["huge"]["error"]
    for uid in ("box0", "box1"):
        assert objs[uid]["status"] == "done"
        assert_complete(out, uid)
    kills = re.findall(r"killed at (\d+) MB resident \(peak (\d+) MB\)", (f.logs / "w.log").read_text())
    assert len(kills) == 2  # one per attempt
    assert all(int(peak) < CEILING_MB for _, peak in kills), kills  # the kernel's high-water mark


@pytest.mark.slow
@pytest.mark.parametrize("shared", [True, False])
def test_nothing_is_left_in_the_system_temp_folder(box_glb, tmp_path, shared):
    """Not even by render children that crash (os._exit: no clean-up of their own)."""
    assets = copies(box_glb, tmp_path / "assets", ["t0", "crash"])
    out = tmp_path / "out"
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    f = Farm(tmp_path)
    try:
        f.start_broker()
        env = {**farm_env(), "TMPDIR": str(system_tmp)}
        args = ["--connect", f.addr, "--name", "w", "--heartbeat", HB] + ([] if shared else ["--no-shared-storage"])
        with open(f.logs / "w.log", "ab") as log:
            worker = subprocess.Popen([*farm_command(Chaos(crash=("crash",))), "worker", *args], env=env, cwd=REPO,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        job_id = submit(f, assets, out)
        assert f.wait_finished(job_id)["render"] == {"done": 1, "failed": 1}
        assert any(system_tmp.iterdir())  # the worker's scratch, with the child's blender_* in it
        stop(worker)
    finally:
        f.close()
    assert_complete(out, "t0")
    assert sorted(p.name for p in system_tmp.iterdir()) == []  # no farm-scratch-*, no blender_*


def test_a_killed_captioners_leases_come_back_within_seconds(tmp_path):
    b = Broker(tmp_path / "state.sqlite", "tcp://127.0.0.1:*", out_roots=[tmp_path])
    thread = b.serve_in_thread()
    endpoint = b.wait_ready()
    ctx = zmq.Context.instance()
    try:
        from farm.client import Client

        with Client(endpoint) as c:
            job_id = c.submit({"name": "t", "out_root": str(tmp_path / "out"), "caption": True},
                              [{"uid": "a", "path": "/a.glb", "category": "x", "out_rel": "views/a"}])["job_id"]
        render = _peer(ctx, endpoint)  # a worker that finishes the render, so a caption task is queued
        render.send(P.encode("READY", worker="w", host="h", pid=1, device="cpu", shared_storage=True))
        task = _recv(render, "TASK")
        folder = P.attempt_folder(task["out_root"], task["attempt_id"])
        folder.mkdir(parents=True)
        (folder / "000.png").write_bytes(b"png")
        render.send(P.encode("RESULT", task_id=task["task_id"], attempt_id=task["attempt_id"], ok=True,
                             result={"views": 1}, files=[{"name": "000.png", "size": 3}]))
        _recv(render, "ACK")
        captioner = _peer(ctx, endpoint)
        captioner.send(P.encode("CAPTION_LEASE", max=1))
        assert len(_recv(captioner, "CAPTION_TASKS")["tasks"]) == 1
        killed = time.time()
        captioner.close(0)  # a captioner killed with its lease in hand: no heartbeat from now on
        again = _peer(ctx, endpoint)

        def leased_again():
            again.send(P.encode("CAPTION_LEASE", max=1))
            return _recv(again, "CAPTION_TASKS")["tasks"]

        wait_for(leased_again, 30, 0.5, what="the caption lease to come back")
        assert time.time() - killed < 10  # a worker's comes back in about 4 s; it was 300 s
        render.close(0)
        again.close(0)
    finally:
        b.stop()
        thread.join(10)


def _peer(ctx, endpoint):
    sock = ctx.socket(zmq.DEALER)
    P.configure_socket(sock, PeerAuth(endpoint).socket_options())
    sock.connect(endpoint)
    return sock


def _recv(sock, mtype: str, timeout: float = 10.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sock.poll(200):
            msg = P.decode(sock.recv())
            if msg["type"] == mtype:
                return msg
    raise AssertionError(f"no {mtype} within {timeout}s")
