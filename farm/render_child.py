"""The worker's render child, seen from the worker: a spawned process (farm/worker_child.py) that
keeps bpy loaded across tasks, spoken to with JSON over a pipe, killed and restarted at will.

Also the clean-up of what a killed render may leave in an object folder.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Callable

from .worker_child import child_main

log = logging.getLogger("farm.worker")

RENDER_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".tmp", ".part")
MARKERS = ("transforms.json", "frames.json")  # an object folder's completion markers (written last)


def read_rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (0 when unknown)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def clean_partial(out_dir: Path) -> None:
    """Remove what a killed render may have left in an object folder: temporary files, views and
    the completion marker of an unfinished attempt. Captions and anything else stay."""
    if not out_dir.is_dir():
        return
    for f in out_dir.iterdir():
        if f.is_file() and (f.name.startswith(".") or f.suffix.lower() in RENDER_SUFFIXES
                            or f.name in MARKERS):
            try:
                f.unlink()
            except OSError:
                pass
    try:
        out_dir.rmdir()  # only when empty
    except OSError:
        pass


class RenderChild:
    """The supervised child process."""

    def __init__(self, device: str, env: dict | None = None, target: Callable = child_main):
        self.device = device
        self.env = env or {}
        self.target = target  # called in the child as target(conn, device)
        self.proc = None
        self.conn = None
        self.tasks = 0
        self.ready = False

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            self.proc = ctx.Process(target=self.target, args=(child_conn, self.device), daemon=True,
                                    name="farm-render-child")
            self.proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child_conn.close()
        self.conn = parent_conn
        self.tasks = 0
        self.ready = False
        log.info("render child started (pid %s)", self.proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def fileno(self) -> int:
        return self.conn.fileno()

    def send(self, obj: dict) -> None:
        self.conn.send_bytes(json.dumps(obj).encode())

    def recv(self) -> dict | None:
        """One message, or None when the child is gone."""
        try:
            return json.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            return None

    def rss_mb(self) -> float:
        return read_rss_mb(self.proc.pid) if self.proc else 0.0

    def stop(self, graceful: bool = True) -> None:
        if self.proc is None:
            return
        if graceful and self.proc.is_alive():
            try:
                self.send({"exit": True})
            except OSError:
                pass
            self.proc.join(2)  # short: the worker's heartbeats wait meanwhile
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        try:
            self.conn.close()
        except OSError:
            pass
        self.proc = None
        self.conn = None
