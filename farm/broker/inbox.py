"""Messages in: check each frame against the protocol, then route it to its handler.

A malformed message (not JSON, wrong types, unknown version or type, too big) is logged and
dropped; so is one its handler refuses with a ValueError. Each message runs in its own savepoint
inside the loop's transaction, so a failing one leaves the others' work intact, and the replies it
queued (an ACK among them) are withdrawn with it.

Workers are known by the peer the gate authenticated: with CurveZMQ keys a worker is
`<key name>:<its name>`, so no key can take over another key's worker, and a session answers only
to messages from its own key.
"""
from __future__ import annotations

import logging

from .. import protocol as P
from blender_addon.contract.layout import LayoutError
from ..store import Store, StoreError
from .captions import CaptionRequests
from .clients import ClientRequests
from .streamed import StreamedFiles
from .submit_checks import result_problem
from .tasks import RenderTasks
from .workers import WorkerRegistry, WorkerSession

KEY_SEPARATOR = ":"  # in `<key name>:<worker name>` (farm/keys.py keeps it out of key names)
ANSWERED_ON_FAILURE = P.CLIENT_TYPES | {"RESULT"}  # get an ERROR when the broker cannot record them

log = logging.getLogger("farm.broker")

DROP_LOG_LINES = 50  # dropped messages logged one by one; after that, one line says more follow


class Inbox:
    def __init__(self, store: Store, registry: WorkerRegistry, tasks: RenderTasks, streamed: StreamedFiles,
                 clients: ClientRequests, captions: CaptionRequests, keyed_names: bool = False):
        self.store = store
        self.registry = registry
        self.tasks = tasks
        self.streamed = streamed
        self.clients = clients
        self.captions = captions
        self.keyed_names = keyed_names
        self.dropped = 0
        self._drop_log_budget = DROP_LOG_LINES

    def drop(self, identity: bytes | None, reason: str) -> None:
        self.dropped += 1
        if self._drop_log_budget > 0:
            self._drop_log_budget -= 1
            log.warning("dropped a message from %r: %s", identity, reason)
        elif self._drop_log_budget == 0:
            self._drop_log_budget -= 1
            log.warning("dropping more malformed messages without logging each one")

    def parse(self, frames: list[bytes]) -> tuple[bytes, dict] | None:
        """(identity, checked message), or None for a malformed one (logged and dropped)."""
        if len(frames) != 2:
            self.drop(frames[0] if frames else None, f"{len(frames)} frames, expected [identity, json]")
            return None
        identity, payload = frames
        try:
            return identity, P.decode(payload, P.INBOUND_TYPES)
        except P.ProtocolError as exc:
            self.drop(identity, str(exc))
            return None

    def session(self, identity: bytes, peer: str | None) -> WorkerSession | None:
        """The worker session of `identity`, when `peer` is the key it registered with."""
        w = self.registry.get(identity)
        if w is not None and self.keyed_names and not w.name.startswith(f"{peer}{KEY_SEPARATOR}"):
            return None
        return w

    def handle(self, identity: bytes, msg: dict, now: float, out: list, peer: str | None = None) -> None:
        """One message inside the open transaction; its own savepoint keeps a failure contained."""
        self.store.db.execute("SAVEPOINT msg")
        replies = len(out)
        try:
            self._route(identity, msg, now, out, peer)
        except StoreError as exc:
            self.store.db.execute("ROLLBACK TO msg")
            del out[replies:]
            out.append((identity, P.encode("ERROR", error=str(exc))))
        except (LayoutError, ValueError, KeyError, TypeError) as exc:
            self.store.db.execute("ROLLBACK TO msg")
            del out[replies:]
            self.drop(identity, f"{msg.get('type')}: {type(exc).__name__}: {exc}")
            if msg["type"] in ANSWERED_ON_FAILURE:
                out.append((identity, P.encode("ERROR", error=f"{type(exc).__name__}: {exc}")))
        except Exception:  # a bug must not take the broker down
            self.store.db.execute("ROLLBACK TO msg")
            del out[replies:]
            log.exception("error handling %s from %r", msg.get("type"), identity)
            if msg["type"] in ANSWERED_ON_FAILURE:
                out.append((identity, P.encode("ERROR", error="internal broker error; see the broker log")))
        finally:
            self.store.db.execute("RELEASE msg")

    def _route(self, identity: bytes, msg: dict, now: float, out: list, peer: str | None) -> None:
        mtype = msg["type"]
        if mtype == "READY":
            if self.keyed_names:
                msg = {**msg, "worker": f"{peer}{KEY_SEPARATOR}{msg['worker']}"}
            self.registry.register(identity, msg, now, out)
        elif mtype in P.WORKER_TYPES:
            w = self.session(identity, peer)
            if w is None:
                # Paranoid Pirate: a worker we do not know (we restarted, or it was declared dead)
                # (a RESULT is not acknowledged: the worker resends it after READY)
                out.append((identity, P.encode("RECONNECT")))
                return
            w.last_seen = now
            self._from_worker(w, msg, now, out)
        elif mtype in P.CLIENT_TYPES:
            self.clients.handle(identity, msg, out, peer)
        else:
            self.captions.handle(identity, msg, now, out)

    def _from_worker(self, w: WorkerSession, msg: dict, now: float, out: list) -> None:
        mtype = msg["type"]
        if mtype == "PROGRESS":
            self.registry.progress(w, msg)
        elif mtype == "FILE_CHUNK":
            if not self.streamed.write_chunk(w, msg):
                self.drop(w.identity, "FILE_CHUNK for a task this worker does not hold")
        elif mtype == "RESULT":
            problem = msg["ok"] and result_problem(msg)
            if problem:  # recorded (and acknowledged) as the worker's failure, not dropped and resent forever
                msg = {**msg, "ok": False, "error": f"bad result from worker {w.name}: {problem}",
                       "error_kind": "worker"}
            self.tasks.on_result(w, msg, now, out)
        elif mtype == "DISCONNECT":
            self.registry.disconnect(w, now)
        # HEARTBEAT: last_seen is all it says
