"""Talk to an MVCap farm broker from Blender: the broker's JSON-over-DEALER wire protocol
(contract/wire.py, shared with the farm), spoken directly with pyzmq (the add-on never imports
`farm`). Every wait is short and every socket has LINGER 0, so an unreachable farm costs at most
`timeout_s` and never hangs Blender. Every socket authenticates as the farm's other peers do
(contract/peer_auth.py): with CurveZMQ keys when the panel names a key folder, else with the
local broker's token.
"""
import os
import uuid

from ..contract import wire
from ..contract.peer_auth import CurveKeyError, PeerAuth, stop_watching, wait_reply, watch_handshake
from ..rig.assets import MESH_EXTENSIONS, AssetListError, folder_asset_records

SUBMIT_TIMEOUT_S = 3.0
CHUNK_TIMEOUT_S = 30.0  # one SUBMIT of wire.SUBMIT_CHUNK assets: the broker stores them all first
KEYS_FIELD = "Farm > Keys"  # the panel field that names the key folder (the CLI's --curve-keys)


class FarmError(RuntimeError):
    """The farm could not be reached or refused a request. One-line message."""


def _zmq():
    try:
        import zmq
    except ImportError:
        raise FarmError("pyzmq is not installed in Blender's Python; install the MVCap extension zip") from None
    return zmq


_context = None


def context():
    global _context
    if _context is None:
        _context = _zmq().Context()
    return _context


def shutdown():
    """Close every socket and the context (add-on unregister)."""
    global _context
    if _context is not None:
        _context.destroy(linger=0)
        _context = None


def encode(mtype, **fields):
    return wire.to_frame(wire.message(mtype, **fields))


def decode(frame):
    try:
        msg = wire.parse_frame(frame)
    except wire.ProtocolError:
        raise FarmError("the farm sent a message that is not JSON") from None
    if not isinstance(msg, dict) or msg.get("v") != wire.VERSION or not isinstance(msg.get("type"), str):
        raise FarmError(f"the farm speaks another protocol (got {str(msg)[:60]})")
    return msg


def peer(address, curve_keys="", key_name="client"):
    """How this Blender authenticates to the farm at `address`. Raises FarmError."""
    _zmq()
    if not address.startswith(("tcp://", "ipc://", "inproc://")):
        raise FarmError(f"farm address {address!r} is not a ZeroMQ address like tcp://127.0.0.1:5555")
    try:
        return PeerAuth(address, curve_keys or None, key_name or "client")
    except CurveKeyError as exc:
        raise FarmError(str(exc).replace("--curve-keys", KEYS_FIELD)) from None


def connect(auth, watch=False):
    """A DEALER connected to the farm; with `watch`, also its watch_handshake monitor (or None)."""
    zmq = _zmq()
    sock = context().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.IDENTITY, ("blender-" + uuid.uuid4().hex[:12]).encode())
    monitor = watch_handshake(sock) if watch else None
    try:
        for option, value in auth.socket_options().items():
            sock.setsockopt(option, value)
        sock.connect(auth.endpoint)
    except zmq.ZMQError as exc:
        stop_watching(sock, monitor)
        sock.close(linger=0)
        raise FarmError(f"cannot connect to farm {auth.endpoint}: {exc}") from None
    return (sock, monitor) if watch else sock


def request(auth, mtype, timeout_s=SUBMIT_TIMEOUT_S, **fields):
    """Send one message and wait at most timeout_s for the reply. Raises FarmError."""
    zmq = _zmq()
    sock, monitor = connect(auth, watch=True)
    try:
        sock.send(encode(mtype, **fields), zmq.NOBLOCK)
        outcome = wait_reply(sock, monitor, int(timeout_s * 1000))
        if outcome == "timeout":
            raise FarmError(f"farm at {auth.endpoint} did not answer within {timeout_s:g} s "
                            f"(is `farm broker` running?{auth.hint(KEYS_FIELD)})")
        if outcome != "reply":  # a refused handshake is known at once, not after timeout_s
            raise FarmError(f"farm at {auth.endpoint} refused {auth.refusal(outcome == 'auth', KEYS_FIELD)}")
        reply = decode(sock.recv())
    except zmq.ZMQError as exc:
        raise FarmError(f"farm at {auth.endpoint}: {exc}") from None
    finally:
        stop_watching(sock, monitor)
        sock.close(linger=0)
    if reply["type"] == "ERROR":
        raise FarmError(f"farm refused: {reply.get('error', 'unknown error')}")
    return reply


def folder_assets(paths):
    """SUBMIT asset records for mesh files (and folders of them), by the farm's `folder` rules."""
    try:
        assets = folder_asset_records(paths)
    except AssetListError as exc:
        raise FarmError(str(exc)) from None
    if not assets:
        raise FarmError(f"no mesh files ({', '.join(MESH_EXTENSIONS)}) in {', '.join(map(str, paths))}")
    return assets


def submit(auth, spec_dict, paths, out_dir, name="blender", caption=False):
    """Submit assets (files or folders) with a spec, wire.SUBMIT_CHUNK assets per SUBMIT as `farm
    submit` sends them; returns the summed SUBMITTED reply (job_id, objects, queued, skipped).
    Raises FarmError."""
    job = {"out_root": os.path.abspath(out_dir), "name": name, "spec": spec_dict, "caption": bool(caption)}
    request(auth, "STATUS")  # a farm that is down or refuses us is known in seconds, not CHUNK_TIMEOUT_S

    def submitted(fields):
        reply = request(auth, "SUBMIT", CHUNK_TIMEOUT_S, **fields)
        if reply["type"] != "SUBMITTED":
            raise FarmError(f"farm answered {reply['type']} to SUBMIT")
        return reply

    return wire.submit_in_chunks(submitted, job, folder_assets(paths))


def job_progress(job):
    """(state, done, failed, total) from a STATUS_REPLY job record; state "done" once finished."""
    render = job.get("render") or {}
    done, failed = int(render.get("done", 0)), int(render.get("failed", 0))
    total = sum(int(v) for v in render.values())
    state = str(job.get("state", ""))
    if state == "finished":
        state = "done" if not failed else "done with failures"
    return state, done, failed, total


class StatusPoller:
    """Non-blocking STATUS polling for one job: `poll()` never waits, so a timer can call it."""

    def __init__(self, auth, job_id, resend_s=2.0, give_up_s=30.0):
        self.auth, self.job_id = auth, job_id
        self.resend_s, self.give_up_s = resend_s, give_up_s
        self.sock = connect(auth)
        self.sent_at = None
        self.last_reply_at = None
        self.started_at = None

    def poll(self, now):
        """Returns the job dict from a STATUS_REPLY when one has arrived, else None.
        Raises FarmError when the farm has been silent for give_up_s."""
        zmq = _zmq()
        self.started_at = self.started_at or now
        job = None
        while self.sock.poll(0, zmq.POLLIN):
            msg = decode(self.sock.recv())
            if msg["type"] == "STATUS_REPLY":
                self.last_reply_at = now
                for j in msg.get("jobs", []):
                    if j.get("job_id") == self.job_id:
                        job = j
            elif msg["type"] == "ERROR":
                raise FarmError(f"farm: {msg.get('error', 'unknown error')}")
        if self.sent_at is None or now - self.sent_at >= self.resend_s or job is not None:
            self.sock.send(encode("STATUS", job_id=self.job_id), zmq.NOBLOCK)
            self.sent_at = now
        if now - (self.last_reply_at or self.started_at) > self.give_up_s:
            raise FarmError(f"farm at {self.auth.endpoint} stopped answering")
        return job

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
