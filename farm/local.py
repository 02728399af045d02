"""`farm render`: the all-in-one local run.

An embedded broker (a thread, state in OUT/.farm/state.sqlite, bound to an ephemeral 127.0.0.1
port so two runs never clash), N local `farm worker` processes, optionally a `captioner serve`
beside them, a progress bar, and a summary. Running the same command again resumes: done objects
keep their files and obj_ids and are not rendered again; failed ones get a fresh try.

Exit codes: 0 every object done; 3 finished with failures; 2 bad usage or input; 130 interrupted.
"""
from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .broker import Broker
from .client import Client
from .layout import FARM_DIR

log = logging.getLogger("farm.local")

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 3, 2, 130


class LocalError(ValueError):
    """A problem with the run's input or environment; shown as one line, exit 2."""


def captioner_command() -> list[str]:
    """How to start `captioner serve` here, or LocalError when it is not installed."""
    exe = shutil.which("captioner")
    if exe:
        return [exe]
    if importlib.util.find_spec("captioner") is not None and importlib.util.find_spec("captioner.cli") is not None:
        return [sys.executable, "-m", "captioner"]
    raise LocalError("--caption: the `captioner` command is not available; install the captioner "
                     "(pip install -e '.[captioner]') or run with --no-caption")


def _die_with_us() -> None:
    """preexec_fn: the child gets SIGTERM if `farm render` dies without cleaning up (Linux)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


try:
    import ctypes

    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _PRCTL = None


def _lock(farm_dir: Path):
    fh = open(farm_dir / "lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise LocalError(f"{farm_dir.parent}: another `farm render` is using this output folder") from None
    return fh


class LocalRun:
    def __init__(self, out: str | os.PathLike, *, workers: int = 1, device: str = "cpu",
                 caption: bool = False, caption_model: str | None = None, caption_args: list[str] | None = None,
                 max_attempts: int = 3, worker_args: list[str] | None = None, progress: bool = True,
                 progress_lines: bool = False, heartbeat_s: float | None = None):
        self.out = Path(out).resolve()
        self.n_workers = workers
        self.device = device
        self.caption = caption
        self.caption_model = caption_model
        self.caption_args = caption_args or []
        self.max_attempts = max_attempts
        self.worker_args = worker_args or []
        self.show_progress = progress
        self.progress_lines = progress_lines
        self.heartbeat_s = heartbeat_s
        self.farm_dir = self.out / FARM_DIR
        self.procs: list[subprocess.Popen] = []
        self.captioner: subprocess.Popen | None = None
        self.broker: Broker | None = None
        self.thread = None
        self.endpoint = ""
        self.restarts = 0
        self.out_rels: set[str] = set()

    # --- processes ----------------------------------------------------------------------------
    def _spawn_worker(self, index: int) -> subprocess.Popen:
        logs = self.farm_dir / "logs"
        cmd = [sys.executable, "-m", "farm", "worker", "--connect", self.endpoint, "--device", self.device,
               "--name", f"local-{os.getpid()}-{index}", *self.worker_args]
        if self.heartbeat_s:
            cmd += ["--heartbeat", str(self.heartbeat_s)]
        fh = open(logs / f"worker-{index}.log", "ab")
        try:
            return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=_child_env(), preexec_fn=_die_with_us)
        finally:
            fh.close()

    def _spawn_captioner(self) -> subprocess.Popen:
        cmd = captioner_command() + ["serve", "--connect", self.endpoint]
        if self.caption_model:
            cmd += ["--model", self.caption_model]
        cmd += self.caption_args
        fh = open(self.farm_dir / "logs" / "captioner.log", "ab")
        try:
            return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=_child_env(), preexec_fn=_die_with_us)
        finally:
            fh.close()

    def _stop_procs(self) -> None:
        procs = self.procs + ([self.captioner] if self.captioner else [])
        for p in procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 15
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    # --- the run ------------------------------------------------------------------------------
    def run(self, assets: list, spec, *, timeout_s: float | None = None, options: dict | None = None,
            views_per_object: int | None = None) -> int:
        if self.caption:
            captioner_command()  # fail before any work when it cannot run
        self.out.mkdir(parents=True, exist_ok=True)
        (self.farm_dir / "logs").mkdir(parents=True, exist_ok=True)
        lock = _lock(self.farm_dir)
        handler = logging.FileHandler(self.farm_dir / "logs" / "broker.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        farm_log = logging.getLogger("farm")
        farm_log.addHandler(handler)
        farm_log.setLevel(logging.INFO)
        kwargs = {"heartbeat_s": self.heartbeat_s} if self.heartbeat_s else {}
        self.broker = Broker(self.farm_dir / "state.sqlite", "tcp://127.0.0.1:*", **kwargs)
        self.thread = self.broker.serve_in_thread()
        t0 = time.time()
        interrupted = False
        try:
            self.endpoint = self.broker.wait_ready()
            with Client(self.endpoint, timeout_s=60) as client:
                job = {"name": "farm render", "out_root": str(self.out), "spec": spec.to_dict() if spec else None,
                       "max_attempts": self.max_attempts, "caption": self.caption,
                       "caption_model": self.caption_model, "options": options or {}}
                if timeout_s is not None:
                    job["timeout_s"] = float(timeout_s)
                submitted = client.submit(job, [a.to_dict() for a in assets])
                job_id = submitted["job_id"]
                n_objects = submitted["objects"]
                if submitted["skipped"]:
                    _say(f"resuming: {submitted['skipped']} of {n_objects} objects already done")
                if submitted["queued"]:
                    for i in range(min(self.n_workers, submitted["queued"])):
                        self.procs.append(self._spawn_worker(i))
                if self.caption:
                    self.captioner = self._spawn_captioner()
                self.out_rels = {a.out_rel for a in assets}
                views_per = views_per_object if views_per_object is not None else (spec.view_count if spec else 0)
                status = self._watch(client, job_id, submitted, views_per)
        except KeyboardInterrupt:
            interrupted = True
            status = None
        finally:
            try:
                self._stop_procs()
            except KeyboardInterrupt:
                for p in self.procs:
                    p.kill()
            self.broker.stop()
            self.thread.join(30)
            farm_log.removeHandler(handler)
            handler.close()
            lock.close()
        if interrupted or status is None:
            _say(f"interrupted after {time.time() - t0:.0f}s; run the same command again to resume")
            return EXIT_INTERRUPTED
        return self._summary(status, submitted, time.time() - t0)

    def _watch(self, client: Client, job_id: str, submitted: dict, views_per: int) -> dict:
        total_views = views_per * submitted["queued"] if views_per else None
        bar = None
        if self.show_progress:
            from tqdm import tqdm

            bar = tqdm(total=total_views, unit="view", desc="rendering", dynamic_ncols=True, smoothing=0.1,
                       file=sys.stderr)
        shown = 0
        last_line = time.time()
        captioner_dead = False
        try:
            while True:
                reply = client.status(job_id)
                job = reply["jobs"][0]
                render, caps = job["render"], job["caption_tasks"]
                views = job["views_done"] + job.get("views_in_flight", 0)
                if bar is not None:
                    if views > shown:
                        bar.update(views - shown)
                        shown = views
                    bar.set_postfix(done=render.get("done", 0) + submitted["skipped"],
                                    failed=render.get("failed", 0), objects=submitted["objects"],
                                    **({"captioned": caps.get("done", 0)} if self.caption else {}), refresh=False)
                elif self.progress_lines and time.time() - last_line >= 15:
                    last_line = time.time()
                    _say(f"progress: {render.get('done', 0) + submitted['skipped']} of {submitted['objects']} objects"
                         f" done, {render.get('failed', 0)} failed, {views} views"
                         + (f", {caps.get('done', 0)} captioned" if self.caption else ""))
                render_active = render.get("queued", 0) + render.get("leased", 0)
                caption_active = caps.get("queued", 0) + caps.get("leased", 0)
                if job["state"] in ("finished", "canceled"):
                    return job
                if not render_active and (captioner_dead or not self.caption):
                    return job
                self._check_workers(render_active)
                if self.captioner is not None and self.captioner.poll() is not None and not captioner_dead:
                    captioner_dead = True
                    _say(f"captioner exited with code {self.captioner.returncode} "
                         f"(see {self.farm_dir / 'logs' / 'captioner.log'}); "
                         f"{caption_active} objects wait for captions")
                time.sleep(0.25 if submitted["objects"] < 5000 else 1.0)  # STATUS costs more on big jobs
        finally:
            if bar is not None:
                bar.close()

    def _check_workers(self, render_active: int) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None and render_active:
                self.restarts += 1
                if self.restarts > 3 * max(1, self.n_workers) + 3:
                    raise LocalError(f"workers keep exiting (last code {p.returncode}); see {self.farm_dir / 'logs'}")
                log.warning("worker %d exited with code %s; starting it again", i, p.returncode)
                self.procs[i] = self._spawn_worker(i)

    def _summary(self, job: dict, submitted: dict, elapsed: float) -> int:
        from .metadata import read_objects

        render, caps = job["render"], job["caption_tasks"]
        done = render.get("done", 0) + submitted["skipped"]
        failed = render.get("failed", 0) + render.get("canceled", 0)
        views = job["views_done"]
        rate = views / elapsed if elapsed > 0 else 0.0
        _say(f"farm render: {done} of {submitted['objects']} objects done, {failed} failed, "
             f"{views} views rendered in {elapsed:.1f}s ({rate:.2f} views/s) -> {self.out}")
        objects = {o["obj_id"]: o for o in read_objects(self.out)}
        fails = [o for o in objects.values() if o.get("status") == "failed" and o.get("out_rel") in self.out_rels]
        for o in fails[:10]:
            _say(f"  failed: {o['uid']} (obj_id {o['obj_id']}): {o.get('error')}")
        if len(fails) > 10:
            _say(f"  ... and {len(fails) - 10} more in {self.out / 'objects.jsonl'}")
        cap_failed = caps.get("failed", 0)
        cap_pending = caps.get("queued", 0) + caps.get("leased", 0)
        if self.caption:
            _say(f"captions: {caps.get('done', 0)} objects captioned, {cap_failed} failed, {cap_pending} pending")
        return EXIT_FAILURES if (failed or cap_failed or cap_pending) else EXIT_OK


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _child_env() -> dict:
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
