"""The broker's ROUTER socket: who may connect (gate.py), farm socket options, bind.

Three ways to run, chosen by the bind address and the flags:
  - local (a loopback or ipc bind, no keys; the default): PLAIN with the broker's token, published
    for this user's local clients; other local users are refused;
  - CURVE (`--curve-keys DIR`): every peer, local ones included, needs an authorised key;
  - open (`--insecure`): no authentication at all, for a network where everyone is trusted.
A bind that other machines can reach needs keys or `--insecure`; the broker refuses to start otherwise.
"""
from __future__ import annotations

import os

import zmq

from blender_addon.contract.peer_auth import is_loopback_host, token_file

from .. import protocol as P
from .gate import Gate, new_token, publish_token, withdraw_token

HWM = 100000  # queued messages per peer, both ways


class BrokerStartError(ValueError):
    """The broker cannot start as asked (bad or busy --bind, a public bind without keys). One line."""


def is_local_bind(bind: str) -> bool:
    scheme, _, rest = bind.partition("://")
    return scheme in ("ipc", "inproc") or (scheme == "tcp" and is_loopback_host(rest.rpartition(":")[0]))


class BoundRouter:
    """The bound socket with its gate. `keyed`: peers are named by their CurveZMQ key."""

    def __init__(self, ctx: zmq.Context, bind: str, curve_keys: str | os.PathLike | None, insecure: bool):
        if bind.partition("://")[0] not in ("tcp", "ipc", "inproc") or not bind.partition("://")[2]:
            raise BrokerStartError(f"cannot bind {bind}: not an endpoint like tcp://127.0.0.1:5555 or ipc://PATH")
        if not (is_local_bind(bind) or curve_keys or insecure):
            raise BrokerStartError(f"--bind {bind} can be reached from other machines: give --curve-keys DIR "
                                   f"(see `farm keys`), or --insecure to admit anyone who can reach it")
        self.keyed = bool(curve_keys)
        self.token = None if curve_keys or insecure else new_token()
        self.gate = None
        if curve_keys or self.token:
            self.gate = Gate(ctx, token=self.token, curve_keys=curve_keys)
        self.sock = ctx.socket(zmq.ROUTER)
        self.endpoint = ""
        try:
            self.endpoint = self._bind(bind, curve_keys)
            if self.gate is not None:
                self.gate.start(self.sock)
            if self.token and token_file(self.endpoint):
                self._publish_token()
            elif not self.token:
                withdraw_token(self.endpoint, None)  # a stale one would make local clients fail
        except BaseException:
            self.close()
            raise

    def _bind(self, bind: str, curve_keys) -> str:
        if curve_keys:
            from ..keys import server_options

            for opt, value in server_options(curve_keys).items():
                self.sock.setsockopt(opt, value)
        elif self.token:
            self.sock.setsockopt(zmq.PLAIN_SERVER, 1)
        P.configure_socket(self.sock)
        self.sock.setsockopt(zmq.SNDHWM, HWM)
        self.sock.setsockopt(zmq.RCVHWM, HWM)
        try:
            self.sock.bind(bind)
        except zmq.ZMQError as exc:
            raise BrokerStartError(f"cannot bind {bind}: {exc}") from None
        return self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()

    def _publish_token(self) -> None:
        try:
            publish_token(self.endpoint, self.token)
        except OSError as exc:
            raise BrokerStartError(f"cannot write the local token {token_file(self.endpoint)}: {exc.strerror} "
                                   f"(set XDG_CONFIG_HOME to a folder of yours)") from None

    def peer(self, frame: zmq.Frame) -> str | None:
        """Who sent a message: the key name (CURVE), "local" (token), None (open)."""
        if self.gate is None:
            return None
        try:
            return frame.get("User-Id")
        except zmq.ZMQError:
            return None

    def close(self) -> None:
        if self.gate is not None:
            self.gate.stop()
            self.gate = None
        if self.token and self.endpoint:
            withdraw_token(self.endpoint, self.token)
        self.sock.close(0)
