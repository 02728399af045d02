"""The render child: a process that keeps bpy loaded and runs one task at a time for its worker.

It talks to its parent (farm/worker.py) over a multiprocessing pipe with JSON bytes, never pickle:
  parent -> child  {"task": {...TASK fields...}, "out_dir": "..."}
  child -> parent  {"ready": pid} once, then per task {"progress": [done, total]}...,
                   and {"result": {...}} or {"error": "...", "kind": "asset" | "worker"}

It dies with its parent (PR_SET_PDEATHSIG), ignores Ctrl-C (the parent decides), and the parent
kills it on timeout, recycles it after --max-tasks or above the memory ceiling.

`child_main` is the entry point the worker spawns by default (Worker's `child_target`); it runs
each task with `run_task` unless it is handed another function of the same shape.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import traceback
from typing import Callable

from blender_addon.rig.errors import one_line
from blender_addon.scene.errors import AssetError
from farm.sources import RENDER, task_source

Progress = Callable[[int, int], None]
TaskRunner = Callable[[dict, str, str, Progress], dict]


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipe's EOF still ends us between tasks
        pass


def run_task(task: dict, out_dir: str, device: str, progress: Progress) -> dict:
    """Run one task into out_dir; its result dict, or AssetError when the asset is at fault."""
    os.makedirs(out_dir, exist_ok=True)
    if task["kind"] != RENDER:  # a source's own task (mvimgnet frame sampling, plugins)
        return task_source(task["kind"]).run_task(task["asset"], out_dir, task.get("options") or {}, progress)
    from blender_addon.rig.spec import spec_from_dict
    from blender_addon.scene.render import render_asset

    spec = spec_from_dict(task["spec"])
    result = render_asset(task["asset"]["path"], spec, out_dir, task["asset"]["uid"], device=device,
                          progress=progress)
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def child_main(conn, device: str, run: TaskRunner = run_task) -> None:
    """Entry point of the spawned child process: answers each task sent over `conn` with `run`."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def send(obj: dict) -> None:
        conn.send_bytes(json.dumps(obj).encode())

    try:  # warm up: bpy and the scene code stay loaded for every task this child runs
        import blender_addon.scene.render  # noqa: F401
    except ImportError as exc:
        print(f"render child: cannot import the scene code yet: {exc}", file=sys.stderr)
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
            result = run(task, msg["out_dir"], device, progress)
            send({"result": json.loads(json.dumps(result, default=str))})
        except AssetError as exc:
            send({"error": one_line(exc, 500), "kind": "asset"})
        except Exception as exc:  # noqa: BLE001 - anything else is reported, not fatal
            traceback.print_exc()
            send({"error": one_line(f"{type(exc).__name__}: {exc}", 500), "kind": "worker"})
