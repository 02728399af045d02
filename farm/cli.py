"""The `farm` command line (click). Contract: docs in ../shared/design/architecture.md section 4.

User mistakes print one line `error: ...` and exit 2, with no traceback.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time

import click

from blender_addon.rig.errors import one_line

from .layout import LayoutError

DEFAULT_ADDR = "tcp://127.0.0.1:5555"
EXIT_USAGE = 2


class UsageProblem(ValueError):
    """Bad command-line input that click itself does not catch."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from blender_addon.rig.spec import SpecError

    from .keys import CurveKeyError
    from .local import LocalError
    from .sources import SourceError
    from .store import StoreError

    return (SpecError, SourceError, LayoutError, LocalError, CurveKeyError, StoreError, UsageProblem)


class FarmGroup(click.Group):
    """Maps user mistakes to `error: ...` + exit 2, and a command's return value to the exit code."""

    def main(self, args=None, prog_name=None, **extra):  # noqa: D401
        try:
            rv = super().main(args=args, prog_name=prog_name or "farm", standalone_mode=False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(EXIT_USAGE)
        except click.UsageError as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(EXIT_USAGE)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except _user_errors() as exc:
            click.echo(f"error: {one_line(exc, 1000)}", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


def _client_error(exc: Exception) -> None:
    click.echo(f"error: {one_line(exc, 1000)}", err=True)
    sys.exit(1)


@click.group(cls=FarmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """MVCap render farm: a ZeroMQ broker with a durable SQLite store, bpy workers, and `farm render`."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


# --- shared option helpers -------------------------------------------------------------------------
def _check_range(name: str, value, lo, hi=None):
    if value is None:
        return None
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise UsageProblem(f"{name}: {value} is out of range; must be {bound}")
    return value


def resolve_spec(preset: str | None, spec_file: str | None, views=None, resolution=None, samples=None,
                 engine=None):
    """The ViewSpec from --preset or --spec (default preset: mvcap), with the overrides applied."""
    from blender_addon.rig.spec import SpecError, ViewSpec, load_spec

    if preset and spec_file:
        raise UsageProblem("--preset and --spec: give one, not both")
    _check_range("--views", views, 1, 100000)
    _check_range("--resolution", resolution, 8, 16384)
    _check_range("--samples", samples, 1, 65536)
    if spec_file:
        spec = load_spec(spec_file)
    else:
        try:
            from blender_addon.rig.presets import load_preset
        except ImportError:  # pragma: no cover - the rig always ships presets
            if preset:
                raise SpecError(f"preset: {preset!r} is unknown (no presets installed)") from None
            spec = ViewSpec()
        else:
            spec = load_preset(preset or "mvcap")
    return spec.with_overrides(views=views, resolution=resolution, samples=samples, engine=engine)


def _assets(paths, source, categories, limit=None, max_per_category=None):
    from .sources import resolve_assets

    opts = {k: v for k, v in (("limit", limit), ("max_per_category", max_per_category)) if v is not None}
    assets = resolve_assets(source, list(paths), categories, **opts)
    if not assets:
        raise UsageProblem(f"no assets found under {', '.join(paths)}")
    return assets


_spec_options = [
    click.option("--preset", default=None, help="A named spec (default: mvcap). See blender_addon/rig/presets."),
    click.option("--spec", "spec_file", type=click.Path(dir_okay=False), default=None,
                 help="A spec JSON file (the add-on's export)."),
    click.option("--views", type=int, default=None, help="Views per object."),
    click.option("--resolution", type=int, default=None, metavar="PX", help="Square image side in pixels."),
    click.option("--samples", type=int, default=None, help="Render samples."),
    click.option("--engine", type=click.Choice(["cycles", "eevee"]), default=None, help="Render engine."),
    click.option("--source", type=click.Choice(["folder", "objaverse", "im3d", "mvimgnet"]), default="folder",
                 show_default=True, help="How to read the inputs."),
    click.option("--categories", type=click.Path(), default=None,
                 help="CSV uid,category or Objaverse-LVIS JSON {category: [uids]}."),
    click.option("--limit", type=int, default=None, help="Only the first N assets."),
    click.option("--max-per-category", type=int, default=None, help="Only the first N assets of each category."),
    click.option("--timeout", "timeout_s", type=float, default=None, metavar="S",
                 help="Per-object render timeout in seconds (default: the spec's render.timeout_s)."),
    click.option("--max-attempts", type=int, default=3, show_default=True, help="Attempts per object."),
]


def spec_options(func):
    for option in reversed(_spec_options):
        func = option(func)
    return func


def _curve_option(func):
    return click.option("--curve-keys", type=click.Path(file_okay=False), default=None,
                        help="CurveZMQ key folder from `farm keys DIR`: authenticate and encrypt.")(func)


def _reply_option(func):
    return click.option("--reply-timeout", type=float, default=10.0, show_default=True, metavar="S",
                        help="Seconds to wait for the broker's answer.")(func)


def _job_options(spec, views, timeout_s, max_attempts) -> dict:
    _check_range("--timeout", timeout_s, 0.001)
    _check_range("--max-attempts", max_attempts, 1, 100)
    return {"frames": views} if views else {}


# --- farm render -----------------------------------------------------------------------------------
@main.command("render")
@click.argument("paths", nargs=-1, required=True, metavar="ASSET_OR_DIR...")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder (OUT).")
@spec_options
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="Local worker processes.")
@click.option("--max-tasks", type=int, default=None, help="Recycle each render child after N objects.")
@click.option("--caption/--no-caption", default=False, show_default=True,
              help="Caption with `captioner serve` beside the workers.")
@click.option("--caption-model", default=None, metavar="ID_OR_PATH", help="The captioner's model.")
@click.option("--caption-preset", default=None, help="The captioner's preset (paper, fast, quality).")
@click.option("--no-progress", is_flag=True,
              help="No progress display (default: a bar on a terminal, else a line every 15 s).")
def render_cmd(paths, out, preset, spec_file, views, resolution, samples, engine, source, categories, limit,
               max_per_category, timeout_s, max_attempts, device, workers, max_tasks, caption, caption_model,
               caption_preset, no_progress):
    """Render (and optionally caption) assets locally: embedded broker, N workers, resume on rerun.

    Exit codes: 0 all done, 3 finished with failures, 2 bad usage or input, 130 interrupted.
    """
    from .local import LocalRun

    for handler in logging.getLogger().handlers:  # the broker logs to OUT/.farm/logs; keep the console tidy
        handler.setLevel(logging.WARNING)
    _check_range("--workers", workers, 1, 256)
    _check_range("--max-tasks", max_tasks, 1)
    spec = resolve_spec(preset, spec_file, views, resolution, samples, engine)
    options = _job_options(spec, views, timeout_s, max_attempts)
    assets = _assets(paths, source, categories, limit, max_per_category)
    worker_args = ["--max-tasks", str(max_tasks)] if max_tasks else []
    caption_args = ["--preset", caption_preset] if caption_preset else []
    run = LocalRun(out, workers=workers, device=device, caption=caption, caption_model=caption_model,
                   caption_args=caption_args, max_attempts=max_attempts, worker_args=worker_args,
                   progress=not no_progress and sys.stderr.isatty(),
                   progress_lines=not no_progress and not sys.stderr.isatty(),
                   heartbeat_s=float(os.environ["MVCAP_FARM_HEARTBEAT_S"]) if os.environ.get(
                       "MVCAP_FARM_HEARTBEAT_S") else None)
    # mvimgnet samples frames (options["frames"], default 30) instead of rendering the spec's views
    views_per = (views or 30) if source == "mvimgnet" else spec.view_count
    return run.run(assets, spec, timeout_s=timeout_s, options=options, views_per_object=views_per)


# --- broker / worker -------------------------------------------------------------------------------
@main.command("broker")
@click.option("--bind", default=DEFAULT_ADDR, show_default=True, help="ZeroMQ endpoint to bind.")
@click.option("--state", type=click.Path(dir_okay=False), default="farm-state.sqlite", show_default=True,
              help="The SQLite state file; restart on the same file to carry on.")
@_curve_option
@click.option("--fsync", is_flag=True, help="synchronous=FULL: also survive power loss (slower).")
@click.option("--heartbeat", type=float, default=None, hidden=True)
@click.option("--group-commit", type=int, default=None, hidden=True, help="Messages per transaction (benchmarks).")
@click.option("--blocklist-after", type=int, default=3, show_default=True,
              help="Worker-caused failures (on distinct tasks of one job) before that worker is "
                   "blocked from the job.")
def broker_cmd(bind, state, curve_keys, fsync, heartbeat, group_commit, blocklist_after):
    """Run the broker (ROUTER) in the foreground until Ctrl-C or SIGTERM."""
    import signal

    from .broker import Broker

    _check_range("--blocklist-after", blocklist_after, 1)
    _check_bind(bind, curve_keys)
    kwargs = {"heartbeat_s": heartbeat} if heartbeat else {}
    if group_commit:
        kwargs["group_commit"] = group_commit
    b = Broker(state, bind, curve_keys=curve_keys, fsync=fsync, blocklist_threshold=blocklist_after, **kwargs)
    b.open()
    signal.signal(signal.SIGTERM, lambda *_: b.stop())
    signal.signal(signal.SIGINT, lambda *_: b.stop())
    click.echo(f"broker listening on {b.endpoint} (state {state})", err=True)
    b.serve()
    return 0


def _check_bind(bind: str, curve_keys) -> None:
    host = bind.split("://", 1)[-1].rsplit(":", 1)[0]
    if bind.startswith("tcp://") and host not in ("127.0.0.1", "localhost", "[::1]") and not curve_keys:
        logging.getLogger("farm").warning(
            "binding %s without --curve-keys: anyone who can reach it can submit work", bind)


@main.command("worker")
@click.option("--connect", default=DEFAULT_ADDR, show_default=True, help="The broker's endpoint.")
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--gpu", type=int, default=None, help="Which GPU (sets CUDA_VISIBLE_DEVICES for the render child).")
@click.option("--max-tasks", type=int, default=100, show_default=True, help="Recycle the render child after N tasks.")
@click.option("--max-rss-mb", type=float, default=4096, show_default=True,
              help="Recycle the render child when its resident memory exceeds this.")
@click.option("--name", default=None, help="Worker name (default: host-pid).")
@click.option("--shared-storage/--no-shared-storage", default=True, show_default=True,
              help="Write into the shared OUT folder, or render into --scratch and stream files to the broker.")
@click.option("--scratch", type=click.Path(file_okay=False), default=None, help="Scratch folder (--no-shared-storage).")
@_curve_option
@click.option("--key-name", default="client", show_default=True, help="Which key pair in --curve-keys.")
@click.option("--exit-after", type=int, default=None, help="Exit after N tasks.")
@click.option("--heartbeat", type=float, default=None, hidden=True)
def worker_cmd(connect, device, gpu, max_tasks, max_rss_mb, name, shared_storage, scratch, curve_keys, key_name,
               exit_after, heartbeat):
    """Run a worker: lease tasks from the broker and render them in a supervised child process."""
    from .worker import Worker

    _check_range("--max-tasks", max_tasks, 1)
    _check_range("--max-rss-mb", max_rss_mb, 64)
    _check_range("--exit-after", exit_after, 1)
    kwargs = {"heartbeat_s": heartbeat} if heartbeat else {}
    if name is not None:
        from .layout import check_identifier

        check_identifier(name, "--name")
    w = Worker(connect, name=name, device=device, gpu=gpu, max_tasks=max_tasks, max_rss_mb=max_rss_mb,
               shared_storage=shared_storage, scratch=scratch, curve_keys=curve_keys, curve_name=key_name,
               exit_after=exit_after, **kwargs)
    return w.run()


# --- clients -------------------------------------------------------------------------------------
def _client(connect, curve_keys, key_name="client", reply_timeout=10.0):
    from .client import Client

    _check_range("--reply-timeout", reply_timeout, 0.1)
    return Client(connect, curve_keys=curve_keys, curve_name=key_name, timeout_s=reply_timeout)


@main.command("submit")
@click.argument("paths", nargs=-1, required=True, metavar="ASSET_OR_DIR...")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder (OUT).")
@spec_options
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--caption/--no-caption", default=False, show_default=True, help="Queue caption work after each render.")
@click.option("--caption-model", default=None, metavar="ID_OR_PATH")
@click.option("--connect", default=DEFAULT_ADDR, show_default=True)
@_curve_option
@_reply_option
@click.option("--json", "as_json", is_flag=True, help="Print the reply as JSON.")
def submit_cmd(paths, out, preset, spec_file, views, resolution, samples, engine, source, categories, limit,
               max_per_category, timeout_s, max_attempts, priority, caption, caption_model, connect, curve_keys,
               reply_timeout, as_json):
    """Submit a job to a running broker."""
    from .client import ClientError

    spec = resolve_spec(preset, spec_file, views, resolution, samples, engine)
    options = _job_options(spec, views, timeout_s, max_attempts)
    assets = _assets(paths, source, categories, limit, max_per_category)
    out_root = os.path.abspath(out)
    job = {"name": os.path.basename(out_root) or "job", "out_root": out_root,
           "spec": spec.to_dict() if source != "mvimgnet" else None, "priority": priority,
           "max_attempts": max_attempts, "caption": caption, "caption_model": caption_model, "options": options}
    if timeout_s is not None:
        job["timeout_s"] = float(timeout_s)
    try:
        with _client(connect, curve_keys, reply_timeout=reply_timeout) as c:
            reply = c.submit(job, [a.to_dict() for a in assets])
    except ClientError as exc:
        _client_error(exc)
    if as_json:
        click.echo(json.dumps(reply))
    else:
        click.echo(f"job {reply['job_id']}: {reply['objects']} objects, {reply['queued']} queued, "
                   f"{reply['skipped']} already done")
    return 0


@main.command("status")
@click.argument("job", required=False)
@click.option("--connect", default=DEFAULT_ADDR, show_default=True)
@_curve_option
@_reply_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(job, connect, curve_keys, reply_timeout, as_json):
    """Show jobs (or one JOB) and workers."""
    from .client import ClientError

    try:
        with _client(connect, curve_keys, reply_timeout=reply_timeout) as c:
            reply = c.status(job)
    except ClientError as exc:
        _client_error(exc)
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
                lines.append(f"    failed {f['uid']} (obj_id {f['obj_id']}): {f['error']}")
    if not jobs:
        lines.append("(no jobs)")
    lines.append("")
    lines.append(f"{len(workers)} worker(s)")
    for w in workers:
        task = f"task {w['task_id']} ({w['progress'][0]}/{w['progress'][1]} views)" if w.get("task_id") else "idle"
        blocked = f", blocked from {', '.join(w['blocked_jobs'])}" if w.get("blocked_jobs") else ""
        lines.append(f"  {w['worker']:24} {w['device']:4} {task}{blocked}")
    return "\n".join(lines)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def _job_command(name: str, doc: str):
    """`farm cancel JOB` and `farm retry JOB`: one request, one line of answer."""

    @main.command(name, help=doc)
    @click.argument("job")
    @click.option("--connect", default=DEFAULT_ADDR, show_default=True)
    @_curve_option
    @_reply_option
    def command(job, connect, curve_keys, reply_timeout):
        from .client import ClientError

        try:
            with _client(connect, curve_keys, reply_timeout=reply_timeout) as c:
                reply = getattr(c, name)(job)
        except ClientError as exc:
            _client_error(exc)
        click.echo(f"job {job}: {reply.get('detail')}")
        return 0

    return command


cancel_cmd = _job_command("cancel", "Cancel a job: queued tasks stop, running ones are called back.")
retry_cmd = _job_command("retry", "Queue a job's failed and canceled tasks again with a fresh attempt budget.")


@main.command("keys")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", default="client", show_default=True, help="Name of the peer key pair to create.")
def keys_cmd(directory, name):
    """Create CurveZMQ keys: the broker's pair, a peer pair, and DIR/authorized/ (admitted peers)."""
    from .keys import create_keys
    from .layout import check_identifier

    check_identifier(name, "--name")
    made = create_keys(directory, name)
    for who, path in made.items():
        click.echo(f"{who}: {path}")
    click.echo(f"the broker admits the public keys in {os.path.join(directory, 'authorized')}")
    return 0


# --- others' command groups ------------------------------------------------------------------------
try:
    from .dataset.cli import dataset as _dataset_group
except ImportError:  # the dataset tools are optional here
    _dataset_group = None
if _dataset_group is not None:
    main.add_command(_dataset_group, "dataset")


if __name__ == "__main__":  # pragma: no cover
    main()
