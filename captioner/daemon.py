"""`captioner serve`: lease caption tasks from the broker's durable queue, caption, acknowledge.

Threads: the main thread owns the ZeroMQ DEALER socket (leases, heartbeats, acknowledgements);
an engine thread runs the model; a pool of decode threads feeds it. Messages are the JSON frames
of docs/internals.md ("Caption hand-off"), encoded and checked by farm.protocol; nothing from the
network is ever unpickled.

Order per object: captions.json is written atomically, then CAPTION_DONE is sent. A captioner
killed in between makes the broker re-lease the task when the lease expires; the new lease finds a
complete captions.json newer than the images and is acknowledged without captioning again.
"""
from __future__ import annotations

import queue
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import zmq

from farm import protocol

from .engine import CaptionEngine, CaptionTask, ObjectResult
from .runner import captions_complete

HEARTBEAT_S = 5.0  # CAPTION_HEARTBEAT period while holding leases (the broker's lease is minutes)
REPLY_TIMEOUT_S = 10.0  # no CAPTION_TASKS for this long: reconnect (Lazy Pirate)
EMPTY_BACKOFF_S = 1.0  # after an empty CAPTION_TASKS, ask again this much later


class DaemonError(RuntimeError):
    pass


def task_from_payload(payload: dict) -> CaptionTask:
    """A CAPTION_TASKS entry as a CaptionTask (KeyError/TypeError/ValueError for a malformed one)."""
    files = payload["files"]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError("files must be a list of file names")
    return CaptionTask(uid=str(payload["uid"]), category=str(payload.get("category") or ""),
                       out_root=Path(payload["out_root"]), out_rel=str(payload["out_rel"]), files=list(files),
                       obj_id=payload.get("obj_id"), task_id=int(payload["task_id"]),
                       attempt_id=int(payload["attempt_id"]))


class CaptionDaemon:
    def __init__(self, connect: str, make_engine: Callable[..., CaptionEngine], *, batch_size: int,
                 curve: dict | None = None, max_tasks: int | None = None, idle_exit_s: float | None = None,
                 heartbeat_s: float = HEARTBEAT_S, reply_timeout_s: float = REPLY_TIMEOUT_S,
                 log: Callable[[str], None] = lambda s: None):
        self.connect = connect
        self.make_engine = make_engine
        self.batch_size = batch_size
        self.curve = curve
        self.max_tasks = max_tasks
        self.idle_exit_s = idle_exit_s
        self.heartbeat_s = heartbeat_s
        self.reply_timeout_s = reply_timeout_s
        self.log = log
        self.stop = threading.Event()
        self.acked = 0
        self.failed = 0
        self.ctx = zmq.Context.instance()
        self.sock: zmq.Socket | None = None

    # --- socket ----------------------------------------------------------------------------
    def _open(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.DEALER)
        protocol.configure_socket(self.sock, self.curve)
        self.sock.connect(self.connect)

    def _send(self, mtype: str, **fields) -> None:
        assert self.sock is not None
        self.sock.send(protocol.encode(mtype, **fields))

    # --- main loop -------------------------------------------------------------------------
    def run(self) -> dict:
        done_q: "queue.Queue[ObjectResult]" = queue.Queue()
        inbox: "queue.Queue[CaptionTask]" = queue.Queue()
        engine = self.make_engine(on_object_done=done_q.put)
        engine_stop = threading.Event()
        engine_error: list[BaseException] = []

        def engine_main() -> None:
            try:
                engine.serve_queue(inbox, engine_stop)
            except BaseException as exc:  # surfaced by the main loop
                engine_error.append(exc)

        worker = threading.Thread(target=engine_main, name="captioner-engine", daemon=True)
        worker.start()
        self._open()
        active: dict[int, CaptionTask] = {}  # attempt_id -> task
        leased_total = 0
        awaiting_since: float | None = None
        next_lease_at = 0.0
        last_heartbeat = time.monotonic()
        idle_since = time.monotonic()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        try:
            while not self.stop.is_set():
                if engine_error:
                    raise DaemonError(f"captioning stopped: {engine_error[0]}")
                now = time.monotonic()
                # 1. acknowledge finished objects (captions.json is already on disk)
                while True:
                    try:
                        result = done_q.get_nowait()
                    except queue.Empty:
                        break
                    self._report(result)
                    active.pop(result.task.attempt_id, None)
                # 2. lease more when the engine's backlog runs low
                in_flight = sum(len(t.files) for t in active.values())
                want = self.max_tasks is None or leased_total < self.max_tasks
                if want and awaiting_since is None and now >= next_lease_at and in_flight < 2 * self.batch_size:
                    max_n = max(1, min(16, 2 * self.batch_size // max(1, self._views_hint(active))))
                    if self.max_tasks is not None:
                        max_n = min(max_n, self.max_tasks - leased_total)
                    self._send("CAPTION_LEASE", max=max_n)
                    awaiting_since = now
                # 3. keep leases alive
                if active and now - last_heartbeat >= self.heartbeat_s:
                    self._send("CAPTION_HEARTBEAT", attempt_ids=sorted(active))
                    last_heartbeat = now
                # 4. replies
                events = dict(poller.poll(100))
                if self.sock in events:
                    try:
                        msg = protocol.decode(self.sock.recv(zmq.NOBLOCK))
                    except protocol.ProtocolError as exc:
                        self.log(f"dropped a malformed message from the broker: {exc}")
                        continue
                    except zmq.Again:
                        continue
                    if msg["type"] == "CAPTION_TASKS":
                        awaiting_since = None
                        tasks = msg["tasks"]
                        if not tasks:
                            next_lease_at = time.monotonic() + EMPTY_BACKOFF_S
                        for payload in tasks:
                            leased_total += 1
                            task = self._accept(payload)
                            if task is None:
                                continue
                            active[task.attempt_id] = task
                            if captions_complete(task.captions_path, task.files, images_dir=task.folder):
                                # captioned by an earlier attempt whose CAPTION_DONE never arrived
                                self.log(f"{task.out_rel}: captions.json already complete; acknowledging")
                                done_q.put(ObjectResult(task, task.captions_path))
                            else:
                                inbox.put(task)
                    elif msg["type"] == "ERROR":
                        self.log(f"broker: {msg['error']}")
                        awaiting_since = None
                        next_lease_at = time.monotonic() + EMPTY_BACKOFF_S
                # 5. a broker that does not answer: reconnect and ask again (the leases survive
                #    in the broker's store; heartbeats carry attempt ids, not the connection)
                if awaiting_since is not None and time.monotonic() - awaiting_since > self.reply_timeout_s:
                    self.log(f"no reply from {self.connect} in {self.reply_timeout_s:.0f} s; reconnecting")
                    poller.unregister(self.sock)
                    self._open()
                    poller.register(self.sock, zmq.POLLIN)
                    awaiting_since = None
                # 6. exit conditions (a broker that never answers counts as idle too)
                if active:
                    idle_since = time.monotonic()
                if self.max_tasks is not None and leased_total >= self.max_tasks and not active:
                    break
                if self.idle_exit_s is not None and not active and time.monotonic() - idle_since > self.idle_exit_s:
                    break
        finally:
            engine_stop.set()
            worker.join(timeout=30)
            engine.close()
            if self.sock is not None:
                # objects finished by the last batch are reported before leaving
                while True:
                    try:
                        self._report(done_q.get_nowait())
                    except (queue.Empty, zmq.ZMQError):
                        break
                self.sock.close(linger=500)
        stats = engine.stats.as_dict()
        stats.update(acked=self.acked, reported_failed=self.failed)
        return stats

    @staticmethod
    def _views_hint(active: dict[int, CaptionTask]) -> int:
        if not active:
            return 8
        return max(1, sum(len(t.files) for t in active.values()) // len(active))

    def _accept(self, payload: dict) -> CaptionTask | None:
        """Check a leased task; answer CAPTION_FAILED at once for one that cannot be done here."""
        try:
            task = task_from_payload(payload)
        except (KeyError, TypeError, ValueError) as exc:
            tid, aid = payload.get("task_id"), payload.get("attempt_id")
            self.log(f"malformed caption task {payload!r:.120}: {exc}")
            if isinstance(tid, int) and isinstance(aid, int):
                self._send("CAPTION_FAILED", task_id=tid, attempt_id=aid, error=f"malformed caption task: {exc}")
            return None
        if not task.out_root.is_dir():
            self.failed += 1
            self._send("CAPTION_FAILED", task_id=task.task_id, attempt_id=task.attempt_id,
                       error=f"output folder {task.out_root} is not reachable from this captioner")
            return None
        try:
            task.folder
        except ValueError as exc:
            self.failed += 1
            self._send("CAPTION_FAILED", task_id=task.task_id, attempt_id=task.attempt_id, error=str(exc))
            return None
        return task

    def _report(self, result: ObjectResult) -> None:
        task = result.task
        if result.path is not None and result.error is None:
            self._send("CAPTION_DONE", task_id=task.task_id, attempt_id=task.attempt_id)
            self.acked += 1
            self.log(f"{task.out_rel}: {result.captioned} captioned, {result.failed} failed, "
                     f"{result.forced} forced prefix")
        else:
            self._send("CAPTION_FAILED", task_id=task.task_id, attempt_id=task.attempt_id,
                       error=result.error or "captioning failed")
            self.failed += 1
            self.log(f"{task.out_rel}: failed: {result.error}")


def install_signal_handlers(daemon: CaptionDaemon) -> None:
    def handler(signum, frame):  # noqa: ARG001
        daemon.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)

