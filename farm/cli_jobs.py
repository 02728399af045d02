"""`farm submit`, `farm status`, `farm cancel`, `farm retry`: requests to a running broker.

A broker that answers ERROR, or not at all, ends the command with `error: ...` and exit code 1;
a SUBMIT the broker refuses (bad input, a changed spec) with exit code 2.
"""
from __future__ import annotations

import json
import os
import time

import click

from .cli_errors import fail
from .cli_options import (
    DEFAULT_ADDR, check_range, job_options, peer_options, reply_option, resolve_inputs, resolve_spec, spec_change,
    spec_change_options, spec_options,
)
from .protocol import caption_model_key
from .sources import get_source
from .slurm import slurm_label


def _client(connect, curve_keys, key_name="client", reply_timeout=10.0):
    from .client import Client

    check_range("--reply-timeout", reply_timeout, 0.1)
    return Client(connect, curve_keys=curve_keys, key_name=key_name, timeout_s=reply_timeout)


def _request(connect, curve_keys, key_name, reply_timeout, call, refused_code: int = 1) -> dict:
    """`call(client)`'s reply; a ClientError ends the command (exit 1; an ERROR answer: refused_code)."""
    from .client import ClientError, Refused

    try:
        with _client(connect, curve_keys, key_name, reply_timeout=reply_timeout) as c:
            return call(c)
    except Refused as exc:
        fail(exc, code=refused_code)
    except ClientError as exc:
        fail(exc, code=1)


@click.command("submit")
@click.argument("paths", nargs=-1, required=True, metavar="ASSET_OR_DIR...")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder (OUT).")
@spec_options
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--caption/--no-caption", default=False, show_default=True, help="Queue caption work after each render.")
@click.option("--caption-model", default=None, metavar="ID_OR_PATH",
              help="Only a `captioner serve --model` of this hub id or folder (matched by absolute path) "
                   "captions the job; others leave it queued. Default: any captioner.")
@click.option("--connect", default=DEFAULT_ADDR, show_default=True)
@peer_options
@reply_option
@click.option("--json", "as_json", is_flag=True, help="Print the reply as JSON.")
@spec_change_options
def submit_cmd(paths, out, preset, spec_file, views, resolution, samples, engine, source, categories, limit,
               max_per_category, timeout_s, max_attempts, quality, priority, caption, caption_model, connect,
               curve_keys, key_name, reply_timeout, as_json, rerender, add_views):
    """Submit a job to a running broker.

    Objects of OUT rendered with another spec are refused (exit 2, naming the fields that differ)
    unless --rerender or --add-views says how to go on. Exit codes: 0 submitted, 2 bad usage or
    input (or refused by the broker), 1 no answer from the broker.
    """
    change = spec_change(rerender, add_views)
    spec = resolve_spec(preset, spec_file, views, resolution, samples, engine, source)
    options = job_options(views, timeout_s, max_attempts, quality)
    assets = resolve_inputs(paths, source, categories, limit, max_per_category)
    out_root = os.path.abspath(out)
    job = {"name": os.path.basename(out_root) or "job", "out_root": out_root,
           "spec": spec.to_dict() if get_source(source).needs_spec else None, "priority": priority,
           "max_attempts": max_attempts, "caption": caption, "caption_model": caption_model_key(caption_model),
           "options": options,
           "spec_change": change}
    if timeout_s is not None:
        job["timeout_s"] = float(timeout_s)
    reply = _request(connect, curve_keys, key_name, reply_timeout,
                     lambda c: c.submit(job, [a.to_dict() for a in assets]), refused_code=2)
    if as_json:
        click.echo(json.dumps(reply))
    else:
        click.echo(f"job {reply['job_id']}: {reply['objects']} objects, {reply['queued']} queued, "
                   f"{reply['skipped']} already done")
    return 0


@click.command("status")
@click.argument("job", required=False)
@click.option("--connect", default=DEFAULT_ADDR, show_default=True)
@peer_options
@reply_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(job, connect, curve_keys, key_name, reply_timeout, as_json):
    """Show jobs (or one JOB) and workers."""
    reply = _request(connect, curve_keys, key_name, reply_timeout, lambda c: c.status(job))
    if as_json:
        click.echo(json.dumps({"jobs": reply["jobs"], "workers": reply.get("workers", [])}, indent=2))
        return 0
    click.echo(format_status(reply["jobs"], reply.get("workers", []), detail=job is not None))
    return 0


def format_status(jobs: list[dict], workers: list[dict], detail: bool = False) -> str:
    lines = [f"{'JOB':12}  {'STATE':9} {'QUEUED':>6} {'RUN':>4} {'DONE':>6} {'FAILED':>6} {'VIEWS':>7} "
             f"{'CAPTIONS':>9}  {'AGE':>6}  OUT"]
    now = time.time()
    for j in jobs:
        r, c = j["render"], j["caption_tasks"]
        caps = f"{c.get('done', 0)}/{sum(c.values())}" if j["caption"] else "-"
        age = _age(now - j["created"])
        lines.append(f"{j['job_id']:12}  {j['state']:9} {r.get('queued', 0):>6} {r.get('leased', 0):>4} "
                     f"{r.get('done', 0):>6} {r.get('failed', 0) + r.get('canceled', 0):>6} "
                     f"{j['views_done'] + j.get('views_in_flight', 0):>7} {caps:>9}  {age:>6}  {j['out_root']}")
        if detail:
            for f in j.get("failures", []):
                what = "captioning " if f.get("queue") == "caption" else ""
                lines.append(f"    failed {what}{f['uid']} (obj_id {f['obj_id']}): {f['error']}")
    if not jobs:
        lines.append("(no jobs)")
    lines.append("")
    lines.append(f"{len(workers)} worker(s)")
    for w in workers:
        task = f"task {w['task_id']} ({w['progress'][0]}/{w['progress'][1]} views)" if w.get("task_id") else "idle"
        blocked = f", blocked from {', '.join(w['blocked_jobs'])}" if w.get("blocked_jobs") else ""
        slurm = f"  ({slurm_label(w['slurm'])})" if w.get("slurm") else ""
        lines.append(f"  {w['worker']:24} {w['device']:4} {task}{blocked}{slurm}")
    return "\n".join(lines)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def _job_command(name: str, doc: str):
    """`farm cancel JOB` and `farm retry JOB`: one request, one line of answer."""

    @click.command(name, help=doc)
    @click.argument("job")
    @click.option("--connect", default=DEFAULT_ADDR, show_default=True)
    @peer_options
    @reply_option
    def command(job, connect, curve_keys, key_name, reply_timeout):
        reply = _request(connect, curve_keys, key_name, reply_timeout, lambda c: getattr(c, name)(job))
        click.echo(f"job {job}: {reply.get('detail')}")
        return 0

    return command


cancel_cmd = _job_command("cancel", "Cancel a job: queued tasks stop, running ones are called back.")
retry_cmd = _job_command("retry", "Queue a job's failed and canceled tasks again with a fresh attempt budget.")
JOB_COMMANDS = (submit_cmd, status_cmd, cancel_cmd, retry_cmd)
