"""The broker over real ZeroMQ sockets, with fake workers that do not render (broker-level only)."""
from __future__ import annotations

import base64
import json
import sqlite3
import os
import time

import pytest
import zmq

from blender_addon.contract.peer_auth import PeerAuth, curve_client_options
from farm import protocol as P
from farm.broker import Broker
from farm.client import Client, ClientError
from farm.keys import create_keys

SPEC = {"camera": {"num_views": 2}, "render": {"resolution_x": 16, "resolution_y": 16, "samples": 1}}
TWO_VIEWS = {"views": 2, "files": ["000.png", "001.png", "transforms.json"]}  # a render's result


class Peer:
    """A raw DEALER: a fake worker, a captioner or an attacker. `security`: its socket's credentials
    (default: the local broker's token, as every local peer of this user presents it)."""

    def __init__(self, endpoint: str, security: dict | None = None):
        self.beat = False  # heartbeat while waiting in recv (a live worker)
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        P.configure_socket(self.sock, PeerAuth(endpoint).socket_options() if security is None else security)
        self.sock.connect(endpoint)

    def send(self, mtype: str, **fields) -> None:
        self.sock.send(P.encode(mtype, **fields))

    def recv(self, timeout: float = 5.0, skip=("HEARTBEAT",)) -> dict | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.beat:
                self.send("HEARTBEAT")
            if self.sock.poll(int(min(0.1, max(0, deadline - time.time())) * 1000)):
                msg = P.decode(self.sock.recv())
                if msg["type"] not in skip:
                    return msg
        return None

    def ready(self, name: str, shared: bool = True, **kw) -> None:
        self.send("READY", worker=name, host="test", pid=os.getpid(), device="cpu", shared_storage=shared, **kw)
        self.beat = True

    def close(self) -> None:
        self.sock.close(0)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "state.sqlite", "tcp://127.0.0.1:*", heartbeat_s=0.2, liveness=3, out_roots=[tmp_path])
    t = b.serve_in_thread()
    b.wait_ready()
    yield b
    b.stop()
    t.join(10)


def submit(endpoint, out, uids, **job):
    assets = [{"uid": u, "path": f"/nowhere/{u}.glb", "category": "thing", "source": "folder",
               "out_rel": f"views/{u}"} for u in uids]
    with Client(endpoint, timeout_s=5) as c:
        return c.submit({"name": "t", "out_root": str(out), "spec": SPEC, **job}, assets)


def rendered(task: dict, names=("000.png", "001.png", "transforms.json")) -> dict:
    """What a shared-storage worker's child leaves: the files in the attempt's folder under
    OUT/.farm/attempts/; returns RESULT's `files` for them."""
    folder = P.attempt_folder(task["out_root"], task["attempt_id"])
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(f"{name} of attempt {task['attempt_id']}".encode())
    return {"files": [{"name": n, "size": (folder / n).stat().st_size} for n in names]}


def status(endpoint, job_id=None):
    with Client(endpoint, timeout_s=5) as c:
        return c.status(job_id)


def test_lease_complete_ack_and_objects_jsonl(broker, tmp_path):
    out = tmp_path / "out"
    reply = submit(broker.endpoint, out, ["a", "b"])
    w = Peer(broker.endpoint)
    w.ready("w1")
    done = []
    for _ in range(2):
        task = w.recv()
        assert task["type"] == "TASK" and task["out_root"] == str(out)
        w.send("PROGRESS", task_id=task["task_id"], attempt_id=task["attempt_id"], done=1, total=2)
        w.send("RESULT", task_id=task["task_id"], attempt_id=task["attempt_id"], ok=True,
               result={"views": 2, "files": ["000.png", "001.png"]}, **rendered(task))
        ack = w.recv()
        assert ack["type"] == "ACK" and ack["task_id"] == task["task_id"]
        done.append(task["asset"]["uid"])
    assert sorted(done) == ["a", "b"]
    time.sleep(0.3)
    job = status(broker.endpoint, reply["job_id"])["jobs"][0]
    assert job["state"] == "finished" and job["render"] == {"done": 2} and job["views_done"] == 4
    objs = [json.loads(x) for x in (out / "objects.jsonl").read_text().splitlines()]
    assert [o["status"] for o in objs] == ["done", "done"]
    w.close()


def test_malformed_input_leaves_the_broker_serving(broker, tmp_path):
    evil = zmq.Context.instance().socket(zmq.DEALER)
    P.configure_socket(evil, PeerAuth(broker.endpoint).socket_options())  # a local peer with the token
    evil.connect(broker.endpoint)
    bad = [
        os.urandom(1000),
        b"\x80\x04\x95\x00",  # a pickle header
        b"null", b"[]", b'{"v": 1}', b'{"v": 99, "type": "HEARTBEAT"}',
        b'{"v": 1, "type": "SUBMIT", "job": "x", "assets": 3}',
        b'{"v": 1, "type": "SUBMIT", "job": {"out_root": "/tmp/x"}, "assets": [{"uid": 1}]}',
        b'{"v": 1, "type": "SUBMIT", "job": {"out_root": "/tmp/x"}, "assets": [{"uid": "a", "path": "p", '
        b'"out_rel": "../../etc"}]}',
        b'{"v": 1, "type": "RESULT", "task_id": 99999, "attempt_id": 1, "ok": true}',
        b'{"v": 1, "type": "READY", "worker": "../x", "host": "h", "pid": 1, "device": "cpu", "shared_storage": true}',
        b'{"v": 1, "type": "CAPTION_LEASE", "max": "all"}',
        b'{"v": 1, "type": "TASK"}',
        b'{"v": 1, "type": "PROGRESS", "task_id": 1e400, "attempt_id": 1, "done": 1, "total": 1}',
        b"[" * 50000,
    ]
    for frame in bad:
        evil.send(frame)
    evil.send_multipart([b"two", b"frames"])
    # a frame over MAXMSGSIZE: zmq itself drops the connection
    huge = zmq.Context.instance().socket(zmq.DEALER)
    P.configure_socket(huge, PeerAuth(broker.endpoint).socket_options())
    huge.connect(broker.endpoint)
    huge.send(b"x" * (P.MAX_MESSAGE_BYTES + 10))
    time.sleep(0.5)
    # still serving
    reply = submit(broker.endpoint, tmp_path / "o", ["a"])
    assert reply["queued"] == 1
    assert broker.dropped >= len(bad) - 3
    with pytest.raises(ClientError, match="escapes|not allowed"):
        with Client(broker.endpoint, timeout_s=5) as c:
            c.submit({"out_root": str(tmp_path / "o")}, [{"uid": "x", "path": "p", "out_rel": "views/../../x"}])
    evil.close()
    huge.close()


def test_dead_worker_lease_requeued_and_stale_result_ignored(broker, tmp_path):
    reply = submit(broker.endpoint, tmp_path, ["a"])
    w1 = Peer(broker.endpoint)
    w1.ready("w1")
    task = w1.recv()
    w1.beat = False
    # w1 goes silent: after liveness * heartbeat the task goes back to the queue
    w2 = Peer(broker.endpoint)
    w2.ready("w2")
    task2 = w2.recv(timeout=5)
    assert task2["type"] == "TASK" and task2["task_id"] == task["task_id"]
    assert task2["attempt_id"] != task["attempt_id"]
    # the old worker wakes up and reports: stale, ignored (it is told to READY again)
    w1.send("RESULT", task_id=task["task_id"], attempt_id=task["attempt_id"], ok=False, error="late")
    assert w1.recv()["type"] == "RECONNECT"
    w2.send("RESULT", task_id=task2["task_id"], attempt_id=task2["attempt_id"], ok=True, result=TWO_VIEWS,
            **rendered(task2))
    assert w2.recv()["type"] == "ACK"
    time.sleep(0.3)
    job = status(broker.endpoint, reply["job_id"])["jobs"][0]
    assert job["render"] == {"done": 1}
    w1.close()
    w2.close()


def test_unknown_worker_heartbeat_gets_reconnect(broker):
    w = Peer(broker.endpoint)
    w.send("HEARTBEAT")
    assert w.recv()["type"] == "RECONNECT"
    w.close()


def test_streamed_files_installed_and_confined(broker, tmp_path):
    out = tmp_path / "out"
    submit(broker.endpoint, out, ["a"])
    w = Peer(broker.endpoint)
    w.ready("remote", shared=False)
    task = w.recv()
    key = {"task_id": task["task_id"], "attempt_id": task["attempt_id"]}
    data = os.urandom(P.FILE_CHUNK_BYTES + 100)
    for off in (0, P.FILE_CHUNK_BYTES):
        w.send("FILE_CHUNK", **key, name="000.png", offset=off,
               data=base64.b64encode(data[off:off + P.FILE_CHUNK_BYTES]).decode())
    w.send("FILE_CHUNK", **key, name="transforms.json", offset=0, data=base64.b64encode(b"{}").decode())
    for evil in ("../escape.png", "/etc/passwd", "..", "a/b.png"):
        w.send("FILE_CHUNK", **key, name=evil, offset=0, data=base64.b64encode(b"x").decode())
    w.send("RESULT", **key, ok=True, result={"views": 1, "files": ["000.png"]},
           files=[{"name": "000.png", "size": len(data)}, {"name": "transforms.json", "size": 2}])
    assert w.recv()["type"] == "ACK"
    time.sleep(0.3)
    assert (out / "views/a/000.png").read_bytes() == data
    assert (out / "views/a/transforms.json").read_bytes() == b"{}"
    assert not (out / "views/escape.png").exists() and not (tmp_path / "escape.png").exists()
    incoming = out / ".farm" / "incoming"
    assert incoming.is_dir() and not any(incoming.rglob("*"))  # the files came through it; nothing stays
    w.close()


def test_streamed_result_with_an_escaping_name_fails_the_attempt(broker, tmp_path):
    out = tmp_path / "out"
    reply = submit(broker.endpoint, out, ["a"], max_attempts=1)
    w = Peer(broker.endpoint)
    w.ready("remote", shared=False)
    task = w.recv()
    w.send("RESULT", task_id=task["task_id"], attempt_id=task["attempt_id"], ok=True, result={},
           files=[{"name": "../../../evil", "size": 1}])
    assert w.recv()["type"] == "ACK"
    time.sleep(0.3)
    job = status(broker.endpoint, reply["job_id"])["jobs"][0]
    assert job["render"] == {"failed": 1}
    assert not list(tmp_path.rglob("evil"))
    w.close()


def test_caption_queue_handoff(broker, tmp_path):
    out = tmp_path / "out"
    reply = submit(broker.endpoint, out, ["a"], caption=True)
    w = Peer(broker.endpoint)
    w.ready("w1")
    task = w.recv()
    cap = Peer(broker.endpoint)
    cap.send("CAPTION_LEASE", max=4)
    assert cap.recv() == {"v": 1, "type": "CAPTION_TASKS", "tasks": []}
    w.send("RESULT", task_id=task["task_id"], attempt_id=task["attempt_id"], ok=True,
           result={"views": 1, "files": ["000.png"]}, **rendered(task, ("000.png",)))
    cap.send("CAPTION_LEASE", max=4)
    tasks = cap.recv()["tasks"]
    assert len(tasks) == 1 and tasks[0]["files"] == ["000.png"] and tasks[0]["out_rel"] == "views/a"
    ct = tasks[0]
    cap.send("CAPTION_HEARTBEAT", attempt_ids=[ct["attempt_id"]])
    (out / "views/a").mkdir(parents=True, exist_ok=True)
    (out / "views/a/captions.json").write_text(json.dumps(
        {"uid": "a", "captions": [{"view": 0, "file": "000.png", "caption": "a thing", "route": "guided",
                                   "error": None}]}))
    cap.send("CAPTION_DONE", task_id=ct["task_id"], attempt_id=ct["attempt_id"])
    time.sleep(0.5)
    job = status(broker.endpoint, reply["job_id"])["jobs"][0]
    assert job["state"] == "finished" and job["caption_tasks"] == {"done": 1}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta == [{"path": "./views/a/000.png", "caption": "a thing", "obj_id": 0, "img_id": 0}]
    w.close()
    cap.close()


def test_curve_refuses_peers_without_keys(tmp_path):
    keys = tmp_path / "keys"
    create_keys(keys)
    b = Broker(tmp_path / "s.sqlite", "tcp://127.0.0.1:*", curve_keys=keys)
    t = b.serve_in_thread()
    ep = b.wait_ready()
    try:
        # with the keys: served
        with Client(ep, curve_keys=keys, timeout_s=5) as c:
            assert c.status()["type"] == "STATUS_REPLY"
        # no keys at all: the CURVE server drops the handshake, which the client reports
        with pytest.raises(ClientError, match="refused this client's handshake"):
            with Client(ep, timeout_s=1.5) as c:
                c.status()
        # a well-formed key pair the broker does not hold: refused by the authenticator
        other = tmp_path / "other"
        create_keys(other)
        opts = curve_client_options(other)
        opts[zmq.CURVE_SERVERKEY] = curve_client_options(keys)[zmq.CURVE_SERVERKEY]
        intruder = Peer(ep, security=opts)
        intruder.send("STATUS")
        assert intruder.recv(timeout=1.5) is None
        intruder.close()
    finally:
        b.stop()
        t.join(10)


def test_restarted_broker_adopts_running_and_finished_work(tmp_path):
    """Titanic: state survives a broker restart; workers re-register with what they hold."""
    state = tmp_path / "state.sqlite"
    b = Broker(state, "tcp://127.0.0.1:*", heartbeat_s=0.2, liveness=3, out_roots=[tmp_path])
    t = b.serve_in_thread()
    ep = b.wait_ready()
    reply = submit(ep, tmp_path / "out", ["a", "b"])
    w1, w2 = Peer(ep), Peer(ep)
    w1.ready("w1")
    w2.ready("w2")
    t1, t2 = w1.recv(), w2.recv()
    b.stop()
    t.join(10)
    w1.close()
    w2.close()
    # a new broker on the same state file, on another port
    b = Broker(state, "tcp://127.0.0.1:*", heartbeat_s=0.2, liveness=3)
    t = b.serve_in_thread()
    ep = b.wait_ready()
    try:
        w1, w2 = Peer(ep), Peer(ep)
        w1.ready("w1", running={"task_id": t1["task_id"], "attempt_id": t1["attempt_id"]})  # still rendering
        w2.ready("w2", results=[[t2["task_id"], t2["attempt_id"]]])  # finished while the broker was down
        w2.send("RESULT", task_id=t2["task_id"], attempt_id=t2["attempt_id"], ok=True, result=TWO_VIEWS,
                **rendered(t2))
        assert w2.recv()["type"] == "ACK"
        w1.send("RESULT", task_id=t1["task_id"], attempt_id=t1["attempt_id"], ok=True, result=TWO_VIEWS,
                **rendered(t1))
        assert w1.recv()["type"] == "ACK"
        time.sleep(0.3)
        job = status(ep, reply["job_id"])["jobs"][0]
        assert job["state"] == "finished" and job["render"] == {"done": 2}
        import sqlite3

        db = sqlite3.connect(state)
        assert db.execute("SELECT COUNT(*), SUM(outcome = 'done') FROM attempts").fetchone() == (2, 2)
        w1.close()
        w2.close()
    finally:
        b.stop()
        t.join(10)


def test_a_failing_transaction_does_not_kill_the_broker(broker, tmp_path, monkeypatch):
    reply = submit(broker.endpoint, tmp_path, ["a"])
    real_lease = broker.store.lease
    calls = {"n": 0}

    def flaky_lease(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full (simulated)")
        return real_lease(*args, **kwargs)

    monkeypatch.setattr(broker.store, "lease", flaky_lease)
    w = Peer(broker.endpoint)
    w.ready("w1")
    task = w.recv()
    assert task["type"] == "RECONNECT"  # the READY was rolled back with the lease: register again
    w.ready("w1")
    task = w.recv()
    assert task["type"] == "TASK"
    w.send("RESULT", task_id=task["task_id"], attempt_id=task["attempt_id"], ok=True, result=TWO_VIEWS,
           **rendered(task))
    assert w.recv(skip=("HEARTBEAT", "RECONNECT"))["type"] == "ACK"
    time.sleep(0.3)
    assert status(broker.endpoint, reply["job_id"])["jobs"][0]["render"] == {"done": 1}
    w.close()


def test_the_broker_installs_an_accepted_attempt_and_nothing_else(broker, tmp_path):
    """Object folders are the broker's: the current attempt's files are moved in by name (a user's
    files stay), a success without files is failed, a stale attempt's files never land."""
    out = tmp_path / "out"
    reply = submit(broker.endpoint, out, ["a"], max_attempts=3)
    obj = out / "views" / "a"
    obj.mkdir(parents=True)
    (obj / "keep.png").write_bytes(b"mine")
    (obj / ".keep").write_bytes(b"mine too")
    w1 = Peer(broker.endpoint)
    w1.ready("w1")
    t1 = w1.recv()
    w1.send("RESULT", task_id=t1["task_id"], attempt_id=t1["attempt_id"], ok=True, result=TWO_VIEWS, files=[])
    assert w1.recv()["type"] == "ACK"  # "done" with nothing to show: failed, attempt spent
    t2 = w1.recv()
    assert t2["type"] == "TASK" and t2["task_id"] == t1["task_id"]
    w1.send("RESULT", task_id=t2["task_id"], attempt_id=t2["attempt_id"], ok=True, result=TWO_VIEWS,
            **rendered(t2))
    assert w1.recv()["type"] == "ACK"
    time.sleep(0.3)
    assert status(broker.endpoint, reply["job_id"])["jobs"][0]["render"] == {"done": 1}
    assert sorted(p.name for p in obj.iterdir()) == [".keep", "000.png", "001.png", "keep.png", "transforms.json"]
    assert (obj / "000.png").read_bytes() == f"000.png of attempt {t2['attempt_id']}".encode()
    assert (obj / "keep.png").read_bytes() == b"mine" and (obj / ".keep").read_bytes() == b"mine too"
    # a late finisher of the first attempt reports success: acknowledged, nothing of it lands
    w1.send("RESULT", task_id=t1["task_id"], attempt_id=t1["attempt_id"], ok=True, result=TWO_VIEWS,
            **rendered(t1))
    assert w1.recv()["type"] == "ACK"
    assert (obj / "000.png").read_bytes() == f"000.png of attempt {t2['attempt_id']}".encode()
    with sqlite3.connect(broker.state_path) as db:
        errors = [r[0] for r in db.execute("SELECT error FROM attempts WHERE attempt_id = ?", (t1["attempt_id"],))]
    assert errors == ["the worker reported success but its attempt produced no image"]
    w1.close()
