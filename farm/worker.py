"""A farm worker: a DEALER socket to the broker and one supervised render child.

Paranoid Pirate: the worker heartbeats the broker every HEARTBEAT_S and expects traffic back; after
LIVENESS silent periods it closes the socket, waits (exponential backoff) and reconnects, then
sends READY again with the task it is still running and the results not yet acknowledged, so a
restarted broker can adopt them. Results stay in an outbox until the broker ACKs them.

The task itself (its attempt folder, the render child's messages, timeouts, memory, recycling)
is farm/worker_attempt.py's AttemptRunner, which the worker feeds from its loop.

The worker's scratch (given, or a `farm-scratch-*` folder it makes and removes) also holds each render
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

from . import protocol as P
from .gpus import child_env
from .memory_watch import MemoryWatch
from .render_child import RenderChild
from .slurm import slurm_identity
from .sources import task_kinds
from .worker_attempt import AttemptRunner
from .worker_child import child_main
from .worker_outbox import Outbox

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
        self.shared_storage = shared_storage
        self.own_scratch = not scratch  # made here, so removed here
        self.scratch = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="farm-scratch-"))
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.auth = PeerAuth(connect, curve_keys, key_name)  # keys checked now, the local token read at each connect
        self.heartbeat_s = heartbeat_s
        self.liveness = liveness
        self.exit_after = exit_after
        self.exit_when_idle = exit_when_idle  # seconds without a task (Slurm: free the node)
        self.ctx = zmq.Context.instance()
        self.sock = None
        self.outbox = Outbox(self._send, self._send_blocking)  # results waiting for ACK
        child = RenderChild(device, child_env(gpu, threads), child_target, self.scratch)  # pinned to its GPU
        self.attempt = AttemptRunner(child, MemoryWatch(max_rss_mb), self.outbox, self._send,
                                     shared_storage=shared_storage, scratch=self.scratch, max_tasks=max_tasks,
                                     max_rss_mb=max_rss_mb, on_finished=self._after_task)
        self.last_recv = 0.0
        self.last_send = 0.0
        self.backoff = 0.5
        self.reconnect_at: float | None = None
        self.stopping = False

    @property
    def child(self) -> RenderChild:
        return self.attempt.child

    @child.setter
    def child(self, child: RenderChild) -> None:
        self.attempt.child = child

    @property
    def memory(self) -> MemoryWatch:
        return self.attempt.memory

    @property
    def task(self) -> dict | None:
        """The TASK message being rendered, or None."""
        return self.attempt.task

    # --- socket -------------------------------------------------------------------------------
    def _connect(self) -> None:
        self.sock = self.ctx.socket(zmq.DEALER)
        P.configure_socket(self.sock, self.auth.socket_options())
        self.sock.setsockopt(zmq.SNDTIMEO, 5000)  # a blocking send (file chunks) never hangs the loop
        self.sock.connect(self.connect_addr)
        now = time.time()
        self.last_recv = now
        self._send("READY", worker=self.name, host=self.host, pid=os.getpid(), device=self.device,
                   shared_storage=self.shared_storage, kinds=task_kinds(), running=self.attempt.running(),
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
            self.attempt.on_child()
        self.child.pump_output()
        self.attempt.supervise(now)
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
                and now - self.attempt.last_busy >= self.exit_when_idle and not self.stopping):
            log.info("no work for %.0fs: worker %s exits", now - self.attempt.last_busy, self.name)
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
            self.attempt.call_back(msg["task_id"], msg["attempt_id"])
        elif mtype == "ERROR":  # e.g. the broker could not record a result: it stays in the outbox
            log.warning("the broker answered: %s", msg["error"])
        elif mtype == "RECONNECT":
            self._disconnect()
            self._connect()
        # HEARTBEAT: nothing to do beyond last_recv

    # --- tasks (farm/worker_attempt.py) ---------------------------------------------------------
    def _start_task(self, msg: dict) -> None:
        self.attempt.start(msg)

    def _finish(self, ok: bool, result: dict | None = None, error: str | None = None, kind: str = "asset") -> None:
        self.attempt.finish(ok, result=result, error=error, kind=kind)

    def _after_task(self) -> None:
        """`exit_after`: stop once that many tasks are done."""
        if self.exit_after and self.attempt.done_tasks >= self.exit_after:
            self.stopping = True

    def _shutdown(self) -> None:
        self.attempt.close()
        if self.own_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.sock is not None:
            self._send("DISCONNECT")
            self.sock.close(linger=1000)
            self.sock = None
        log.info("worker %s stopped after %d tasks", self.name, self.attempt.done_tasks)
