#!/usr/bin/env python
"""Broker benchmarks with fake workers that do not render (results go in BENCHMARKS.md, "Farm").

  throughput  N tasks through lease -> RESULT -> commit with W fake workers; ours (group commit)
              against the baseline of one SQLite commit per message. Durability is checked after
              each run, and the script exits non-zero when it fails: every task is `done` exactly
              once in the state file and objects.jsonl has one line per task.
  heartbeat   W idle workers heartbeating once a second: broker CPU, and the round-trip time of a
              probe message under that load against an idle broker.

The broker is a real `farm broker` process; fake workers are DEALER sockets spread over a few
processes. Usage:
  python scripts/bench_broker.py [throughput|heartbeat|all] [--tasks N] [--workers W] [--quick]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import zmq  # noqa: E402

from bench_common import run_header  # noqa: E402
from blender_addon.contract.peer_auth import PeerAuth  # noqa: E402
from farm import protocol as P  # noqa: E402
from farm.client import Client, ClientError  # noqa: E402
from tests.ports import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start_broker(state: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    addr = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "farm", "broker", "--bind", addr, "--state", str(state),
                             "--out-root", str(state.parent), *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with Client(addr, timeout_s=1) as c:
                c.status()
            return proc, addr
        except ClientError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("broker did not start")


def stop_broker(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


# --- fake workers ------------------------------------------------------------------------------
def fake_workers(addr: str, names: list[str], stop, ready_count, idle: bool, acked=None) -> None:
    """DEALERs that answer every TASK at once with a successful RESULT (or, idle, only heartbeat)."""
    ctx = zmq.Context()
    socks = []
    poller = zmq.Poller()
    for name in names:
        s = ctx.socket(zmq.DEALER)
        P.configure_socket(s, PeerAuth(addr).socket_options())  # the local broker's token
        s.connect(addr)
        s.send(P.encode("READY", worker=name, host="bench", pid=os.getpid(), device="cpu", shared_storage=True))
        poller.register(s, zmq.POLLIN)
        socks.append(s)
    with ready_count.get_lock():
        ready_count.value += len(names)
    beat = P.encode("HEARTBEAT")
    # the reply is built from a checked template; ids are read from the TASK's head (the broker
    # still parses and checks every RESULT in full)
    ids = re.compile(rb'"task_id":(\d+),"attempt_id":(\d+)')
    template = P.encode("RESULT", task_id=111111, attempt_id=222222, ok=True,
                        result={"views": 1, "files": ["000.png"]}).replace(b"111111", b"%d").replace(b"222222", b"%d")
    n = len(socks)
    acks = 0
    next_beat = [time.time() + (i / max(1, n)) for i in range(n)]  # spread evenly over the second
    while not stop.is_set():
        for s, _ in poller.poll(50):
            while True:
                try:
                    frame = s.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if idle:
                    continue
                if b'"ACK"' in frame[:30]:  # sent by the broker after the commit
                    acks += 1
                    continue
                if b'"TASK"' not in frame[:40]:
                    continue
                m = ids.search(frame, 0, 120)
                s.send(template % (int(m.group(1)), int(m.group(2))))
        if acks and acked is not None:
            with acked.get_lock():
                acked.value += acks
            acks = 0
        now = time.time()
        for i, s in enumerate(socks):
            if now >= next_beat[i]:
                s.send(beat)
                next_beat[i] = now + 1.0
    for s in socks:
        s.close(0)
    ctx.term()


def start_fakes(addr: str, workers: int, procs: int, idle: bool = False, acked=None):
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    ready = ctx.Value("i", 0)
    ps = []
    for p in range(procs):
        names = [f"fake-{p}-{i}" for i in range(p, workers, procs)]
        proc = ctx.Process(target=fake_workers, args=(addr, names, stop, ready, idle, acked), daemon=True)
        proc.start()
        ps.append(proc)
    deadline = time.time() + 60
    while ready.value < workers and time.time() < deadline:
        time.sleep(0.05)
    return stop, ps


def stop_fakes(stop, ps) -> None:
    stop.set()
    for p in ps:
        p.join(10)
        if p.is_alive():
            p.kill()


# --- throughput --------------------------------------------------------------------------------
def run_throughput(tasks: int, workers: int, procs: int, group_commit: int, fsync: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp:
        state = Path(tmp) / "state.sqlite"
        extra = ["--group-commit", str(group_commit)] + (["--fsync"] if fsync else [])
        broker, addr = start_broker(state, *extra)
        try:
            out = Path(tmp) / "out"
            spec = {"camera": {"num_views": 1}}
            assets = [{"uid": f"o{i}", "path": f"/bench/o{i}.glb", "category": "c", "source": "folder",
                       "out_rel": f"views/o{i}"} for i in range(tasks)]
            acked = mp.get_context("spawn").Value("l", 0)
            stop, ps = start_fakes(addr, workers, procs, acked=acked)  # registered and idle
            time.sleep(0.5)
            cpu0 = cpu_seconds(broker.pid)
            with Client(addr, timeout_s=300) as c:
                t_sub = time.perf_counter()
                c.submit({"name": "bench", "out_root": str(out), "spec": spec}, assets, chunk=tasks)  # one SUBMIT
                t0 = time.perf_counter()  # the first leases go out with the SUBMITTED reply
                submit_s = t0 - t_sub
            while acked.value < tasks:  # ACKs are sent after the commit: durable
                time.sleep(0.005)
            elapsed = time.perf_counter() - t0
            cpu = cpu_seconds(broker.pid) - cpu0
            stop_fakes(stop, ps)
        finally:
            stop_broker(broker)
        db = sqlite3.connect(state)
        done_tasks = db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0]
        dup = db.execute("SELECT COUNT(*) FROM (SELECT task_id FROM attempts WHERE outcome = 'done' GROUP BY task_id"
                         " HAVING COUNT(*) > 1)").fetchone()[0]
        lines = sum(1 for _ in open(out / "objects.jsonl"))
        db.close()
    return {"tasks": tasks, "workers": workers, "group_commit": group_commit, "fsync": fsync,
            "elapsed_s": round(elapsed, 3), "tasks_per_s": round(tasks / elapsed, 1),
            "broker_cpu_s_incl_submit": round(cpu, 2), "submit_s": round(submit_s, 2),
            "durable_done": done_tasks, "duplicated": dup, "objects_jsonl_lines": lines}


def check_durable(run: dict) -> None:
    """Exit non-zero unless every task is done exactly once and objects.jsonl has a line per task."""
    problems = []
    if run["durable_done"] != run["tasks"]:
        problems.append(f"{run['durable_done']} of {run['tasks']} tasks done in the state file")
    if run["duplicated"]:
        problems.append(f"{run['duplicated']} tasks done more than once")
    if run["objects_jsonl_lines"] != run["tasks"]:
        problems.append(f"objects.jsonl has {run['objects_jsonl_lines']} lines for {run['tasks']} tasks")
    if problems:
        raise SystemExit("error: durability check failed: " + "; ".join(problems))


# --- heartbeats --------------------------------------------------------------------------------
def probe_rtt(addr: str, n: int = 200, gap: float = 0.02) -> list[float]:
    """Round trip of an unknown peer's HEARTBEAT -> RECONNECT (one trip through the broker loop)."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    P.configure_socket(s, PeerAuth(addr).socket_options())
    s.connect(addr)
    frame = P.encode("HEARTBEAT")
    rtts = []
    time.sleep(0.2)
    for _ in range(n):
        t = time.perf_counter()
        s.send(frame)
        while True:
            if not s.poll(5000):
                raise RuntimeError("probe got no answer")
            if b"RECONNECT" in s.recv():
                break
        rtts.append((time.perf_counter() - t) * 1000)
        time.sleep(gap)
    s.close(0)
    return rtts


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_heartbeat(workers: int, procs: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-hb-") as tmp:
        broker, addr = start_broker(Path(tmp) / "state.sqlite")
        try:
            idle_rtt = probe_rtt(addr)
            cpu_idle0, t = cpu_seconds(broker.pid), time.perf_counter()
            time.sleep(min(seconds, 5))
            idle_cpu = (cpu_seconds(broker.pid) - cpu_idle0) / (time.perf_counter() - t)
            stop, ps = start_fakes(addr, workers, procs, idle=True)
            time.sleep(2.0)  # settle
            cpu0, t0 = cpu_seconds(broker.pid), time.perf_counter()
            load_rtt = probe_rtt(addr, n=int(seconds / 0.025))
            cpu = (cpu_seconds(broker.pid) - cpu0) / (time.perf_counter() - t0)
            with Client(addr, timeout_s=30) as c:
                alive = len(c.status()["workers"])
            stop_fakes(stop, ps)
        finally:
            stop_broker(broker)
    return {"workers": workers, "alive_at_end": alive, "broker_cpu_pct": round(cpu * 100, 1),
            "idle_broker_cpu_pct": round(idle_cpu * 100, 1),
            "rtt_ms_idle": {"p50": round(statistics.median(idle_rtt), 3), "p99": round(pct(idle_rtt, 0.99), 3)},
            "rtt_ms_loaded": {"p50": round(statistics.median(load_rtt), 3), "p99": round(pct(load_rtt, 0.99), 3)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["throughput", "heartbeat", "all"])
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--baseline-tasks", type=int, default=None, help="default: --tasks")
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--hb-workers", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=2, help="processes for the fake workers")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.baseline_tasks, args.hb_workers, args.seconds = 2000, 500, 100, 2.0
    print(run_header())
    if args.what in ("throughput", "all"):
        base = run_throughput(args.baseline_tasks or args.tasks, args.workers, args.procs, group_commit=1, fsync=False)
        print("baseline (a commit per message):", json.dumps(base))
        check_durable(base)
        ours = run_throughput(args.tasks, args.workers, args.procs, group_commit=4096, fsync=False)
        print("ours (group commit):            ", json.dumps(ours))
        check_durable(ours)
        full = run_throughput(args.tasks, args.workers, args.procs, group_commit=4096, fsync=True)
        print("ours, synchronous=FULL (--fsync):", json.dumps(full))
        check_durable(full)
        print(f"throughput: {ours['tasks_per_s']:.0f} tasks/s vs baseline {base['tasks_per_s']:.0f} tasks/s "
              f"= {ours['tasks_per_s'] / base['tasks_per_s']:.1f}x (target >= 5000 with {args.workers} workers); "
              f"with fsync {full['tasks_per_s']:.0f} tasks/s")
    if args.what in ("heartbeat", "all"):
        hb = run_heartbeat(args.hb_workers, args.procs, args.seconds)
        print("heartbeat:", json.dumps(hb))
        print(f"heartbeat load: {hb['workers']} idle workers -> broker CPU {hb['broker_cpu_pct']}% "
              f"(idle {hb['idle_broker_cpu_pct']}%), probe p50 {hb['rtt_ms_loaded']['p50']} ms vs idle "
              f"{hb['rtt_ms_idle']['p50']} ms = {hb['rtt_ms_loaded']['p50'] / hb['rtt_ms_idle']['p50']:.1f}x, "
              f"p99 {hb['rtt_ms_loaded']['p99']} ms; {hb['alive_at_end']} of {hb['workers']} still registered")


if __name__ == "__main__":
    main()
