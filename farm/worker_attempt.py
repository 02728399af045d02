"""One attempt at a time on a farm worker's render child (farm/worker.py holds the broker connection).

The render runs in a child process (farm/worker_child.py) that keeps bpy loaded across tasks. The
worker kills it on timeout, above `max_rss_mb` during a task (memory_watch.py) and when the
broker calls a task back, and recycles it after `max_tasks` tasks. A crash of the child costs one
attempt, not the worker; who is to blame is the broker's call, by evidence.

Storage: an attempt never writes into the object's folder. With shared storage the child renders
into OUT/.farm/attempts/<attempt_id>/; without it, into <scratch>/<attempt_id>/out and the worker
streams the files to the broker in FILE_CHUNK messages. Either way the RESULT lists the files and
the broker moves them into OUT/<out_rel>/ when it accepts the attempt (docs/internals.md). The
worker removes only its attempt's own folder: after the ACK, on a failure, or when called back;
never through a link (farm/attempt_paths.py): a link in the attempt folder's place stays, and so
does what it points to (the task fails: the folder cannot be made).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from . import environment, protocol as P
from .attempt_paths import attempt_rel, remove_real_folder
from .memory_watch import MemoryWatch
from .render_child import RenderChild, exit_description
from .worker_outbox import Outbox, failure_delivery, success_delivery

log = logging.getLogger("farm.worker")  # one log for the worker and its attempts


class AttemptRunner:
    """Starts, supervises and ends the worker's task on its render child; results go to the outbox.
    `send` reaches the broker (PROGRESS); `on_finished` runs after each finished attempt."""

    def __init__(self, child: RenderChild, memory: MemoryWatch, outbox: Outbox, send: Callable[..., None], *,
                 shared_storage: bool, scratch: Path, max_tasks: int, max_rss_mb: float,
                 on_finished: Callable[[], None]):
        self.child = child
        self.memory = memory
        self.outbox = outbox
        self.send = send
        self.shared_storage = shared_storage
        self.scratch = scratch
        self.max_tasks = max_tasks
        self.max_rss_mb = max_rss_mb
        self.on_finished = on_finished
        self.task: dict | None = None
        self.deadline = 0.0
        self.out_dir: Path | None = None  # where the child writes this attempt's files
        self.own_folder: tuple[str, str] | None = None  # (root, below it): the only folder an attempt removes
        self.done_tasks = 0
        self.last_busy = time.time()

    def running(self) -> dict | None:
        """The running attempt as READY names it, so a restarted broker can adopt it."""
        return {"task_id": self.task["task_id"], "attempt_id": self.task["attempt_id"]} if self.task else None

    def start(self, msg: dict) -> None:
        try:
            own_folder, out_dir = self._attempt_folders(msg)
            remove_real_folder(*own_folder)  # named by this attempt's id: ours alone
            out_dir.mkdir(parents=True)  # a link left in its place: FileExistsError, the task fails
        except (OSError, ValueError) as exc:  # a path no file system takes fails the task, not the worker
            env = environment.error_of(exc)
            log.warning("task %s: cannot use its output folder: %s", msg["task_id"], exc)
            self.outbox.add(failure_delivery((msg["task_id"], msg["attempt_id"]),
                                             env or f"cannot use the output folder: {exc}", "env" if env else "worker"))
            return
        self.task = msg
        self.out_dir = out_dir
        self.own_folder = own_folder
        self.deadline = time.time() + float(msg["timeout_s"])
        if not self.child.alive:
            self.child.stop(graceful=False)
            self.child.start()
        self.child.begin_task()
        log.info("task %s attempt %s: %s", msg["task_id"], msg["attempt_id"], msg["asset"].get("uid"))
        self.child.send({"task": msg, "out_dir": str(out_dir)})
        self.memory.arm(self.child.pid)

    def _attempt_folders(self, msg: dict) -> tuple[tuple[str, str], Path]:
        """(the attempt's own folder as (root, path below it), where the child writes):
        OUT/.farm/attempts/<attempt_id> with shared storage (the broker moves the files into
        place), else <scratch>/<attempt_id>/out."""
        if not self.shared_storage:
            own_folder = (str(self.scratch), str(int(msg["attempt_id"])))
            return own_folder, self.scratch / own_folder[1] / "out"
        problem = P.output_folder_problem(msg["out_root"], msg["out_rel"])
        if problem:  # stored before the broker checked it: no file system call may see it
            raise ValueError(problem)
        P.attempt_folder(msg["out_root"], msg["attempt_id"])  # LayoutError when a link leads out of OUT
        own_folder = (msg["out_root"], attempt_rel(msg["attempt_id"]))
        return own_folder, Path(own_folder[0]) / own_folder[1]

    def on_child(self) -> None:
        while self.child.conn is not None and self.child.conn.poll():
            msg = self.child.recv()
            if msg is None:
                return  # gone; supervise notices
            if "ready" in msg:
                self.child.ready = True
            elif "progress" in msg and self.task:
                done, total = msg["progress"]
                self.send("PROGRESS", task_id=self.task["task_id"], attempt_id=self.task["attempt_id"],
                          done=done, total=total)
            elif "result" in msg and self.task:
                self.finish(True, result=msg["result"])
            elif "error" in msg and self.task:
                self.finish(False, error=msg["error"], kind=msg.get("kind") or "worker")

    def supervise(self, now: float) -> None:
        if self.task is None:
            return
        if not self.child.alive:
            code = self.child.proc.exitcode if self.child.proc else None
            self.on_child()  # a result may be waiting in the pipe
            if self.task is None:
                return
            self.child.stop(graceful=False)
            self.finish(False, error=self._death_reason(code), kind="worker")
        elif now > self.deadline:
            self._kill_child()
            self.finish(False, error=f"render timed out after {self.task['timeout_s']:g}s and was killed",
                        kind="timeout")

    def _death_reason(self, code: int | None) -> str:
        """Why the child died: our memory ceiling, or its exit with its last words."""
        tripped = self.memory.tripped
        if tripped and tripped["pid"] == self.child.last_pid:
            return (f"render process exceeded {self.max_rss_mb:g} MB (--max-rss-mb) and was killed "
                    f"at {tripped['rss_mb']:.0f} MB")
        words = self.child.last_words()
        return f"render process died ({exit_description(code)})" + (f": {words}" if words else "")

    def call_back(self, task_id: int, attempt_id: int) -> None:
        """The broker's CANCEL_TASK: stop that attempt if it is the one running here."""
        if self.task and (self.task["task_id"], self.task["attempt_id"]) == (task_id, attempt_id):
            log.info("task %s called back by the broker", task_id)
            self.abort()

    def abort(self) -> None:
        """Kill the render and drop the attempt and its folder (no result is sent)."""
        self._kill_child()
        self._end_attempt(discard=True)

    def close(self) -> None:
        """At the worker's exit: a running render is killed and its attempt dropped, else the
        child stops gently."""
        busy = self.task is not None
        if busy:
            self.abort()
        self.child.stop(graceful=not busy)
        self.memory.close()

    def _kill_child(self) -> None:
        self.memory.disarm()
        self.child.stop(graceful=False)

    def _end_attempt(self, discard: bool) -> None:
        """The task is over here; `discard`: remove the attempt's own folder now (else the outbox
        removes it after the ACK)."""
        self.memory.disarm()
        if discard and self.own_folder is not None:
            remove_real_folder(*self.own_folder)
        self.task = None
        self.out_dir = None
        self.own_folder = None

    def finish(self, ok: bool, result: dict | None = None, error: str | None = None, kind: str = "asset") -> None:
        key = (self.task["task_id"], self.task["attempt_id"])
        if ok:
            delivery = success_delivery(key, result, self.out_dir, self.own_folder, stream=not self.shared_storage)
        else:
            full = environment.disk_full(self.out_dir) if kind != "env" else None
            if full:  # a render on a full disk fails in many ways ("image file is truncated"...)
                error, kind = f"{full}; the render said: {error}", "env"
            delivery = failure_delivery(key, error, kind)
            log.warning("task %s failed (%s): %s", key[0], kind, error)
        self._end_attempt(discard=not ok)  # no file of a failed attempt stays behind
        self.done_tasks += 1
        self.last_busy = time.time()
        self.outbox.add(delivery)
        self._maybe_recycle_child()
        self.on_finished()

    def _maybe_recycle_child(self) -> None:
        """A fresh render child after `max_tasks` tasks or above `max_rss_mb`."""
        if self.child.alive:
            self.child.tasks += 1
            rss = self.child.rss_mb()
            if self.child.tasks >= self.max_tasks or rss > self.max_rss_mb:
                log.info("recycling the render child after %d tasks (%.0f MB)", self.child.tasks, rss)
                self.child.stop(graceful=True)
                self.child.start()
