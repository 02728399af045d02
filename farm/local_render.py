"""`farm render`: the all-in-one local run.

An embedded broker (a thread, state in OUT/.farm/state.sqlite, bound to an ephemeral 127.0.0.1
port so two runs never clash), N local `farm worker` processes, optionally a `captioner serve`
beside them (local_processes.py), a progress bar, and a summary. Running the same command again
resumes: done objects keep their files and obj_ids and are not rendered again; failed ones get a
fresh try.

Exit codes and the summary: local_summary.py (EXIT_CODES).
"""
from __future__ import annotations

import fcntl
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path

from blender_addon.contract.layout import FARM_DIR

from .broker import Broker
from . import environment
from .client import Client, ClientError, Refused
from .local_processes import LocalError, LocalProcesses, captioner_command
from .local_summary import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, last_error_line, summarize
from .local_summary import say as _say
PROGRESS_LINE_S = 15.0  # without a terminal: one progress line this often


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
                 progress_lines: bool = False, heartbeat_s: float | None = None,
                 worker_command: list[str] | None = None, slot_args: list[list[str]] | None = None):
        self.out = Path(out).resolve()
        self.n_workers = workers
        self.caption = caption
        self.caption_model = caption_model
        self.max_attempts = max_attempts
        self.show_progress = progress
        self.progress_lines = progress_lines
        self.heartbeat_s = heartbeat_s
        self.farm_dir = self.out / FARM_DIR
        self.procs = LocalProcesses(
            self.farm_dir / "logs", workers=workers, device=device,
            # how to start a worker: `farm worker` on this Python, so it sees what `farm render` sees
            worker_command=worker_command or [sys.executable, "-m", "farm", "worker"],
            worker_args=worker_args or [], heartbeat_s=heartbeat_s, caption_model=caption_model,
            caption_args=caption_args or [], slot_args=slot_args or [])  # slot_args[i]: worker i's GPU or threads
        self.broker: Broker | None = None
        self.thread = None
        self.endpoint = ""
        self.out_rels: set[str] = set()
        self.captioner_log = self.farm_dir / "logs" / "captioner.log"
        self.captioner_log_start = 0  # where this run's captioner output begins in its log
        self.captioner_error: str | None = None  # why the captioner stopped, when it did
        self.stopped_by: str | None = None  # the environment error (a full disk) that ended the run

    def run(self, assets: list, spec, *, timeout_s: float | None = None, options: dict | None = None,
            views_per_object: int | None = None, spec_change: str | None = None) -> int:
        """Exit code; LocalError (exit 2) when the broker refuses the job (e.g. OUT's objects were
        rendered with another spec), with nothing in OUT touched."""
        if self.caption:
            captioner_command()  # fail before any work when it cannot run
        self.out.mkdir(parents=True, exist_ok=True)
        (self.farm_dir / "logs").mkdir(parents=True, exist_ok=True)
        lock = _lock(self.farm_dir)
        logging.raiseExceptions = False  # a log file on a full disk stays quiet: the summary says why
        # the broker's log is held back until the job is accepted: a refused rerun touches no file
        handler = HeldLog(self.farm_dir / "logs" / "broker.log")
        farm_log = logging.getLogger("farm")
        farm_log.addHandler(handler)
        farm_log.setLevel(logging.INFO)
        kwargs = {"heartbeat_s": self.heartbeat_s} if self.heartbeat_s else {}
        # its workers and captioner find the broker's token as any local client of this user does
        self.broker = Broker(self.farm_dir / "state.sqlite", "tcp://127.0.0.1:*", out_roots=[self.out], **kwargs)
        self.thread = self.broker.serve_in_thread()
        t0 = time.time()
        outcome = None
        try:
            self.endpoint = self.broker.wait_ready()
            job = {**self._job(spec, timeout_s, options), "spec_change": spec_change}
            views_per = views_per_object if views_per_object is not None else (spec.view_count if spec else 0)
            outcome = self._submit_and_watch(job, assets, views_per, handler)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop()
            farm_log.removeHandler(handler)
            handler.close()
            lock.close()
        if outcome is None:
            _say(f"interrupted after {time.time() - t0:.0f}s; run the same command again to resume")
            return EXIT_INTERRUPTED
        return self._summary(*outcome, time.time() - t0)

    def _job(self, spec, timeout_s: float | None, options: dict | None) -> dict:
        job = {"name": "farm render", "out_root": str(self.out), "spec": spec.to_dict() if spec else None,
               "max_attempts": self.max_attempts, "caption": self.caption,
               "caption_model": self.caption_model, "options": options or {}}
        if timeout_s is not None:
            job["timeout_s"] = float(timeout_s)
        return job

    def _submit_and_watch(self, job: dict, assets: list, views_per: int, log: "HeldLog") -> tuple[dict, dict]:
        """Submit, start the workers (and captioner), watch to the end: (final job status, SUBMITTED)."""
        with Client(self.endpoint, timeout_s=60) as client:
            try:
                submitted = client.submit(job, [a.to_dict() for a in assets])
            except Refused as exc:
                log.drop()
                raise LocalError(str(exc)) from None
            log.write_on()
            if submitted["skipped"]:
                _say(f"resuming: {submitted['skipped']} of {submitted['objects']} objects already done")
            if submitted["queued"]:
                self.procs.start_workers(self.endpoint, min(self.n_workers, submitted["queued"]))
            if self.caption:
                self.captioner_log_start = self.captioner_log.stat().st_size if self.captioner_log.exists() else 0
                self.procs.start_captioner(self.endpoint)
            self.out_rels = {a.out_rel for a in assets}
            return self._watch(client, submitted["job_id"], submitted, views_per), submitted

    def _stop(self) -> None:
        try:
            self.procs.stop()
        except KeyboardInterrupt:
            self.procs.kill_workers()
        self.broker.stop()
        self.thread.join(30)

    def _watch(self, client: Client, job_id: str, submitted: dict, views_per: int) -> dict:
        """Poll STATUS until the job is over; restart workers that exit meanwhile."""
        progress = Progress(submitted, views_per, self.caption, bar=self.show_progress, lines=self.progress_lines)
        captioner_dead = False
        try:
            while True:
                try:
                    job = client.status(job_id)["jobs"][0]
                except ClientError:
                    if not self.broker.storage_error:
                        raise
                    job = None  # the store could not record the STATUS round: a full disk
                self.stopped_by = self._environment_problem(job)
                if self.stopped_by:  # a full OUT will not empty itself: stop, and say so in one line
                    return job or {"render": {}, "caption_tasks": {}, "views_done": 0}
                render, caps = job["render"], job["caption_tasks"]
                progress.show(job)
                render_active = render.get("queued", 0) + render.get("leased", 0)
                if job["state"] in ("finished", "canceled"):
                    return job
                if not render_active and (captioner_dead or not self.caption):
                    return job
                self.procs.restart_exited_workers(render_active)
                code = self.procs.captioner_exit_code()
                if code is not None and not captioner_dead:
                    captioner_dead = True
                    self.captioner_error = last_error_line(self.captioner_log, self.captioner_log_start)
                    _say(f"captioner exited with code {code}: {self.captioner_error or 'no reason logged'} "
                         f"(log: {self.captioner_log}); rendering goes on without captions")
                time.sleep(0.25 if submitted["objects"] < 5000 else 1.0)  # STATUS costs more on big jobs
        finally:
            progress.close()

    def _environment_problem(self, job: dict | None) -> str | None:
        """A full disk (or another environment error) the store or a render ran into, or None."""
        if self.broker.storage_error:
            return self.broker.storage_error
        failures = (job or {}).get("failures") or []
        return next((f["error"] for f in failures if environment.stops_the_run(f.get("error"))), None)

    def _summary(self, job: dict, submitted: dict, elapsed: float) -> int:
        from .metadata import read_objects

        if self.stopped_by:
            done = job["render"].get("done", 0) + submitted["skipped"]
            _say(f"farm render: stopped after {elapsed:.0f}s, {done} of {submitted['objects']} objects done: "
                 f"{self.stopped_by.removeprefix(environment.PREFIX)}; make room, then run the same command "
                 f"again to resume")
            return EXIT_ENVIRONMENT
        objects = [o for o in read_objects(self.out) if o.get("out_rel") in self.out_rels]
        return summarize(self.out, job, submitted, elapsed, objects, caption=self.caption,
                         captioner_error=self.captioner_error)


class HeldLog(logging.handlers.MemoryHandler):
    """A log file whose records are held in memory until `write_on()` (or `close()`); after
    `drop()` they are forgotten and the file is not touched."""

    def __init__(self, path: Path):
        super().__init__(capacity=0, flushLevel=logging.CRITICAL + 1, flushOnClose=False)
        self.file = logging.FileHandler(path, delay=True)
        self.file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        self.dropped = False

    def shouldFlush(self, record) -> bool:
        return self.target is not None  # held until released, then every record goes straight on

    def emit(self, record) -> None:
        if not self.dropped:
            super().emit(record)

    def write_on(self) -> None:
        if not self.dropped:
            self.setTarget(self.file)
            self.flush()

    def drop(self) -> None:
        self.dropped = True
        with self.lock:
            self.buffer.clear()

    def close(self) -> None:
        self.write_on()
        super().close()
        self.file.close()


class Progress:
    """A tqdm bar of views on a terminal; else, with `lines`, a line every PROGRESS_LINE_S."""

    def __init__(self, submitted: dict, views_per: int, caption: bool, *, bar: bool, lines: bool):
        self.submitted = submitted
        self.caption = caption
        self.lines = lines
        self.bar = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(total=views_per * submitted["queued"] if views_per else None, unit="view",
                            desc="rendering", dynamic_ncols=True, smoothing=0.1, file=sys.stderr)
        self.shown = 0
        self.last_line = time.time()

    def show(self, job: dict) -> None:
        render, caps = job["render"], job["caption_tasks"]
        views = job["views_done"] + job.get("views_in_flight", 0)
        done = render.get("done", 0) + self.submitted["skipped"]
        if self.bar is not None:
            if views > self.shown:
                self.bar.update(views - self.shown)
                self.shown = views
            self.bar.set_postfix(done=done, failed=render.get("failed", 0), objects=self.submitted["objects"],
                                 **({"captioned": caps.get("done", 0)} if self.caption else {}), refresh=False)
        elif self.lines and time.time() - self.last_line >= PROGRESS_LINE_S:
            self.last_line = time.time()
            _say(f"progress: {done} of {self.submitted['objects']} objects"
                 f" done, {render.get('failed', 0)} failed, {views} views"
                 + (f", {caps.get('done', 0)} captioned" if self.caption else ""))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
