"""How long a client waits to hear that the broker refused its key, against the old wait.

Starts a real `farm broker --curve-keys` on loopback. Then, per round, a client holding a key the
broker does not know sends STATUS:
- baseline: the old client wait, a plain poll of the socket until the reply timeout;
- ours: `farm.client.Client`, which also watches the handshake (peer_auth.wait_reply).
An authorised key's STATUS round trip is timed both ways too (the happy path must not get slower).

    python scripts/bench_auth_refusal.py [--rounds 5] [--timeout 3] [--write]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import zmq  # noqa: E402

from bench_common import run_header, write_block  # noqa: E402

from blender_addon.contract.peer_auth import PeerAuth  # noqa: E402
from farm import protocol as P  # noqa: E402
from farm.client import Client, ClientError  # noqa: E402
from farm.keys import create_keys  # noqa: E402
from tests.ports import free_port  # noqa: E402


def start_broker(tmp: Path, keys: Path) -> tuple[subprocess.Popen, str]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    log = tmp / "broker.log"
    cmd = [sys.executable, "-m", "farm", "broker", "--bind", endpoint, "--state", str(tmp / "s.sqlite"),
           "--out-root", str(tmp), "--curve-keys", str(keys)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    deadline = time.monotonic() + 60
    while "broker listening on" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"error: the broker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc, endpoint


def plain_poll(endpoint: str, keys: Path, name: str, timeout_s: float) -> tuple[float, bool]:
    """The old wait: send, then poll the socket alone until a reply or the timeout."""
    auth = PeerAuth(endpoint, keys, name)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    P.configure_socket(sock, auth.socket_options())
    t0 = time.perf_counter()
    sock.connect(endpoint)
    sock.send(P.encode("STATUS", job_id=None))
    answered = bool(sock.poll(int(timeout_s * 1000), zmq.POLLIN))
    elapsed = time.perf_counter() - t0
    sock.close(0)
    return elapsed, answered


def watched(endpoint: str, keys: Path, name: str, timeout_s: float) -> tuple[float, bool]:
    """Ours: farm.client.Client (the add-on's request() uses the same wait_reply)."""
    t0 = time.perf_counter()
    try:
        with Client(endpoint, curve_keys=keys, key_name=name, timeout_s=timeout_s) as client:
            client.status()
        answered = True
    except ClientError:
        answered = False
    return time.perf_counter() - t0, answered


def rounds(fn, n: int, *args) -> tuple[float, set[bool]]:
    results = [fn(*args) for _ in range(n)]
    return statistics.median(t for t, _ in results), {ok for _, ok in results}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=3.0, help="the clients' reply timeout (the add-on's is 3 s)")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "cfg")  # no other broker's token is found
    keys, foreign = tmp / "keys", tmp / "foreign"
    create_keys(keys, "artist")
    create_keys(foreign, "stranger")
    shutil.copyfile(keys / "broker.key", foreign / "broker.key")  # it knows the farm; the farm does not know it
    broker, endpoint = start_broker(tmp, keys)
    try:
        rows = []
        for label, folder, name in (("unknown key (refused)", foreign, "stranger"), ("authorised key", keys, "artist")):
            base, base_ok = rounds(plain_poll, args.rounds, endpoint, folder, name, args.timeout)
            ours, ours_ok = rounds(watched, args.rounds, endpoint, folder, name, args.timeout)
            if base_ok != ours_ok or len(ours_ok) != 1:
                raise SystemExit(f"error: {label}: the two clients disagree (answered: {base_ok} vs {ours_ok})")
            rows.append(f"| {label} | {base * 1000:.1f} ms | {ours * 1000:.1f} ms | {base / ours:.1f}x |")
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    table = "\n".join([run_header(), "", f"Median of {args.rounds} rounds, reply timeout {args.timeout:g} s.", "",
                       "| client's key | plain poll (old) | handshake watched (ours) | ratio |",
                       "|---|---|---|---|", *rows])
    print(table)
    if args.write:
        write_block("auth-refusal", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
