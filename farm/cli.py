"""The `farm` command line (click). Contract: docs in ../shared/design/architecture.md section 4.

User mistakes print one line `error: ...` and exit 2, with no traceback. The commands that talk to
a running broker (submit, status, cancel, retry) are in cli_jobs.py; shared options in cli_options.py.
"""
from __future__ import annotations

import logging
import os
import sys

import click

from blender_addon.contract.layout import LayoutError

from .cli_errors import OneLineErrorGroup
from .cli_jobs import JOB_COMMANDS
from .cli_options import DEFAULT_ADDR, UsageProblem, check_range, curve_option, job_options, peer_options, \
    resolve_inputs, resolve_spec, spec_change, spec_change_options, spec_options
from .dataset.cli import dataset as dataset_group
from .gpus import local_plan
from .slurm_cli import slurm_cmd
from .local_summary import EXIT_CODES
from .protocol import caption_model_key
from .sources import get_source


def _user_errors() -> tuple[type[BaseException], ...]:
    from blender_addon.rig.spec import SpecError

    from .broker.router import BrokerStartError
    from .keys import CurveKeyError
    from .local_processes import LocalError
    from .gpus import DeviceError
    from .slurm import SlurmError
    from .sources import SourceError
    from .store import StoreError

    return (SpecError, SourceError, LayoutError, LocalError, CurveKeyError, StoreError, UsageProblem, BrokerStartError,
            SlurmError, DeviceError)


@click.group(cls=OneLineErrorGroup, user_errors=_user_errors, prog_name="farm",
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """MVCap render farm: a ZeroMQ broker with a durable SQLite store, bpy workers, and `farm render`."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


# --- farm render -----------------------------------------------------------------------------------
@main.command("render", epilog=EXIT_CODES)
@click.argument("paths", nargs=-1, required=True, metavar="ASSET_OR_DIR...")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder (OUT).")
@spec_options
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--workers", default="auto", show_default=True, metavar="N|auto",
              help="Local worker processes. auto: on the CPU, as many render children and Cycles threads "
                   "each as keep every core busy for the image size and samples; on the GPU, --per-gpu "
                   "per visible GPU.")
@click.option("--per-gpu", type=int, default=1, show_default=True,
              help="With --device gpu: render children per GPU, each pinned to its GPU.")
@click.option("--max-tasks", type=int, default=None, help="Recycle each render child after N objects.")
@click.option("--caption/--no-caption", default=False, show_default=True,
              help="Caption with `captioner serve` beside the workers.")
@click.option("--caption-model", default=None, metavar="ID_OR_PATH",
              help="The captioner's model: a hub id (in the local Hugging Face cache) or a folder.")
@click.option("--caption-preset", default=None, help="The captioner's preset (paper, fast, quality).")
@click.option("--no-progress", is_flag=True,
              help="No progress display (default: a bar on a terminal, else a line every 15 s).")
@spec_change_options
def render_cmd(paths, out, preset, spec_file, views, resolution, samples, engine, source, categories, limit,
               max_per_category, timeout_s, max_attempts, quality, device, workers, per_gpu, max_tasks, caption,
               caption_model, caption_preset, no_progress, rerender, add_views):
    """Render (and optionally caption) assets locally: embedded broker, N workers, resume on rerun.

    Rerunning on the same OUT resumes: done objects are not rendered again (also after OUT was
    moved). Objects rendered with another spec are refused (exit 2, naming the fields that
    differ, nothing touched) unless --rerender or --add-views says how to go on.

    The summary counts failures, views with quality flags and categories taken from folder
    names; with --caption, captions that failed or could not be made, with the reason.
    """
    from .local_render import LocalRun

    for handler in logging.getLogger().handlers:  # the broker logs to OUT/.farm/logs; keep the console tidy
        handler.setLevel(logging.WARNING)
    check_range("--per-gpu", per_gpu, 1, 64)
    check_range("--max-tasks", max_tasks, 1)
    change = spec_change(rerender, add_views)
    spec = resolve_spec(preset, spec_file, views, resolution, samples, engine, source)
    options = job_options(views, timeout_s, max_attempts, quality)
    assets = resolve_inputs(paths, source, categories, limit, max_per_category)
    plan = local_plan(device, workers, per_gpu, spec.render.resolution_x, spec.render.samples, len(assets))
    worker_args = ["--max-tasks", str(max_tasks)] if max_tasks else []
    caption_args = ["--preset", caption_preset] if caption_preset else []
    click.echo(f"farm render: {plan.note}", err=True)
    run = LocalRun(out, workers=plan.workers, slot_args=plan.slot_args, device=device, caption=caption,
                   caption_model=caption_model_key(caption_model),
                   caption_args=caption_args, max_attempts=max_attempts, worker_args=worker_args,
                   progress=not no_progress and sys.stderr.isatty(),
                   progress_lines=not no_progress and not sys.stderr.isatty(),
                   heartbeat_s=float(os.environ["MVCAP_FARM_HEARTBEAT_S"]) if os.environ.get(
                       "MVCAP_FARM_HEARTBEAT_S") else None)
    views_per = get_source(source).views_per_object(spec.view_count, views)  # mvimgnet: frames, not views
    return run.run(assets, spec, timeout_s=timeout_s, options=options, views_per_object=views_per, spec_change=change)


# --- broker / worker -------------------------------------------------------------------------------
@main.command("broker")
@click.option("--bind", default=DEFAULT_ADDR, show_default=True,
              help="ZeroMQ endpoint to bind. One other machines can reach needs --curve-keys (or --insecure).")
@click.option("--state", type=click.Path(dir_okay=False), default="farm-state.sqlite", show_default=True,
              help="The SQLite state file; restart on the same file to carry on (one broker per file).")
@click.option("--out-root", "out_roots", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="A folder jobs may write in (repeatable): a SUBMIT whose OUT is not under one is refused. "
                   "Without any, every SUBMIT is refused.")
@curve_option
@click.option("--insecure", is_flag=True,
              help="No authentication at all: anyone who can reach --bind may submit and work. Without it "
                   "(and without --curve-keys) only this user's local clients get in, with a token.")
@click.option("--fsync", is_flag=True, help="synchronous=FULL: also survive power loss (slower).")
@click.option("--heartbeat", type=float, default=None, hidden=True)
@click.option("--group-commit", type=int, default=None, hidden=True, help="Messages per transaction (benchmarks).")
@click.option("--blocklist-after", type=int, default=3, show_default=True,
              help="Worker-caused failures (on distinct tasks of one job) before that worker is "
                   "blocked from the job.")
def broker_cmd(bind, state, out_roots, curve_keys, insecure, fsync, heartbeat, group_commit, blocklist_after):
    """Run the broker (ROUTER) in the foreground until Ctrl-C or SIGTERM.

    Local clients of the same user (farm submit/status, workers, the captioner, the add-on) find the
    broker's token by themselves; other users and other machines need --curve-keys.
    """
    import signal

    from .broker import Broker

    check_range("--blocklist-after", blocklist_after, 1)
    kwargs = {"heartbeat_s": heartbeat} if heartbeat else {}
    if group_commit:
        kwargs["group_commit"] = group_commit
    b = Broker(state, bind, curve_keys=curve_keys, insecure=insecure, out_roots=out_roots, fsync=fsync,
               blocklist_threshold=blocklist_after, **kwargs)
    b.open()
    signal.signal(signal.SIGTERM, lambda *_: b.stop())
    signal.signal(signal.SIGINT, lambda *_: b.stop())
    click.echo(f"broker listening on {b.endpoint} (state {state})", err=True)
    b.serve()
    return 0


@main.command("worker")
@click.option("--connect", default=DEFAULT_ADDR, show_default=True, help="The broker's endpoint.")
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--gpu", default=None, metavar="ID", help="One GPU for the render child (its CUDA_VISIBLE_DEVICES).")
@click.option("--gpus", default=None, metavar="all|0,2,3",
              help="With --device gpu: a worker per GPU slot, each render child pinned to its GPU (default: all).")
@click.option("--per-gpu", type=int, default=1, show_default=True, help="Render children per GPU (with --gpus).")
@click.option("--threads", type=int, default=None,
              help="Cycles CPU threads of the render child (default: Cycles' own, every core).")
@click.option("--max-tasks", type=int, default=100, show_default=True, help="Recycle the render child after N tasks.")
@click.option("--max-rss-mb", type=float, default=4096, show_default=True,
              help="Memory ceiling of the render child: during a task it is killed before it crosses this "
                   "(the asset fails with \"exceeded N MB\"); between tasks it is recycled above it.")
@click.option("--name", default=None, help="Worker name (default: host-pid).")
@click.option("--shared-storage/--no-shared-storage", default=True, show_default=True,
              help="Render into OUT/.farm/attempts/ (the broker moves finished files into place), or into "
                   "--scratch and stream the files to the broker.")
@click.option("--scratch", type=click.Path(file_okay=False), default=None,
              help="Scratch folder: streamed attempts and the render child's temporary files "
                   "(default: a farm-scratch-* folder in the system temp folder, removed at exit).")
@peer_options
@click.option("--exit-after", type=int, default=None, help="Exit after N tasks.")
@click.option("--exit-when-idle", type=float, default=None, metavar="S",
              help="Exit cleanly after S seconds without a task (batch jobs: frees the node when the work is done).")
@click.option("--heartbeat", type=float, default=None, hidden=True)
def worker_cmd(connect, device, gpu, gpus, per_gpu, threads, max_tasks, max_rss_mb, name, shared_storage, scratch,
               curve_keys, key_name, exit_after, exit_when_idle, heartbeat):
    """Run a worker: lease tasks from the broker and render them in a supervised child process."""
    from .worker import Worker

    check_range("--max-tasks", max_tasks, 1)
    check_range("--max-rss-mb", max_rss_mb, 64)
    check_range("--exit-after", exit_after, 1)
    check_range("--exit-when-idle", exit_when_idle, 0.1)
    check_range("--per-gpu", per_gpu, 1, 64)
    check_range("--threads", threads, 1, 4096)
    slots = _worker_slots(device, gpu, gpus, per_gpu)
    kwargs = {"heartbeat_s": heartbeat} if heartbeat else {}
    if name is not None:
        from blender_addon.contract.layout import check_identifier

        check_identifier(name, "--name")
    kwargs.update(connect=connect, device=device, threads=threads, max_tasks=max_tasks, max_rss_mb=max_rss_mb,
                  shared_storage=shared_storage, scratch=scratch, curve_keys=curve_keys, key_name=key_name,
                  exit_after=exit_after, exit_when_idle=exit_when_idle)
    if len(slots) > 1:
        from .worker_pool import WorkerPool

        return WorkerPool(slots, kwargs, base_name=name).run()
    w = Worker(name=name, gpu=slots[0].gpu if slots else None, **kwargs)
    return w.run()


def _worker_slots(device: str, gpu: str | None, gpus: str | None, per_gpu: int) -> list:
    """The GPU slots of `farm worker` (none on the CPU); DeviceError without a GPU."""
    from .gpus import gpu_slots, select_gpus

    if device != "gpu":
        if gpus or gpu is not None or per_gpu != 1:
            raise UsageProblem("--gpu, --gpus and --per-gpu need --device gpu")
        return []
    if gpu is not None and gpus:
        raise UsageProblem("--gpu and --gpus: give one, not both")
    return gpu_slots(select_gpus(gpus or (gpu if gpu is not None else "all")), per_gpu)


@main.command("keys")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", default="client", show_default=True,
              help="Name of the peer key pair to create: one for each worker machine, captioner and "
                   "submitter (the broker knows a worker as NAME:<worker name>).")
def keys_cmd(directory, name):
    """Create CurveZMQ keys: the broker's pair, a peer pair, and DIR/authorized/ (admitted peers).

    Secret key files are created readable by their owner only."""
    from .keys import create_keys

    made = create_keys(directory, name)  # refuses a reserved or unsafe name (one line, exit 2)
    for who, path in made.items():
        click.echo(f"{who}: {path}")
    click.echo(f"the broker admits the public keys in {os.path.join(directory, 'authorized')}")
    return 0


# --- the job commands and others' command groups -----------------------------------------------
for command in JOB_COMMANDS:
    main.add_command(command)
main.add_command(dataset_group, "dataset")
main.add_command(slurm_cmd, "slurm")


if __name__ == "__main__":  # pragma: no cover
    main()
