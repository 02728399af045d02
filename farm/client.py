"""A small DEALER client for `farm submit/status/cancel/retry` and `farm render`'s progress.

Requests are one message, one reply, with a timeout (no blind resend: a SUBMIT that timed out may
have been stored, so the caller decides). The client authenticates as blender_addon/contract/
peer_auth.py says: with `curve_keys` its key pair `key_name`, else the local broker's token.
"""
from __future__ import annotations

import os

import zmq

from blender_addon.contract.peer_auth import PeerAuth, stop_watching, wait_reply, watch_handshake
from blender_addon.contract.wire import SUBMIT_CHUNK, submit_in_chunks

from . import protocol as P


class ClientError(RuntimeError):
    """The broker answered ERROR, or did not answer in time. One line."""


class Refused(ClientError):
    """The broker answered ERROR: it refused the request (bad input, a changed spec). One line."""


class Client:
    def __init__(self, connect: str = "tcp://127.0.0.1:5555", *, curve_keys: str | os.PathLike | None = None,
                 key_name: str = "client", timeout_s: float = 10.0, context: zmq.Context | None = None):
        self.addr = connect
        self.timeout_ms = int(timeout_s * 1000)
        self.ctx = context or zmq.Context.instance()
        self.auth = PeerAuth(connect, curve_keys, key_name)
        self.sock = self.ctx.socket(zmq.DEALER)
        P.configure_socket(self.sock, self.auth.socket_options())
        self.monitor = watch_handshake(self.sock)
        self.sock.connect(connect)

    def close(self) -> None:
        stop_watching(self.sock, self.monitor)
        self.sock.close(0)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, mtype: str, **fields) -> dict:
        self.sock.send(P.encode(mtype, **fields))
        outcome = wait_reply(self.sock, self.monitor, self.timeout_ms)
        if outcome == "timeout":
            raise ClientError(f"no answer from the broker at {self.addr} within {self.timeout_ms / 1000:g}s"
                              + self.auth.hint())
        if outcome != "reply":
            raise ClientError(f"the broker at {self.addr} refused {self.auth.refusal(outcome == 'auth')}")
        while True:
            reply = P.decode(self.sock.recv())
            if reply["type"] in ("HEARTBEAT", "RECONNECT"):  # not for us; wait for the answer
                if not self.sock.poll(self.timeout_ms, zmq.POLLIN):
                    raise ClientError(f"no answer from the broker at {self.addr}")
                continue
            break
        if reply["type"] == "ERROR":
            raise Refused(reply["error"])
        return reply

    def submit(self, job: dict, assets: list[dict], chunk: int = SUBMIT_CHUNK) -> dict:
        """One job, a long asset list in several SUBMITs (wire.submit_in_chunks). Returns the
        summed SUBMITTED reply."""
        return submit_in_chunks(lambda fields: self.request("SUBMIT", **fields), job, assets, chunk)

    def status(self, job_id: str | None = None) -> dict:
        return self.request("STATUS", job_id=job_id)

    def cancel(self, job_id: str) -> dict:
        return self.request("CANCEL", job_id=job_id)

    def retry(self, job_id: str) -> dict:
        return self.request("RETRY", job_id=job_id)
