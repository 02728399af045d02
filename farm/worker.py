"""A farm worker: a DEALER socket to the broker and one supervised render child.

Paranoid Pirate: the worker heartbeats the broker every HEARTBEAT_S and expects traffic back; after
LIVENESS silent periods it closes the socket, waits (exponential backoff) and reconnects, then
sends READY again with the task it is still running and the results not yet acknowledged, so a
restarted broker can adopt them. Results stay in an outbox until the broker ACKs them.

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
Its scratch (given, or a `farm-scratch-*` folder it makes and removes) also holds each render
child's TMPDIR, so Blender's temporary folders go with it.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable

import zmq

from blender_addon.contract.peer_auth import PeerAuth

from . import environment, protocol as P
from .attempt_paths import attempt_rel, remove_real_folder
from .gpus import child_env
from .memory_watch import MemoryWatch
from .render_child import RenderChild, exit_description
from .slurm import slurm_identity
from .sources import task_kinds
from .worker_child import child_main
from .worker_outbox import Outbox, failure_delivery, success_delivery

log = logging.getLogger("farm.worker")

# well inside the grace a restarted broker gives leases to be adopted (2 x LIVENESS heartbeats)
MAX_BACKOFF_S = 2.0


class Worker:
    def __init__(
        self,
        connect: str = "tcp://127.0.0.1:5555",
        *,
        name: str | None = None,
        device: str = "cpu",
        gpu: str | int | None = None,
        threads: int | None = None,
        max_tasks: int = 100,
        max_rss_mb: float = 4096.0,
        shared_storage: bool = True,
        scratch: str | os.PathLike | None = None,
        curve_keys: str | os.PathLike | None = None,
        key_name: str = "client",
        heartbeat_s: float = P.HEARTBEAT_S,
        liveness: int = P.LIVENESS,
        exit_after: int | None = None,
        exit_when_idle: float | None = None,
        child_target: Callable = child_main,
    ):
        self.connect_addr = connect
        self.host = socket.gethostname()
        self.name = name or f"{self.host}-{os.getpid()}"
        self.device = device
        self.max_tasks = max_tasks
        self.max_rss_mb = max_rss_mb
        self.shared_storage = shared_storage
        self.own_scratch = not scratch  # made here, so removed here
        self.scratch = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="farm-scratch-"))
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.auth = PeerAuth(connect, curve_keys, key_name)  # keys checked now, the local token read at each connect
        self.heartbeat_s = heartbeat_s
        self.liveness = liveness
        self.exit_after = exit_after
        self.exit_when_idle = exit_when_idle  # seconds without a task (Slurm: free the node)
        self.last_busy = time.time()
        self.child = RenderChild(device, child_env(gpu, threads), child_target, self.scratch)  # pinned to its GPU
        self.memory = MemoryWatch(max_rss_mb)
        self.ctx = zmq.Context.instance()
        self.sock = None
        self.task: dict | None = None
        self.deadline = 0.0
        self.out_dir: Path | None = None  # where the child writes this attempt's files
        self.own_folder: tuple[str, str] | None = None  # (root, below it): the only folder an attempt removes
        self.outbox = Outbox(self._send, self._send_blocking)  # results waiting for ACK
        self.last_recv = 0.0
        self.last_send = 0.0
        self.backoff = 0.5
        self.reconnect_at: float | None = None
        self.stopping = False
        self.done_tasks = 0

    # --- socket -------------------------------------------------------------------------------
    def _connect(self) -> None:
        self.sock = self.ctx.socket(zmq.DEALER)
        P.configure_socket(self.sock, self.auth.socket_options())
        self.sock.setsockopt(zmq.SNDTIMEO, 5000)  # a blocking send (file chunks) never hangs the loop
        self.sock.connect(self.connect_addr)
        now = time.time()
        self.last_recv = now
        running = {"task_id": self.task["task_id"], "attempt_id": self.task["attempt_id"]} if self.task else None
        self._send("READY", worker=self.name, host=self.host, pid=os.getpid(), device=self.device,
                   shared_storage=self.shared_storage, kinds=task_kinds(), running=running,
                   results=self.outbox.keys(), slurm=slurm_identity())
        self.outbox.deliver_all()
        log.info("worker %s connected to %s", self.name, self.connect_addr)

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None

    def _send(self, mtype: str, **fields) -> None:
        if self.sock is None:
            return
        try:
            self.sock.send(P.encode(mtype, **fields), zmq.NOBLOCK)
            self.last_send = time.time()
        except zmq.Again:
            log.warning("send queue full; %s dropped (the broker will hear again)", mtype)

    def _send_blocking(self, mtype: str, **fields) -> None:
        if self.sock is not None:
            self.sock.send(P.encode(mtype, **fields))
            self.last_send = time.time()

    # --- main loop ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.child.start()
        self._connect()
        try:
            while not self.stopping:
                self._tick()
        finally:
            self._shutdown()
        return 0

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def _tick(self) -> None:
        poller = zmq.Poller()
        if self.sock is not None:
            poller.register(self.sock, zmq.POLLIN)
        if self.child.conn is not None:
            poller.register(self.child.fileno(), zmq.POLLIN)
        try:
            events = dict(poller.poll(100))
        except zmq.ZMQError:  # interrupted by a signal
            return
        now = time.time()
        if self.sock is not None and events.get(self.sock):
            while self.sock is not None:
                try:
                    frame = self.sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.last_recv = time.time()
                self.backoff = 0.5
                try:
                    msg = P.decode(frame)
                except P.ProtocolError as exc:
                    log.warning("dropped a malformed message from the broker: %s", exc)
                    continue
                self._on_broker(msg)
        if self.child.conn is not None and events.get(self.child.fileno()):
            self._on_child()
        self.child.pump_output()
        self._supervise(now)
        self._liveness(now)
        self._exit_if_idle(now)

    def _liveness(self, now: float) -> None:
        if self.sock is None:
            if self.reconnect_at is not None and now >= self.reconnect_at:
                self.reconnect_at = None
                self._connect()
            return
        if now - self.last_recv > self.heartbeat_s * self.liveness:
            log.warning("broker silent for %.1fs; reconnecting in %.1fs", now - self.last_recv, self.backoff)
            self._disconnect()
            self.reconnect_at = now + self.backoff
            self.backoff = min(self.backoff * 2, MAX_BACKOFF_S)
            return
        if now - self.last_send >= self.heartbeat_s:
            self._send("HEARTBEAT")

    def _exit_if_idle(self, now: float) -> None:
        """--exit-when-idle: stop once no task has run for that long and every result is acknowledged."""
        if (self.exit_when_idle and self.task is None and not self.outbox.keys()
                and now - self.last_busy >= self.exit_when_idle and not self.stopping):
            log.info("no work for %.0fs: worker %s exits", now - self.last_busy, self.name)
            self.stopping = True

    def _on_broker(self, msg: dict) -> None:
        mtype = msg["type"]
        if mtype == "TASK":
            if self.task is not None:
                log.warning("got task %s while busy; refusing it", msg["task_id"])
                self._send("RESULT", task_id=msg["task_id"], attempt_id=msg["attempt_id"], ok=False,
                           error="worker was busy", error_kind="worker")
                return
            self._start_task(msg)
        elif mtype == "ACK":
            self.outbox.ack((msg["task_id"], msg["attempt_id"]))
        elif mtype == "CANCEL_TASK":
            if self.task and (self.task["task_id"], self.task["attempt_id"]) == (msg["task_id"], msg["attempt_id"]):
                log.info("task %s called back by the broker", msg["task_id"])
                self._kill_child()
                self._end_attempt(discard=True)
        elif mtype == "ERROR":  # e.g. the broker could not record a result: it stays in the outbox
            log.warning("the broker answered: %s", msg["error"])
        elif mtype == "RECONNECT":
            self._disconnect()
            self._connect()
        # HEARTBEAT: nothing to do beyond last_recv

    # --- tasks --------------------------------------------------------------------------------
    def _start_task(self, msg: dict) -> None:
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

    def _on_child(self) -> None:
        while self.child.conn is not None and self.child.conn.poll():
            msg = self.child.recv()
            if msg is None:
                return  # gone; _supervise notices
            if "ready" in msg:
                self.child.ready = True
            elif "progress" in msg and self.task:
                done, total = msg["progress"]
                self._send("PROGRESS", task_id=self.task["task_id"], attempt_id=self.task["attempt_id"],
                           done=done, total=total)
            elif "result" in msg and self.task:
                self._finish(True, result=msg["result"])
            elif "error" in msg and self.task:
                self._finish(False, error=msg["error"], kind=msg.get("kind") or "worker")

    def _supervise(self, now: float) -> None:
        if self.task is None:
            return
        if not self.child.alive:
            code = self.child.proc.exitcode if self.child.proc else None
            self._on_child()  # a result may be waiting in the pipe
            if self.task is None:
                return
            self.child.stop(graceful=False)
            self._finish(False, error=self._death_reason(code), kind="worker")
        elif now > self.deadline:
            self._kill_child()
            self._finish(False, error=f"render timed out after {self.task['timeout_s']:g}s and was killed",
                         kind="timeout")

    def _death_reason(self, code: int | None) -> str:
        """Why the child died: our memory ceiling, or its exit with its last words."""
        tripped = self.memory.tripped
        if tripped and tripped["pid"] == self.child.last_pid:
            return (f"render process exceeded {self.max_rss_mb:g} MB (--max-rss-mb) and was killed "
                    f"at {tripped['rss_mb']:.0f} MB")
        words = self.child.last_words()
        return f"render process died ({exit_description(code)})" + (f": {words}" if words else "")

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

    def _finish(self, ok: bool, result: dict | None = None, error: str | None = None, kind: str = "asset") -> None:
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
        if self.exit_after and self.done_tasks >= self.exit_after:
            self.stopping = True

    def _maybe_recycle_child(self) -> None:
        """A fresh render child after `max_tasks` tasks or above `max_rss_mb`."""
        if self.child.alive:
            self.child.tasks += 1
            rss = self.child.rss_mb()
            if self.child.tasks >= self.max_tasks or rss > self.max_rss_mb:
                log.info("recycling the render child after %d tasks (%.0f MB)", self.child.tasks, rss)
                self.child.stop(graceful=True)
                self.child.start()

    def _shutdown(self) -> None:
        busy = self.task is not None
        if busy:
            self._kill_child()
            self._end_attempt(discard=True)
        self.child.stop(graceful=not busy)
        self.memory.close()
        if self.own_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.sock is not None:
            self._send("DISCONNECT")
            self.sock.close(linger=1000)
            self.sock = None
        log.info("worker %s stopped after %d tasks", self.name, self.done_tasks)
