"""Submitting from the panel to a farm that admits CurveZMQ keys only (`farm broker --curve-keys`):
the panel's Farm > Keys and Key Name fields get a job rendered by a real broker and worker, and a
missing, foreign or incomplete key folder is a one-line error in the panel's words, never a hang."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from contextlib import contextmanager

import pytest

from blender_addon.ui import ops_farm
from farm.client import Client
from farm.keys import create_keys

from .conftest import farm_cli, free_port

pytestmark = pytest.mark.slow


def _small(s):
    s.camera.num_views = 2
    s.render.resolution_x = s.render.resolution_y = 16
    s.render.samples = 1


def _pump(s, timeout):
    """What bpy.app.timers does in a GUI session: call the timer until it stops."""
    deadline = time.monotonic() + timeout
    while ops_farm.is_watching() and time.monotonic() < deadline:
        ops_farm.poll_farm()
        time.sleep(0.05)


@contextmanager
def _running(cmd, log):
    """A `farm` command in the background (its output in `log`), terminated afterwards."""
    with open(log, "w") as out:
        proc = subprocess.Popen(farm_cli() + cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def curve_farm(tmp_path, monkeypatch):
    """A real `farm broker --curve-keys KEYS` on loopback (CURVE is used on any bind once keys are
    given: the broker then publishes no local token) with a key pair for the artist and one for a
    worker. Yields (endpoint, KEYS, broker log)."""
    if farm_cli() is None:
        pytest.fail("the farm CLI is missing")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))  # no token of another broker is found
    keys = tmp_path / "keys"
    for name in ("artist", "gpu1"):
        create_keys(keys, name)
    endpoint, log = f"tcp://127.0.0.1:{free_port()}", tmp_path / "broker.log"
    cmd = ["broker", "--bind", endpoint, "--state", str(tmp_path / "farm.sqlite"), "--out-root", str(tmp_path),
           "--curve-keys", str(keys)]
    with _running(cmd, log) as broker:
        deadline = time.monotonic() + 60
        while "broker listening on" not in log.read_text() and time.monotonic() < deadline:
            assert broker.poll() is None, log.read_text()
            time.sleep(0.1)
        assert "broker listening on" in log.read_text(), log.read_text()
        yield endpoint, keys, log


def _prepare(bpy, glb_dir, tmp_path, endpoint):
    s = bpy.context.scene.mvcap
    _small(s)
    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb")) == {"FINISHED"}
    s.farm_address, s.farm_output = endpoint, str(tmp_path / "out")
    return s


def _refused(bpy, s):
    """The one-line error of a submit that fails, and how long it took."""
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        bpy.ops.mvcap.submit()
    elapsed = time.monotonic() - t0
    assert not ops_farm.is_watching() and s.job_id == ""
    message = str(info.value).strip().removeprefix("Error: ")  # Blender's report, as the panel shows it
    assert "\n" not in message and "Traceback" not in message, message
    return message, elapsed


def test_keys_in_the_panel_get_a_job_rendered(addon, glb_dir, tmp_path, curve_farm):
    bpy = addon
    endpoint, keys, log = curve_farm
    s = _prepare(bpy, glb_dir, tmp_path, endpoint)
    s.farm_keys, s.farm_key_name = str(keys), "artist"
    worker = ["worker", "--connect", endpoint, "--curve-keys", str(keys), "--key-name", "gpu1", "--name", "w"]
    with _running(worker, tmp_path / "worker.log"):
        assert bpy.ops.mvcap.submit() == {"FINISHED"}
        assert s.job_id and ops_farm.is_watching()
        _pump(s, 300)
        with Client(endpoint, curve_keys=keys, key_name="artist", timeout_s=5) as client:
            workers = [w["worker"] for w in client.status()["workers"]]
    assert workers == ["gpu1:w"]  # the broker knows the worker by its key's name: CURVE, not a token
    assert s.job_state == "done", (s.job_message, (tmp_path / "worker.log").read_text()[-2000:])
    assert (s.job_done, s.job_total, s.job_progress, s.job_views_done) == (1, 1, 100.0, 2)
    views = tmp_path / "out" / "views" / "Duck"
    assert len(json.loads((views / "transforms.json").read_text())["frames"]) == 2
    assert len(list(views.glob("*.png"))) == 2
    assert "refused" not in log.read_text()


def test_no_keys_is_refused_at_once(addon, glb_dir, tmp_path, curve_farm):
    bpy = addon
    endpoint, _keys, log = curve_farm
    s = _prepare(bpy, glb_dir, tmp_path, endpoint)
    message, elapsed = _refused(bpy, s)
    assert elapsed < 2  # the failed handshake is reported at once, not after SUBMIT_TIMEOUT_S
    assert f"farm at {endpoint} refused this client's handshake (another security mechanism" in message
    assert "; a broker with --curve-keys needs keys (Farm > Keys), and another user's refuses this client " \
           "(no farm token at " in message, message
    time.sleep(0.5)  # the broker logs the handshake that failed
    assert "the handshake failed" in log.read_text()


def test_a_key_the_farm_does_not_know_is_refused_at_once(addon, glb_dir, tmp_path, curve_farm):
    bpy = addon
    endpoint, keys, log = curve_farm
    foreign = tmp_path / "foreign"
    create_keys(foreign, "stranger")
    shutil.copyfile(keys / "broker.key", foreign / "broker.key")  # it knows the farm; the farm does not know it
    s = _prepare(bpy, glb_dir, tmp_path, endpoint)
    s.farm_keys, s.farm_key_name = str(foreign), "stranger"
    message, elapsed = _refused(bpy, s)
    assert elapsed < 2  # the broker's refusal is reported at once, not after SUBMIT_TIMEOUT_S
    assert message == (f"farm at {endpoint} refused this client's key "
                       "(Farm > Keys: is stranger.key in the broker's authorized/ folder?)"), message
    time.sleep(0.5)
    assert "refused a CURVE peer from 127.0.0.1: key" in log.read_text()


def test_a_key_folder_without_the_secret_names_the_panel_field(addon, glb_dir, tmp_path, curve_farm):
    bpy = addon
    endpoint, keys, _log = curve_farm
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("broker.key", "artist.key"):  # the public halves only
        shutil.copyfile(keys / name, partial / name)
    s = _prepare(bpy, glb_dir, tmp_path, endpoint)
    s.farm_keys, s.farm_key_name = str(partial), "artist"
    message, elapsed = _refused(bpy, s)
    assert elapsed < 2  # nothing is sent: the keys are read first
    assert message == f"Farm > Keys: {partial}/artist.key_secret is missing; create keys with `farm keys DIR`"
