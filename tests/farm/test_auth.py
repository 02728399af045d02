"""Only the farm's own files, only from authorised peers (issue 11 section 3). Real `farm broker`
processes; the other local account is a real one (useradd), so that test needs root."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from blender_addon.contract import wire
from blender_addon.contract.peer_auth import curve_client_options, token_file
from farm.client import Client, ClientError
from farm.keys import create_keys

from .conftest import REPO, farm, free_port, spawn, stop, wait_for
from .test_broker import Peer
from .test_door import BrokerProcess

SYSTEM_PYTHON = Path("/usr/bin/python3")  # the venv's interpreter lies under /root, which others cannot enter


@pytest.fixture
def other_user():
    """A second local account, created for the test and removed after it."""
    if os.geteuid() != 0:
        pytest.skip("creating a second local account needs root")
    missing = [t for t in ("useradd", "userdel", "runuser") if not shutil.which(t)]
    if missing or not SYSTEM_PYTHON.exists():
        pytest.skip(f"needs useradd, userdel, runuser and {SYSTEM_PYTHON} (missing: {missing})")
    name = f"farmt{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def as_user(user: str, *args: str) -> subprocess.CompletedProcess:
    """Python as `user`, with the farm's code and packages readable to it, and a home of its own."""
    site = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(str(REPO)))
    env = ["env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent", f"PYTHONPATH={REPO}:{site}"]
    return subprocess.run(["runuser", "-u", user, "--", *env, str(SYSTEM_PYTHON), *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd="/")


RAW_STATUS = """
import sys, zmq
s = zmq.Context().socket(zmq.DEALER)
s.linger = 0
if sys.argv[2]:
    s.plain_username, s.plain_password = b"client", sys.argv[2].encode()
s.connect(sys.argv[1])
s.send(b'{"v": 1, "type": "STATUS"}')
print("answered" if s.poll(2000) else "refused")
"""


def test_another_local_account_is_refused(tmp_path, other_user, glb_dir):
    b = BrokerProcess(tmp_path)
    try:
        # this user's clients find the token by themselves
        r = farm("status", "--connect", b.addr)
        assert r.returncode == 0, r.stderr
        token = token_file(b.addr)
        assert stat.S_IMODE(token.stat().st_mode) == 0o600 and stat.S_IMODE(token.parent.stat().st_mode) == 0o700
        # the other account: the farm CLI is refused, and so are raw sockets without or with a guessed token
        r = as_user(other_user, "-m", "farm", "submit", glb_dir / "Box.glb", "-o", tmp_path / "theirs",
                    "--connect", b.addr, "--reply-timeout", "2", "--views", "2")
        assert r.returncode == 1 and "no farm token" in r.stderr, (r.returncode, r.stdout, r.stderr)
        r = as_user(other_user, "-m", "farm", "status", "--connect", b.addr, "--reply-timeout", "2")
        assert r.returncode == 1 and tmp_path.name not in r.stdout, (r.stdout, r.stderr)
        for guess in ("", "guessed-token"):
            r = as_user(other_user, "-c", RAW_STATUS, b.addr, guess)
            assert r.stdout.strip() == "refused", (r.stdout, r.stderr)
        assert b.answers()["jobs"] == []
        time.sleep(0.3)
        log = b.log_text()
        assert "refused a PLAIN peer from 127.0.0.1: wrong farm token" in log and "the handshake failed" in log
    finally:
        stop(b.proc)


def test_out_root_confines_submits(tmp_path, glb_dir):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere)
    b = BrokerProcess(tmp_path, "--out-root", root)
    try:
        def submit(out):
            return farm("submit", glb_dir / "Box.glb", "-o", out, "--views", "2", "--connect", b.addr)

        for out in ("/etc", "/", elsewhere / "out", root / "link" / "out", root / ".." / "elsewhere"):
            r = submit(out)
            assert r.returncode == 2 and "not under this broker's --out-root" in r.stderr, (out, r.stderr)
        r = submit(root / "out")
        assert r.returncode == 0, r.stderr
        assert [j["out_root"] for j in b.answers()["jobs"]] == [str(root / "out")]
    finally:
        stop(b.proc)


def test_a_broker_without_out_root_refuses_every_submit(tmp_path, glb_dir):
    addr = f"tcp://127.0.0.1:{free_port()}"
    broker = spawn("broker", "--bind", addr, "--state", tmp_path / "s.sqlite", log=tmp_path / "b.log")
    try:
        wait_for(lambda: farm("status", "--connect", addr, "--reply-timeout", "1").returncode == 0, 30,
                 what="the broker")
        r = farm("submit", glb_dir / "Box.glb", "-o", tmp_path / "out", "--views", "2", "--connect", addr)
        assert r.returncode == 2 and "start it with --out-root DIR" in r.stderr, r.stderr
        assert "no --out-root: every SUBMIT is refused" in (tmp_path / "b.log").read_text()
    finally:
        stop(broker)


def test_a_public_bind_needs_keys_or_insecure(tmp_path):
    public = f"tcp://0.0.0.0:{free_port()}"
    r = farm("broker", "--bind", public, "--state", tmp_path / "s.sqlite", timeout=30)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: --bind tcp://0.0.0.0")
    assert "--curve-keys" in r.stderr and "--insecure" in r.stderr
    port = public.rsplit(":", 1)[1]
    broker = spawn("broker", "--bind", public, "--state", tmp_path / "s.sqlite", "--insecure", "--out-root", tmp_path)
    try:  # open to all: no token needed (none is published)
        wait_for(lambda: farm("status", "--connect", f"tcp://127.0.0.1:{port}", "--reply-timeout", "1").returncode == 0,
                 30, what="the open broker")
        assert not token_file(f"tcp://127.0.0.1:{port}").exists()
    finally:
        stop(broker)


def test_curve_workers_are_known_by_their_key(tmp_path, glb_dir):
    keys = tmp_path / "keys"
    for name in ("wa", "wb", "submitter"):
        create_keys(keys, name)
    b = BrokerProcess(tmp_path, "--curve-keys", keys, client={"curve_keys": keys, "key_name": "submitter"})
    try:
        r = farm("submit", glb_dir / "Box.glb", glb_dir / "Duck.glb", "-o", tmp_path / "out", "--views", "2",
                 "--max-attempts", "1", "--connect", b.addr, "--curve-keys", keys, "--key-name", "submitter")
        assert r.returncode == 0, r.stderr
        a = Peer(b.addr, security=curve_client_options(keys, "wa"))
        a.ready("w1")
        task_a = a.recv()
        # another key claims the same worker name: it is another worker, and a's task stays a's
        impostor = Peer(b.addr, security=curve_client_options(keys, "wb"))
        impostor.ready("w1")
        task_b = impostor.recv()
        assert task_a["type"] == task_b["type"] == "TASK" and task_a["task_id"] != task_b["task_id"]
        key_a = {"task_id": task_a["task_id"], "attempt_id": task_a["attempt_id"]}
        impostor.send("RESULT", **key_a, ok=False, error="forged", error_kind="asset")
        assert impostor.recv()["type"] == "ACK"  # acknowledged and ignored: not its lease
        a.send("RESULT", **key_a, ok=False, error="a's own report", error_kind="asset")
        assert a.recv()["type"] == "ACK"
        status = b.answers()
        assert sorted(w["worker"] for w in status["workers"]) == ["wa:w1", "wb:w1"]
        assert status["jobs"][0]["render"] == {"failed": 1, "leased": 1}
        with Client(b.addr, timeout_s=5, **b.client) as c:
            failures = c.status(status["jobs"][0]["job_id"])["jobs"][0]["failures"]
        assert [f["error"] for f in failures] == ["a's own report"]
        # a key authorised while the broker runs gets in; unknown keys and no keys are refused and logged
        create_keys(keys, "late")
        late = Peer(b.addr, security=curve_client_options(keys, "late"))
        late.send("STATUS")
        assert late.recv()["type"] == "STATUS_REPLY"
        create_keys(tmp_path / "foreign", "stranger")
        stranger_opts = curve_client_options(tmp_path / "foreign", "stranger")
        stranger_opts[zmq.CURVE_SERVERKEY] = curve_client_options(keys, "wa")[zmq.CURVE_SERVERKEY]
        for security in (stranger_opts, {}):
            p = Peer(b.addr, security=security)
            p.send("STATUS")
            assert p.recv(timeout=1.5) is None
            p.close()
        # the CLI's client says so at once, not after its reply timeout
        shutil.copyfile(keys / "broker.key", tmp_path / "foreign" / "broker.key")
        for kwargs, refused in (({"curve_keys": tmp_path / "foreign", "key_name": "stranger"},
                                 "refused this client's key (--curve-keys: is stranger.key in the broker's "
                                 "authorized/ folder?)"),
                                ({}, "refused this client's handshake (another security mechanism")):
            t0 = time.monotonic()
            with pytest.raises(ClientError, match=re.escape(f"the broker at {b.addr} {refused}")):
                with Client(b.addr, timeout_s=5, **kwargs) as c:
                    c.status()
            assert time.monotonic() - t0 < 2
        log = b.log_text()
        assert "refused a CURVE peer from 127.0.0.1: key" in log and "is not authorized" in log
        assert "the handshake failed" in log
        for p in (a, impostor, late):
            p.close()
    finally:
        stop(b.proc)


def test_secret_key_files_are_private_from_the_start(tmp_path):
    keys = tmp_path / "keys"
    r = subprocess.run([sys.executable, "-m", "farm", "keys", str(keys), "--name", "gpu1"], capture_output=True,
                       text=True, cwd=REPO, preexec_fn=lambda: os.umask(0), timeout=60)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in ("broker", "gpu1"):
        assert stat.S_IMODE((keys / f"{name}.key_secret").stat().st_mode) == 0o600
        assert stat.S_IMODE((keys / f"{name}.key").stat().st_mode) == 0o644
    assert (keys / "authorized" / "gpu1.key").read_text() == (keys / "gpu1.key").read_text()
    r = farm("keys", keys, "--name", "broker")
    assert r.returncode == 2 and r.stderr.startswith("error: key name 'broker' is not allowed")


@pytest.mark.slow  # 15000 files and objects: about 10 s on a quiet machine
def test_the_addon_submits_a_long_list_in_chunks_with_the_local_token(tmp_path):
    pytest.importorskip("bpy")  # blender_addon.ui imports bpy
    from blender_addon.ui import farm_link

    assets = tmp_path / "assets"
    assets.mkdir()
    n = 15000  # with long names; about 40000 with short ones
    for i in range(n):
        (assets / f"{i:06d}-{'a-long-asset-name-' * 8}.obj").touch()
    job = {"out_root": str(tmp_path / "out"), "name": "blender", "spec": {}, "caption": False}
    one_frame = wire.to_frame(wire.message("SUBMIT", job=job, assets=farm_link.folder_assets([assets])))
    assert len(one_frame) > wire.MAX_MESSAGE_BYTES  # as one message it would be dropped
    b = BrokerProcess(tmp_path)
    try:
        auth = farm_link.peer(b.addr)  # no key folder: the token of this user's local broker
        reply = farm_link.submit(auth, {"camera": {"num_views": 2}}, [assets], tmp_path / "out")
        assert (reply["objects"], reply["queued"]) == (n, n)
        poller = farm_link.StatusPoller(auth, reply["job_id"])
        job = wait_for(lambda: poller.poll(time.time()), 20, what="a STATUS_REPLY")
        assert job["render"] == {"queued": n}
        poller.close()
    finally:
        stop(b.proc)
