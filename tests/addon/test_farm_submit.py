"""Submitting from the panel: the broker's wire protocol over a DEALER, progress by timer polls."""
from __future__ import annotations

import json
import threading
import time

import pytest
import zmq

from blender_addon.ui import ops_farm
from farm import protocol

from .conftest import free_port


def _small(s):
    s.camera.num_views = 2
    s.render.resolution_x = s.render.resolution_y = 16
    s.render.samples = 1


def _pump(s, timeout):
    """What bpy.app.timers does in a GUI session: call the timer until it stops. Returns the
    (views done, progress %) the panel showed along the way."""
    deadline = time.monotonic() + timeout
    shown = []
    while ops_farm.is_watching() and time.monotonic() < deadline:
        t0 = time.perf_counter()
        ops_farm.poll_farm()
        assert time.perf_counter() - t0 < 0.2, "a timer tick blocked the UI"
        shown.append((s.job_views_done, round(s.job_progress, 3)))
        time.sleep(0.05)
    return shown


def test_unreachable_farm_is_an_error_not_a_hang(addon, glb_dir, tmp_path):
    bpy = addon
    s = bpy.context.scene.mvcap
    bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Box.glb"))
    s.farm_address = f"tcp://127.0.0.1:{free_port()}"
    s.farm_output = str(tmp_path / "out")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="did not answer"):
        bpy.ops.mvcap.submit()
    assert time.monotonic() - t0 < 10
    assert not ops_farm.is_watching() and s.job_id == ""
    s.farm_address = "not-an-address"
    with pytest.raises(RuntimeError, match="not a ZeroMQ address"):
        bpy.ops.mvcap.submit()
    s.farm_source = "FOLDER"
    s.farm_folder = str(tmp_path / "missing")
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.mvcap.submit()


class FakeBroker(threading.Thread):
    """A ROUTER that checks messages with farm.protocol and reports a job finishing in steps."""

    def __init__(self, endpoint, steps=3):
        super().__init__(daemon=True)
        self.P, self.endpoint, self.steps = protocol, endpoint, steps
        self.received, self.errors = [], []
        self.stop = threading.Event()
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)

    def run(self):
        polls, n_assets = 0, 0
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            ident, frame = self.sock.recv_multipart()
            try:
                msg = self.P.decode(frame, self.P.CLIENT_TYPES)
            except self.P.ProtocolError as exc:
                self.errors.append(str(exc))
                continue
            self.received.append(msg)
            if msg["type"] == "STATUS" and not msg.get("job_id"):  # the reachability check before a SUBMIT
                reply = self.P.encode("STATUS_REPLY", jobs=[], workers=[])
            elif msg["type"] == "SUBMIT":
                n_assets = len(msg["assets"])
                reply = self.P.encode("SUBMITTED", job_id="job-1", objects=n_assets, queued=n_assets, skipped=0)
            else:
                polls += 1
                done = min(n_assets, polls * n_assets // self.steps)
                state = "finished" if done == n_assets else "running"
                # 2 views per object; a worker is 1 view into the next object (its PROGRESS)
                job = {"job_id": "job-1", "state": state, "render": {"done": done, "queued": n_assets - done},
                       "views_done": 2 * done, "views_in_flight": int(done < n_assets)}
                reply = self.P.encode("STATUS_REPLY", jobs=[job], workers=[])
            self.sock.send_multipart([ident, reply])
        self.sock.close(0)
        self.ctx.term()


def test_submit_folder_progress_reaches_done(addon, glb_dir, tmp_path):
    bpy = addon
    s = bpy.context.scene.mvcap
    _small(s)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    broker = FakeBroker(endpoint)
    broker.start()
    try:
        s.farm_address, s.farm_output = endpoint, str(tmp_path / "out")
        s.farm_source, s.farm_folder = "FOLDER", str(glb_dir)
        assert bpy.ops.mvcap.submit() == {"FINISHED"}
        assert s.job_id == "job-1" and ops_farm.is_watching()
        shown = _pump(s, 20)
    finally:
        broker.stop.set()
        broker.join(5)
    assert not broker.errors
    assert broker.received[0]["type"] == "STATUS"  # is the farm there, and does it let us in?
    submit = broker.received[1]
    n = len(list(glb_dir.glob("*.glb")))
    assert submit["type"] == "SUBMIT" and len(submit["assets"]) == n
    assert {a["out_rel"] for a in submit["assets"]} == {f"views/{p.stem}" for p in glb_dir.glob("*.glb")}
    assert submit["job"]["spec"]["camera"]["num_views"] == 2 and submit["job"]["out_root"] == str(tmp_path / "out")
    assert all(m["type"] == "STATUS" and m["job_id"] == "job-1" for m in broker.received[2:])
    assert (s.job_state, s.job_done, s.job_total, s.job_progress) == ("done", n, n, 100.0)
    assert s.job_views_total == 2 * n and s.job_views_done == 2 * n
    # progress is per view: after the first poll 1 of 5 objects is done (2 views) and a worker is
    # 1 view into the next: 3 of 10 views, 30% (counting objects would say 20%)
    assert n == 5 and (3, 30.0) in shown, shown
    assert not ops_farm.is_watching()


def test_real_broker_and_worker_render_the_asset(addon, glb_dir, tmp_path, local_farm, monkeypatch):
    """The local broker's token authenticates the panel; without it the broker refuses it."""
    bpy = addon
    s = bpy.context.scene.mvcap
    _small(s)
    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb")) == {"FINISHED"}
    s.farm_address, s.farm_output = local_farm, str(tmp_path / "out")
    for _ in range(50):  # the broker may still be binding, or not yet have written its token
        try:
            bpy.ops.mvcap.submit()
            break
        except RuntimeError as exc:
            assert "did not answer" in str(exc) or "refused this client's handshake" in str(exc)
            time.sleep(0.1)
    assert s.job_id
    _pump(s, 300)
    assert s.job_state == "done", s.job_message
    assert (s.job_done, s.job_total, s.job_progress, s.job_views_done) == (1, 1, 100.0, 2)
    transforms = json.loads((tmp_path / "out" / "views" / "Duck" / "transforms.json").read_text())
    assert len(transforms["frames"]) == 2
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "another-user"))  # where no token is
    with pytest.raises(RuntimeError, match="refused this client's handshake .*no farm token at"):
        bpy.ops.mvcap.submit()
