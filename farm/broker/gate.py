"""Who may talk to the broker: its ZAP handler (a thread), and the local token file.

Every connection to the broker's socket is authenticated before a message gets through:
  - local mode (a loopback or ipc bind without keys): PLAIN with the broker's token, which lives in
    a file only the broker's user can read (blender_addon/contract/peer_auth.py); the peer is "local";
  - CURVE mode (`--curve-keys DIR`): a key in DIR/authorized/; the peer is the key's name (the
    folder is read again when an unknown key knocks after it changed, so `farm keys DIR --name X`
    needs no restart).
The peer's name comes back as the ZAP User-Id, which the broker reads off every message.
Refusals, and handshakes that fail before authentication (a peer without credentials), are
logged, each kind at most once a minute per address (a refused peer does not retry by itself).
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
import time
from pathlib import Path

import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from blender_addon.contract.peer_auth import config_dir, token_file

from ..keys import LOCAL_PEER, authorized_keys

log = logging.getLogger("farm.broker")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
REFUSAL_LOG_EVERY_S = 60.0
HANDSHAKE_FAILURES = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL


class Gate:
    """The ZAP handler of one broker. `token` (local mode) or `curve_keys` (CURVE mode)."""

    def __init__(self, ctx: zmq.Context, *, token: str | None = None, curve_keys: str | os.PathLike | None = None):
        self.ctx = ctx
        self.token = token
        self.curve_keys = curve_keys
        self.keys = authorized_keys(curve_keys) if curve_keys else {}
        self._keys_version = self._authorized_version()
        self._last_refusal: dict[str, float] = {}
        self._stop = threading.Event()
        self._monitor: zmq.Socket | None = None
        self._zap = ctx.socket(zmq.REP)
        self._zap.linger = 0
        self._zap.bind(ZAP_ENDPOINT)
        self._thread = threading.Thread(target=self._run, name="farm-broker-gate", daemon=True)

    def start(self, router: zmq.Socket) -> None:
        """Serve ZAP requests, and watch `router` for handshakes that fail before ZAP."""
        self._monitor = router.get_monitor_socket(HANDSHAKE_FAILURES)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        else:
            self._close_sockets()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._zap, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(100))
                if events.get(self._zap):
                    self._zap.send_multipart(self._safe_answer(self._zap.recv_multipart()))
                if events.get(self._monitor):
                    endpoint = recv_monitor_message(self._monitor)["endpoint"].decode(errors="replace")
                    self._refused(endpoint, f"refused a connection on {endpoint}: the handshake failed "
                                            f"(no credentials, or another mechanism)")
        finally:
            self._close_sockets()

    def _close_sockets(self) -> None:
        self._zap.close(0)
        if self._monitor is not None:
            self._monitor.close(0)

    # --- decisions ----------------------------------------------------------------------------
    def _safe_answer(self, request: list[bytes]) -> list[bytes]:
        try:
            return self.answer(request)
        except Exception:  # a bug must not leave every handshake waiting for an answer
            log.exception("ZAP request failed")
            return [b"1.0", request[1] if len(request) > 1 else b"", b"500", b"internal error", b"", b""]

    def answer(self, request: list[bytes]) -> list[bytes]:
        """A ZAP reply: [version, request id, status, text, user id, metadata]."""
        if len(request) < 6:
            return [b"1.0", request[1] if len(request) > 1 else b"", b"400", b"bad ZAP request", b"", b""]
        version, request_id, _domain, address, _identity, mechanism = request[:6]
        peer, reason = self.decide(mechanism, request[6:])
        if peer is None:
            address = address.decode(errors="replace")
            self._refused(f"{address} {reason}",
                          f"refused a {mechanism.decode(errors='replace')} peer from {address}: {reason}")
            return [version, request_id, b"400", reason.encode(), b"", b""]
        return [version, request_id, b"200", b"OK", peer.encode(), b""]

    def decide(self, mechanism: bytes, credentials: list[bytes]) -> tuple[str | None, str]:
        """(peer name, "") when admitted, else (None, reason)."""
        if mechanism == b"PLAIN" and self.token is not None and len(credentials) == 2:
            if hmac.compare_digest(credentials[1], self.token.encode()):
                return LOCAL_PEER, ""
            return None, "wrong farm token"
        if mechanism == b"CURVE" and self.curve_keys is not None and len(credentials) == 1:
            name = self._key_name(credentials[0])
            return (name, "") if name else (None, f"key {z85.encode(credentials[0]).decode()} is not authorized")
        return None, f"{mechanism.decode(errors='replace')} is not accepted here"

    def _key_name(self, public: bytes) -> str | None:
        z = z85.encode(public)
        if z not in self.keys and self._authorized_version() != self._keys_version:  # keys were added
            self._keys_version = self._authorized_version()
            try:
                self.keys = authorized_keys(self.curve_keys)
            except ValueError as exc:
                log.warning("cannot read the authorized keys: %s", exc)
        return self.keys.get(z)

    def _authorized_version(self) -> int | None:
        try:
            return os.stat(Path(self.curve_keys) / "authorized").st_mtime_ns if self.curve_keys else None
        except OSError:
            return None

    def _refused(self, key: str, line: str) -> None:
        """Log a refusal, once a minute per `key` (an address and a reason)."""
        now = time.monotonic()
        if now - self._last_refusal.get(key, -REFUSAL_LOG_EVERY_S) >= REFUSAL_LOG_EVERY_S:
            self._last_refusal[key] = now
            log.warning("%s", line)


# --- the local token ----------------------------------------------------------------------------
def new_token() -> str:
    return secrets.token_urlsafe(32)


def publish_token(endpoint: str, token: str) -> Path:
    """Write the token where local clients of this user look for it (0600 in a 0700 folder)."""
    path = token_file(endpoint)
    assert path is not None, endpoint
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)
    return path


def withdraw_token(endpoint: str, token: str | None) -> None:
    """Remove the token file of `endpoint` when it holds `token` (or any token when None: a
    broker without local authentication clears a stale one, which its clients would present)."""
    path = token_file(endpoint)
    if path is None:
        return
    try:
        if token is None or path.read_text(encoding="ascii").strip() == token:
            path.unlink()
    except OSError:
        pass
