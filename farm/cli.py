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
from .cli_options import DEFAULT_ADDR, UsageProblem, check_range, curve_option, job_options, resolve_inputs, \
    resolve_spec, spec_options
from .dataset.cli import dataset as dataset_group
from .sources import get_source


def _user_errors() -> tuple[type[BaseException], ...]:
    from blender_addon.rig.spec import SpecError

    from .keys import CurveKeyError
    from .local_processes import LocalError
    from .sources import SourceError
    from .store import StoreError

    return (SpecError, SourceError, LayoutError, LocalError, CurveKeyError, StoreError, UsageProblem)


@click.group(cls=OneLineErrorGroup, user_errors=_user_errors, prog_name="farm",
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """MVCap render farm: a ZeroMQ broker with a durable SQLite store, bpy workers, and `farm render`."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


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
    from .local_render import LocalRun

    for handler in logging.getLogger().handlers:  # the broker logs to OUT/.farm/logs; keep the console tidy
        handler.setLevel(logging.WARNING)
    check_range("--workers", workers, 1, 256)
    check_range("--max-tasks", max_tasks, 1)
    spec = resolve_spec(preset, spec_file, views, resolution, samples, engine)
    options = job_options(views, timeout_s, max_attempts)
    assets = resolve_inputs(paths, source, categories, limit, max_per_category)
    worker_args = ["--max-tasks", str(max_tasks)] if max_tasks else []
    caption_args = ["--preset", caption_preset] if caption_preset else []
    run = LocalRun(out, workers=workers, device=device, caption=caption, caption_model=caption_model,
                   caption_args=caption_args, max_attempts=max_attempts, worker_args=worker_args,
                   progress=not no_progress and sys.stderr.isatty(),
                   progress_lines=not no_progress and not sys.stderr.isatty(),
                   heartbeat_s=float(os.environ["MVCAP_FARM_HEARTBEAT_S"]) if os.environ.get(
                       "MVCAP_FARM_HEARTBEAT_S") else None)
    views_per = get_source(source).views_per_object(spec.view_count, views)  # mvimgnet: frames, not views
    return run.run(assets, spec, timeout_s=timeout_s, options=options, views_per_object=views_per)


# --- broker / worker -------------------------------------------------------------------------------
@main.command("broker")
@click.option("--bind", default=DEFAULT_ADDR, show_default=True, help="ZeroMQ endpoint to bind.")
@click.option("--state", type=click.Path(dir_okay=False), default="farm-state.sqlite", show_default=True,
              help="The SQLite state file; restart on the same file to carry on.")
@curve_option
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

    check_range("--blocklist-after", blocklist_after, 1)
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
@curve_option
@click.option("--key-name", default="client", show_default=True, help="Which key pair in --curve-keys.")
@click.option("--exit-after", type=int, default=None, help="Exit after N tasks.")
@click.option("--heartbeat", type=float, default=None, hidden=True)
def worker_cmd(connect, device, gpu, max_tasks, max_rss_mb, name, shared_storage, scratch, curve_keys, key_name,
               exit_after, heartbeat):
    """Run a worker: lease tasks from the broker and render them in a supervised child process."""
    from .worker import Worker

    check_range("--max-tasks", max_tasks, 1)
    check_range("--max-rss-mb", max_rss_mb, 64)
    check_range("--exit-after", exit_after, 1)
    kwargs = {"heartbeat_s": heartbeat} if heartbeat else {}
    if name is not None:
        from blender_addon.contract.layout import check_identifier

        check_identifier(name, "--name")
    w = Worker(connect, name=name, device=device, gpu=gpu, max_tasks=max_tasks, max_rss_mb=max_rss_mb,
               shared_storage=shared_storage, scratch=scratch, curve_keys=curve_keys, curve_name=key_name,
               exit_after=exit_after, **kwargs)
    return w.run()


@main.command("keys")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", default="client", show_default=True, help="Name of the peer key pair to create.")
def keys_cmd(directory, name):
    """Create CurveZMQ keys: the broker's pair, a peer pair, and DIR/authorized/ (admitted peers)."""
    from .keys import create_keys
    from blender_addon.contract.layout import check_identifier

    check_identifier(name, "--name")
    made = create_keys(directory, name)
    for who, path in made.items():
        click.echo(f"{who}: {path}")
    click.echo(f"the broker admits the public keys in {os.path.join(directory, 'authorized')}")
    return 0


# --- the job commands and others' command groups -----------------------------------------------
for command in JOB_COMMANDS:
    main.add_command(command)
main.add_command(dataset_group, "dataset")


if __name__ == "__main__":  # pragma: no cover
    main()
