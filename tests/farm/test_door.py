"""One message never kills a process (issue 11 section 4): everything is checked at the door, what
got stored anyway fails its task with a reason, and start-up problems are one line. Real `farm
broker` and `farm worker` processes; the test is a local client of the same user (the token)."""
from __future__ import annotations

import base64
import json
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from farm.client import Client, Refused
from farm.store import Store

from .conftest import farm, free_port, spawn, stop, wait_for
from .test_broker import SPEC, TWO_VIEWS, Peer

HB = "0.3"


class BrokerProcess:
    """A `farm broker` on a free port (OUT roots: `tmp`, unless `extra` names others), its log, and
    a way to ask it things (`client`: the Client's keyword arguments, e.g. its keys)."""

    def __init__(self, tmp: Path, *extra: str, state: Path | None = None, client: dict | None = None):
        self.addr = f"tcp://127.0.0.1:{free_port()}"
        self.state = state or tmp / "state.sqlite"
        self.log = tmp / f"broker-{self.addr.rsplit(':', 1)[1]}.log"
        self.out = tmp / "out"
        self.client = client or {}
        roots = () if "--out-root" in extra else ("--out-root", tmp)
        self.proc = spawn("broker", "--bind", self.addr, "--state", self.state, "--heartbeat", HB,
                          *roots, *extra, log=self.log)
        wait_for(self.answers, 30, what="the broker")

    def answers(self) -> dict | None:
        try:
            with Client(self.addr, timeout_s=1, **self.client) as c:
                return c.status()
        except Exception:  # noqa: BLE001 - not up yet
            return None

    def alive(self) -> bool:
        return self.proc.poll() is None and self.answers() is not None

    def submit(self, job: dict, assets: list[dict]) -> dict:
        with Client(self.addr, timeout_s=10, **self.client) as c:
            return c.submit({"name": "t", "out_root": str(self.out), "spec": SPEC, **job}, assets)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def asset(uid: str, **over) -> dict:
    return {"uid": uid, "path": f"/nowhere/{uid}.glb", "category": "thing", "source": "folder",
            "out_rel": f"views/{uid}", **over}


@pytest.fixture
def broker(tmp_path):
    b = BrokerProcess(tmp_path)
    yield b
    stop(b.proc)


BAD_SUBMITS = {
    "NUL in OUT": ({"out_root": "/tmp/out\x00side"}, [asset("a")], "NUL"),
    "300-character out_rel part": ({}, [asset("a", out_rel="views/" + "x" * 300)], "300 bytes long"),
    "300-character uid folder": ({}, [{**asset("y" * 300), "path": "/nowhere/y.glb"}], "300 bytes long"),
    "NUL in the asset path": ({}, [asset("a", path="/a\x00b.glb")], "NUL"),
    "NUL in the uid": ({}, [{**asset("a"), "uid": "a\x00b"}], "NUL"),
    "not UTF-8": ({}, [{**asset("a"), "uid": "a\udc80"}], "UTF-8"),
    "control character in OUT": ({"out_root": "/tmp/a\nb"}, [asset("a")], "control"),
    "OUT part over 255 bytes": ({"out_root": "/tmp/" + "o" * 256}, [asset("a")], "over 255 bytes"),
}


@pytest.mark.parametrize("case", list(BAD_SUBMITS))
def test_bad_paths_are_refused_at_the_door_and_the_broker_stays_up(broker, case):
    job, assets, reason = BAD_SUBMITS[case]
    with pytest.raises(Refused, match=reason):
        broker.submit(job, assets)
    time.sleep(0.5)  # the objects.jsonl export runs after the turn: it killed the broker before
    assert broker.alive(), broker.log_text()[-2000:]
    assert broker.answers()["jobs"] == []  # nothing was stored


def test_a_bad_stored_row_fails_its_task_and_no_process_dies(tmp_path):
    """Rows stored before the door was checked (an older broker): the worker that leases one
    reports a failed task with the reason and carries on; CANCEL and exports leave the broker up."""
    state = tmp_path / "state.sqlite"
    store = Store(state)
    try:
        long = store.submit({"name": "long", "out_root": str(tmp_path / "out"), "views": 2, "timeout_s": 60,
                             "max_attempts": 1}, [asset("a", out_rel="views/" + "x" * 300)])
        nul = store.submit({"name": "nul", "out_root": str(tmp_path / "o\x00ut"), "views": 2, "timeout_s": 60,
                            "max_attempts": 1}, [asset("b")])
    finally:
        store.close()
    b = BrokerProcess(tmp_path, state=state)
    worker = spawn("worker", "--connect", b.addr, "--name", "w1", "--heartbeat", HB, log=tmp_path / "w1.log")
    try:
        def failed(job_id):
            job = b.answers()["jobs"]
            job = next(j for j in job if j["job_id"] == job_id)
            return job if job["render"] == {"failed": 1} else None

        for job_id in (long["job_id"], nul["job_id"]):
            job = wait_for(lambda: failed(job_id), 60, what=f"job {job_id} to fail")
            with Client(b.addr, timeout_s=5) as c:
                failures = c.status(job_id)["jobs"][0]["failures"]
            assert "cannot use the output folder" in failures[0]["error"], failures
        assert worker.poll() is None, (tmp_path / "w1.log").read_text()
        r = farm("cancel", nul["job_id"], "--connect", b.addr)
        assert r.returncode == 0, r.stderr
        time.sleep(0.5)
        assert b.alive(), b.log_text()[-2000:]
    finally:
        stop(worker)
        stop(b.proc)


def test_chunks_cannot_make_sparse_files_and_fsync_installs(tmp_path):
    b = BrokerProcess(tmp_path, "--fsync")
    try:
        b.submit({}, [asset("a")])
        w = Peer(b.addr)
        w.ready("remote", shared=False)
        task = w.recv()
        key = {"task_id": task["task_id"], "attempt_id": task["attempt_id"]}
        chunk = base64.b64encode(b"x" * 1024).decode()
        for i in range(50):  # 50 chunks far out: once 200 GiB of apparent files
            w.send("FILE_CHUNK", **key, name=f"{i:03d}.png", offset=4 * 1024**3 - 2048, data=chunk)
        w.send("FILE_CHUNK", **key, name="000.png", offset=0, data=chunk)
        w.send("FILE_CHUNK", **key, name="000.png", offset=1024, data=chunk)
        w.send("FILE_CHUNK", **key, name="transforms.json", offset=0, data=base64.b64encode(b"{}").decode())
        time.sleep(0.5)
        incoming = b.out / ".farm" / "incoming" / str(key["attempt_id"])
        apparent = sum(p.stat().st_size for p in incoming.iterdir())
        assert apparent <= 2048 + 2, sorted((p.name, p.stat().st_size) for p in incoming.iterdir())
        w.send("RESULT", **key, ok=True, result={"views": 1, "files": ["000.png", "transforms.json"]},
               files=[{"name": "000.png", "size": 2048}, {"name": "transforms.json", "size": 2}])
        assert w.recv()["type"] == "ACK"
        assert (b.out / "views/a/000.png").read_bytes() == b"x" * 2048
        assert "hole" in b.log_text()
        assert b.alive()
        w.close()
    finally:
        stop(b.proc)


def test_a_result_without_files_or_with_a_bad_result_is_a_failure_not_done(broker):
    reply = broker.submit({"max_attempts": 1}, [asset("a"), asset("b")])
    w = Peer(broker.addr)
    w.ready("w1")
    for result in ({"views": 2}, {"views": "two", "files": ["000.png"]}):
        task = w.recv()
        w.send("RESULT", task_id=task["task_id"], attempt_id=task["attempt_id"], ok=True, result=result)
        assert w.recv()["type"] == "ACK"  # recorded, so the worker may forget it (not dropped and resent forever)
    time.sleep(0.5)
    with Client(broker.addr, timeout_s=5) as c:
        job = c.status(reply["job_id"])["jobs"][0]
    assert job["render"] == {"failed": 2}
    errors = sorted(f["error"] for f in job["failures"])
    assert "produced no image" in errors[1] and "views are neither a count nor a list" in errors[0], errors
    w.close()


def test_a_result_is_acknowledged_only_after_its_commit(tmp_path, monkeypatch):
    """Recording a result fails: ERROR and no ACK, so the worker keeps it and sends it again."""
    from farm.broker import Broker

    b = Broker(tmp_path / "state.sqlite", "tcp://127.0.0.1:*", heartbeat_s=0.2, liveness=3, out_roots=[tmp_path])
    t = b.serve_in_thread()
    ep = b.wait_ready()
    try:
        with Client(ep, timeout_s=5) as c:
            reply = c.submit({"name": "t", "out_root": str(tmp_path / "out"), "spec": SPEC}, [asset("a")])
        w = Peer(ep)
        w.ready("w1")
        task = w.recv()
        real_on_result = b.tasks.on_result
        calls = {"n": 0}

        def failing_once(*args, **kwargs):
            calls["n"] += 1
            real_on_result(*args, **kwargs)  # its ACK is queued first, as before the fix
            if calls["n"] == 1:
                raise sqlite3.OperationalError("disk I/O error (simulated)")

        monkeypatch.setattr(b.tasks, "on_result", failing_once)
        key = {"task_id": task["task_id"], "attempt_id": task["attempt_id"]}
        w.send("RESULT", **key, ok=True, result=TWO_VIEWS)
        answer = w.recv(skip=("HEARTBEAT", "RECONNECT"))
        assert answer["type"] == "ERROR", answer
        with Client(ep, timeout_s=5) as c:
            assert c.status(reply["job_id"])["jobs"][0]["render"] == {"leased": 1}  # nothing was recorded
        w.send("RESULT", **key, ok=True, result=TWO_VIEWS)  # the outbox sends it again
        assert w.recv(skip=("HEARTBEAT", "RECONNECT"))["type"] == "ACK"
        time.sleep(0.3)
        with Client(ep, timeout_s=5) as c:
            assert "leased" not in c.status(reply["job_id"])["jobs"][0]["render"]
        w.close()
    finally:
        b.stop()
        t.join(10)


def test_an_empty_state_says_so_when_a_worker_reports_a_running_task(broker):
    w = Peer(broker.addr)
    w.ready("w1", running={"task_id": 7, "attempt_id": 9})
    assert w.recv() == {"v": 1, "type": "CANCEL_TASK", "task_id": 7, "attempt_id": 9}
    time.sleep(0.3)
    assert "runs task 7, which this state file does not know" in broker.log_text()
    w.close()


def one_line_error(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def broker_start(*args) -> str:
    return one_line_error(farm("broker", *args, timeout=60))


def test_start_up_errors_are_one_line(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("these are my notes, not a database\n" * 200)
    assert "not a farm state file" in broker_start("--state", text, "--bind", "tcp://127.0.0.1:*")
    # a real state, truncated
    real = tmp_path / "real.sqlite"
    s = Store(real)
    s.submit({"name": "t", "out_root": str(tmp_path / "o"), "views": 2, "timeout_s": 60},
             [asset(f"u{i}") for i in range(300)])
    s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    with open(real, "r+b") as fh:
        fh.truncate(os.path.getsize(real) // 3)
    assert "damaged" in broker_start("--state", real, "--bind", "tcp://127.0.0.1:*")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "in use" in broker_start("--state", tmp_path / "s1.sqlite", "--bind", f"tcp://127.0.0.1:{port}")
    for bad in ("tcp://127.0.0.1:notaport", "nonsense", "udp://127.0.0.1:5"):
        assert "cannot bind" in broker_start("--state", tmp_path / "s2.sqlite", "--bind", bad)


def test_a_second_broker_on_the_same_state_is_refused(broker, tmp_path):
    line = broker_start("--state", broker.state, "--bind", f"tcp://127.0.0.1:{free_port()}")
    assert f"pid {broker.proc.pid}" in line and "in use by another broker" in line
    assert broker.alive()
