"""A small DEALER client for `farm submit/status/cancel/retry` and `farm render`'s progress.

Requests are one message, one reply, with a timeout (no blind resend: a SUBMIT that timed out may
have been stored, so the caller decides).
"""
from __future__ import annotations

import os

import zmq

from . import protocol as P


SUBMIT_CHUNK = 5000  # assets per SUBMIT message


class ClientError(RuntimeError):
    """The broker answered ERROR, or did not answer in time. One line."""


class Client:
    def __init__(self, connect: str = "tcp://127.0.0.1:5555", *, curve_keys: str | os.PathLike | None = None,
                 curve_name: str = "client", timeout_s: float = 10.0, context: zmq.Context | None = None):
        self.addr = connect
        self.timeout_ms = int(timeout_s * 1000)
        self.ctx = context or zmq.Context.instance()
        curve = None
        if curve_keys:
            from .keys import client_options

            curve = client_options(curve_keys, curve_name)
        self.sock = self.ctx.socket(zmq.DEALER)
        P.configure_socket(self.sock, curve)
        self.sock.connect(connect)

    def close(self) -> None:
        self.sock.close(0)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, mtype: str, **fields) -> dict:
        self.sock.send(P.encode(mtype, **fields))
        if not self.sock.poll(self.timeout_ms, zmq.POLLIN):
            raise ClientError(f"no answer from the broker at {self.addr} within {self.timeout_ms / 1000:.0f}s")
        while True:
            reply = P.decode(self.sock.recv())
            if reply["type"] in ("HEARTBEAT", "RECONNECT"):  # not for us; wait for the answer
                if not self.sock.poll(self.timeout_ms, zmq.POLLIN):
                    raise ClientError(f"no answer from the broker at {self.addr}")
                continue
            break
        if reply["type"] == "ERROR":
            raise ClientError(reply["error"])
        return reply

    def submit(self, job: dict, assets: list[dict], chunk: int = SUBMIT_CHUNK) -> dict:
        """One job; a long asset list goes in several SUBMITs (frames stay far below the size cap,
        and the broker never stalls long on one). Returns the summed SUBMITTED reply."""
        reply = self.request("SUBMIT", job=job, assets=assets[:chunk])
        total = dict(reply)
        for start in range(chunk, len(assets), chunk):
            more = self.request("SUBMIT", job=job, assets=assets[start:start + chunk], append_to=reply["job_id"])
            for key in ("objects", "queued", "skipped"):
                total[key] += more[key]
        return total

    def status(self, job_id: str | None = None) -> dict:
        return self.request("STATUS", job_id=job_id)

    def cancel(self, job_id: str) -> dict:
        return self.request("CANCEL", job_id=job_id)

    def retry(self, job_id: str) -> dict:
        return self.request("RETRY", job_id=job_id)
