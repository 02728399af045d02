"""The render child: a process that keeps bpy loaded and runs one task at a time for its worker.

It talks to its parent (farm/worker.py) over a multiprocessing pipe with JSON bytes, never pickle:
  parent -> child  {"task": {...TASK fields...}, "out_dir": "..."}
  child -> parent  {"ready": pid} once, then per task {"progress": [done, total]}...,
                   and {"result": {...}} or {"error": "...", "kind": "asset" | "worker"}

It dies with its parent (PR_SET_PDEATHSIG), ignores Ctrl-C (the parent decides), and the parent
kills it on timeout, recycles it after --max-tasks or above the memory ceiling.

Test-only hooks (environment variables, read per task; never set them in production):
  MVCAP_TEST_HANG_UID=uid[,uid]   the render of these uids sleeps forever (exercises the timeout)
  MVCAP_TEST_CRASH_UID=uid[,uid]  the child exits abruptly on these uids (exercises crash handling)
  MVCAP_TEST_FAIL_ALL=1           every task fails with a worker error (a broken machine; blocklist)
  MVCAP_TEST_DELAY_S=seconds      sleep this long after each rendered view (a slow render to kill)
  MVCAP_TEST_FAKE_RENDER=1        write placeholder PNGs instead of rendering (protocol tests only)
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import traceback

from blender_addon.rig.errors import one_line


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipe's EOF still ends us between tasks
        pass


def _listed(var: str, uid: str) -> bool:
    value = os.environ.get(var, "")
    return bool(value) and uid in [v.strip() for v in value.split(",")]


def _fake_render(task: dict, out_dir: str, progress) -> dict:
    from PIL import Image

    from blender_addon.rig.fileio import atomic_write_bytes, atomic_write_json

    import io

    views = int((task.get("spec") or {}).get("camera", {}).get("num_views", 4))
    res = int((task.get("spec") or {}).get("render", {}).get("resolution_x", 16))
    files = []
    for i in range(views):
        buf = io.BytesIO()
        Image.new("RGBA", (res, res), (200, 100, 50, 255)).save(buf, "PNG")
        atomic_write_bytes(os.path.join(out_dir, f"{i:03d}.png"), buf.getvalue())
        files.append(f"{i:03d}.png")
        progress(i + 1, views)
    atomic_write_json(os.path.join(out_dir, "transforms.json"), {"frames": [{"file_path": f} for f in files]})
    return {"uid": task["asset"]["uid"], "views": views, "files": files + ["transforms.json"],
            "missing_textures": [], "quality": [], "normalization": {}, "timings": {}}


def run_task(task: dict, out_dir: str, device: str, progress) -> dict:
    uid = task["asset"]["uid"]
    if os.environ.get("MVCAP_TEST_FAIL_ALL"):
        raise RuntimeError("MVCAP_TEST_FAIL_ALL is set: this worker fails every task (test hook)")
    if _listed("MVCAP_TEST_CRASH_UID", uid):
        os._exit(70)
    if _listed("MVCAP_TEST_HANG_UID", uid):
        while True:
            time.sleep(3600)
    os.makedirs(out_dir, exist_ok=True)
    delay = float(os.environ.get("MVCAP_TEST_DELAY_S") or 0)
    if delay > 0:
        report = progress

        def progress(done: int, total: int) -> None:
            report(done, total)
            time.sleep(delay)

    kind = task["kind"]
    if kind == "mvimgnet":
        from farm.sources.mvimgnet import sample_task

        return sample_task(task["asset"], out_dir, task.get("options") or {})
    if kind != "render":
        raise RuntimeError(f"unknown task kind {kind!r}")
    if os.environ.get("MVCAP_TEST_FAKE_RENDER"):
        return _fake_render(task, out_dir, progress)
    from blender_addon.rig.spec import spec_from_dict
    from blender_addon.scene.render import render_asset

    spec = spec_from_dict(task["spec"])
    result = render_asset(task["asset"]["path"], spec, out_dir, uid, device=device, progress=progress)
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def child_main(conn, device: str) -> None:
    """Entry point of the spawned child process."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def send(obj: dict) -> None:
        conn.send_bytes(json.dumps(obj).encode())

    if not os.environ.get("MVCAP_TEST_FAKE_RENDER"):
        try:  # warm up: bpy and the scene code stay loaded for every task this child runs
            import blender_addon.scene.render  # noqa: F401
        except ImportError as exc:
            print(f"render child: cannot import the scene code yet: {exc}", file=sys.stderr)
    try:
        from blender_addon.scene.errors import AssetError
    except ImportError:
        AssetError = ValueError  # type: ignore[misc,assignment]
    send({"ready": os.getpid()})
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        msg = json.loads(raw)
        if msg.get("exit"):
            return
        task = msg["task"]

        def progress(done: int, total: int) -> None:
            send({"progress": [int(done), int(total)]})

        try:
            result = run_task(task, msg["out_dir"], device, progress)
            send({"result": json.loads(json.dumps(result, default=str))})
        except AssetError as exc:
            send({"error": one_line(exc, 500), "kind": "asset"})
        except Exception as exc:  # noqa: BLE001 - anything else is reported, not fatal
            traceback.print_exc()
            send({"error": one_line(f"{type(exc).__name__}: {exc}", 500), "kind": "worker"})


