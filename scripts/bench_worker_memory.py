#!/usr/bin/env python
"""Worker memory across many small renders: the render child is recycled (ours) or never (baseline).

A real `farm worker` renders N tiny tasks (the bundled test GLBs in turn, 1 view, 32 px, 1 sample)
from an in-process broker. The render child's resident memory is sampled from /proc as tasks
complete. Baseline: --max-tasks larger than N (one child keeps everything it ever loaded). Ours:
--max-tasks M (default 50): the child is replaced every M tasks, so memory stays flat.

  python scripts/bench_worker_memory.py [--assets 500] [--max-tasks 50] [--skip-baseline]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_common import run_header  # noqa: E402
from farm.broker import Broker  # noqa: E402
from farm.client import Client  # noqa: E402
from farm.render_child import read_rss_mb  # noqa: E402
from farm.sources import resolve_assets  # noqa: E402

SHARED = Path(os.environ.get("MVCAP_SHARED", REPO.parent / "shared"))


def children(pid: int) -> list[int]:
    """The worker's render children (not multiprocessing's resource tracker)."""
    try:
        kids = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    out = []
    for k in kids:
        try:
            if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes():
                out.append(k)
        except OSError:
            pass
    return out


def run(n: int, max_tasks: int, glbs: list[Path]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        tmp = Path(tmp)
        src = tmp / "assets"
        src.mkdir()
        for i in range(n):
            glb = glbs[i % len(glbs)]
            os.symlink(glb, src / f"a{i:04d}_{glb.stem}.glb")
        assets = resolve_assets("folder", [str(src)])
        broker = Broker(tmp / "state.sqlite", "tcp://127.0.0.1:*", out_roots=[tmp])
        thread = broker.serve_in_thread()
        ep = broker.wait_ready()
        spec = {"camera": {"num_views": 1}, "render": {"resolution_x": 32, "resolution_y": 32, "samples": 1}}
        with Client(ep, timeout_s=60) as c:
            job_id = c.submit({"name": "mem", "out_root": str(tmp / "out"), "spec": spec},
                              [a.to_dict() for a in assets])["job_id"]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        worker = subprocess.Popen([sys.executable, "-m", "farm", "worker", "--connect", ep, "--max-tasks",
                                   str(max_tasks), "--max-rss-mb", "100000", "--name", "mem"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = []  # (tasks done, child rss MB)
        t0 = time.time()
        child_pids = set()
        try:
            while True:
                done = broker.stats["completed"] + broker.stats["failed"]
                kids = children(worker.pid)
                child_pids.update(kids)
                rss = sum(read_rss_mb(k) for k in kids)
                if kids and rss:
                    samples.append((done, rss))
                if done >= n:
                    break
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited with {worker.returncode}")
                time.sleep(0.2)
            elapsed = time.time() - t0
            with Client(ep, timeout_s=30) as c:
                job = c.status(job_id)["jobs"][0]
        finally:
            worker.terminate()
            worker.wait(30)
            broker.stop()
            thread.join(30)
    def at(frac: float) -> float:
        target = frac * n
        vals = [r for d, r in samples if d <= target]
        return round(max(vals[-5:]) if vals else 0.0, 1)

    steady = [r for d, r in samples if d >= n * 0.1]
    return {"tasks": n, "max_tasks": max_tasks, "elapsed_s": round(elapsed, 1), "done": job["render"].get("done", 0),
            "failed": job["render"].get("failed", 0), "children": len(child_pids),
            "rss_mb_at_10pct": at(0.1), "rss_mb_at_50pct": at(0.5), "rss_mb_at_end": at(1.0),
            "rss_mb_max_after_10pct": round(max(steady), 1) if steady else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=500)
    ap.add_argument("--max-tasks", type=int, default=50)
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    glbs = sorted((SHARED / "assets" / "glb").glob("*.glb"))
    if not glbs:
        sys.exit(f"no test assets under {SHARED / 'assets' / 'glb'} (set MVCAP_SHARED)")
    print(run_header())
    print(f"assets: {[g.name for g in glbs]}")
    ours = run(args.assets, args.max_tasks, glbs)
    print("ours (recycled):   ", json.dumps(ours))
    if not args.skip_baseline:
        base = run(args.assets, args.assets + 1, glbs)
        print("baseline (never):  ", json.dumps(base))
        growth_b = base["rss_mb_at_end"] - base["rss_mb_at_10pct"]
        growth_o = ours["rss_mb_at_end"] - ours["rss_mb_at_10pct"]
        print(f"child RSS growth from 10% to 100% of {args.assets} tasks: baseline {growth_b:+.1f} MB "
              f"(peak {base['rss_mb_max_after_10pct']} MB), ours {growth_o:+.1f} MB "
              f"(peak {ours['rss_mb_max_after_10pct']} MB, {ours['children']} children); "
              f"peak ratio baseline/ours "
              f"{base['rss_mb_max_after_10pct'] / max(1e-9, ours['rss_mb_max_after_10pct']):.2f}x")


if __name__ == "__main__":
    main()
