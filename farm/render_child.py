"""The worker's render child, seen from the worker: a spawned process (farm/worker_child.py) that
keeps bpy loaded across tasks, spoken to with JSON over a pipe, killed and restarted at will.

Each child gets its own folder in the worker's scratch: its TMPDIR (Blender's `blender_*` session
folder and every temporary file land there, and go with the folder when the child is stopped) and
`output.log`, where its stdout and stderr go. The worker copies that log to its own stderr as it
grows and keeps the tail, so a crash is reported with the child's last words (an importer's
`std::out_of_range`, say) rather than an exit code alone.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Callable

from .worker_child import child_main

log = logging.getLogger("farm.worker")

LOG_NAME = "output.log"
LOG_ROTATE_BYTES = 16 * 1024 * 1024  # the child's log is emptied once copied past this size
TAIL_BYTES = 4096  # the child's last output kept for a crash report


def read_rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory (or another /proc status field in kB, e.g. VmHWM) of a process, in MB
    (0 when unknown)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return 0.0


def child_entry(target: Callable, folder: str, conn, device: str) -> None:
    """The spawned process: stdout and stderr into the child's log, then `target(conn, device)`."""
    fd = os.open(os.path.join(folder, LOG_NAME), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    target(conn, device)


def exit_description(code: int | None) -> str:
    """'signal SIGABRT' or 'exit code 70'."""
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class RenderChild:
    """The supervised child process. `scratch`: the worker's scratch folder (the child's own
    folder is made inside it and removed when the child stops)."""

    def __init__(self, device: str, env: dict | None = None, target: Callable = child_main,
                 scratch: Path | None = None):
        self.device = device
        self.env = env or {}
        self.target = target  # called in the child as target(conn, device)
        self.scratch = scratch
        self.proc = None
        self.conn = None
        self.folder: Path | None = None
        self.tasks = 0
        self.ready = False
        self.started = 0
        self.last_pid: int | None = None  # the latest child's pid, also once it is stopped
        self._log_offset = 0
        self.tail = b""

    def start(self) -> None:
        self.started += 1
        self.folder = Path(self.scratch or ".") / f"child-{os.getpid()}-{self.started}"
        shutil.rmtree(self.folder, ignore_errors=True)
        (self.folder / "tmp").mkdir(parents=True)
        self._log_offset = 0
        self.tail = b""
        env = {**self.env, "TMPDIR": str(self.folder / "tmp")}
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self.proc = ctx.Process(target=child_entry, args=(self.target, str(self.folder), child_conn, self.device),
                                    daemon=True, name="farm-render-child")
            self.proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child_conn.close()
        self.conn = parent_conn
        self.last_pid = self.proc.pid
        self.tasks = 0
        self.ready = False
        log.info("render child started (pid %s)", self.proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

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

    def pump_output(self) -> None:
        """Copy what the child wrote since the last call to our stderr, and keep its tail."""
        if self.folder is None:
            return
        path = self.folder / LOG_NAME
        try:
            with open(path, "rb") as fh:
                fh.seek(self._log_offset)
                data = fh.read(LOG_ROTATE_BYTES)
        except OSError:
            return
        if not data:
            return
        self._log_offset += len(data)
        self.tail = (self.tail + data)[-TAIL_BYTES:]
        try:
            sys.stderr.buffer.write(data)
            sys.stderr.flush()
        except (OSError, ValueError):  # our own log's disk may be full too
            pass
        if self._log_offset > LOG_ROTATE_BYTES:
            try:
                os.truncate(path, 0)  # the child appends (O_APPEND): it goes on at the new end
                self._log_offset = 0
            except OSError:
                pass

    def last_words(self, lines: int = 3) -> str:
        """The child's last few non-empty output lines since the task began, joined on one line."""
        text = self.tail.decode("utf-8", "replace").splitlines()
        kept = [" ".join(t.split()) for t in text if t.strip()][-lines:]
        return " / ".join(kept)

    def begin_task(self) -> None:
        """Forget the output of earlier tasks (a crash is reported with this task's words)."""
        self.pump_output()
        self.tail = b""

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
        self.pump_output()
        self.proc = None
        self.conn = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)  # its TMPDIR: Blender's blender_* folder too
