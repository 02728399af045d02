"""The broker's ROUTER socket: farm socket options, optional CURVE authentication, bind."""
from __future__ import annotations

import os

import zmq

from .. import protocol as P

HWM = 100000  # queued messages per peer, both ways


def bind_router(ctx: zmq.Context, bind: str, curve_keys: str | os.PathLike | None):
    """(socket, authenticator or None, bound endpoint). `tcp://...:*` binds an ephemeral port."""
    sock = ctx.socket(zmq.ROUTER)
    curve = auth = None
    if curve_keys:
        from ..keys import server_options, start_authenticator

        curve = server_options(curve_keys)
        auth = start_authenticator(ctx, curve_keys)
    P.configure_socket(sock, curve)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    sock.bind(bind)
    return sock, auth, sock.getsockopt(zmq.LAST_ENDPOINT).decode()
