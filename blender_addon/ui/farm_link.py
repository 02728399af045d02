"""Talk to an MVCap farm broker from Blender: the broker's JSON-over-DEALER wire protocol
(contract/wire.py, shared with the farm), spoken directly with pyzmq (the add-on never imports
`farm`). Every wait is short and every socket has LINGER 0, so an unreachable farm costs at most
`timeout_s` and never hangs Blender.
"""
import os
import uuid

from ..contract import wire
from ..rig.assets import MESH_EXTENSIONS, AssetListError, folder_asset_records

SUBMIT_TIMEOUT_S = 3.0


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


def connect(address):
    zmq = _zmq()
    if not address.startswith(("tcp://", "ipc://", "inproc://")):
        raise FarmError(f"farm address {address!r} is not a ZeroMQ address like tcp://127.0.0.1:5555")
    sock = context().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.IDENTITY, ("blender-" + uuid.uuid4().hex[:12]).encode())
    try:
        sock.connect(address)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        raise FarmError(f"cannot connect to farm {address}: {exc}") from None
    return sock


def request(address, mtype, timeout_s=SUBMIT_TIMEOUT_S, **fields):
    """Send one message and wait at most timeout_s for the reply. Raises FarmError."""
    zmq = _zmq()
    sock = connect(address)
    try:
        sock.send(encode(mtype, **fields), zmq.NOBLOCK)
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            raise FarmError(f"farm at {address} did not answer within {timeout_s:g} s (is `farm broker` running?)")
        reply = decode(sock.recv())
    except zmq.ZMQError as exc:
        raise FarmError(f"farm at {address}: {exc}") from None
    finally:
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


def submit(address, spec_dict, paths, out_dir, name="blender", caption=False):
    """Submit assets (files or folders) with a spec; returns the SUBMITTED reply
    (job_id, objects, queued, skipped). Raises FarmError."""
    job = {"out_root": os.path.abspath(out_dir), "name": name, "spec": spec_dict, "caption": bool(caption)}
    reply = request(address, "SUBMIT", job=job, assets=folder_assets(paths))
    if reply["type"] != "SUBMITTED":
        raise FarmError(f"farm answered {reply['type']} to SUBMIT")
    return reply


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

    def __init__(self, address, job_id, resend_s=2.0, give_up_s=30.0):
        self.address, self.job_id = address, job_id
        self.resend_s, self.give_up_s = resend_s, give_up_s
        self.sock = connect(address)
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
            raise FarmError(f"farm at {self.address} stopped answering")
        return job

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
