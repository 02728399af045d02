"""The render child: a process that keeps bpy loaded and runs one task at a time for its worker.

It talks to its parent (farm/worker.py) over a multiprocessing pipe with JSON bytes, never pickle:
  parent -> child  {"task": {...TASK fields...}, "out_dir": "..."}
  child -> parent  {"ready": pid} once, then per task {"progress": [done, total]}...,
                   and {"result": {...}} or {"error": "...", "kind": "asset" | "worker" | "env"}

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
from blender_addon.scene.errors import AssetError, RenderFault
from farm import environment
from farm.gpus import THREADS_ENV, gpu_model
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
    use_threads(os.environ.get(THREADS_ENV))
    result = render_asset(task["asset"]["path"], spec, out_dir, task["asset"]["uid"], device=device,
                          progress=progress, first_view=int(task.get("first_view") or 0))
    return {**result.to_dict(), "device": device_record(result.device)}


def use_threads(threads: str | None) -> None:
    """The Cycles CPU threads the worker gave this child (the scene keeps them across tasks)."""
    import bpy

    render = bpy.context.scene.render
    render.threads_mode = "FIXED" if threads else "AUTO"
    if threads:
        render.threads = int(threads)


def device_record(backend: str) -> dict:
    """What rendered an object, for objects.jsonl: the backend and, on a GPU, its model."""
    gpu = None if backend == "CPU" else gpu_model(os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0])
    return {"backend": backend, "gpu": gpu}


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
        except Exception as exc:  # noqa: BLE001 - reported with its kind, never fatal
            send(failure_report(exc))


def failure_report(exc: Exception) -> dict:
    """{"error", "kind"} for a failed task: `env` (a full disk, too many open files...: named as
    such, whatever raised it), `asset` (AssetError: the asset's own verdict) or `worker` (a render
    fault or any other exception: blamed by evidence, farm/store/blocklist.py)."""
    env = environment.error_of(exc)
    if env is not None:
        return {"error": one_line(env, 500), "kind": "env"}
    if isinstance(exc, AssetError):
        return {"error": one_line(exc, 500), "kind": "asset"}
    if not isinstance(exc, RenderFault):
        traceback.print_exc()
    return {"error": one_line(f"{type(exc).__name__}: {exc}", 500), "kind": "worker"}
