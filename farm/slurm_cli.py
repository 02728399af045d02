"""`farm slurm`: write and submit the sbatch script of farm/slurm.py."""
from __future__ import annotations

import time
from pathlib import Path

import click

from .cli_options import check_range, curve_option
from .slurm import SlurmJob, loopback_warning, sbatch_script, submit


@click.command("slurm")
@click.option("--connect", required=True, metavar="ADDR",
              help="The broker's endpoint as the compute nodes reach it (tcp://HOST:PORT).")
@click.option("--nodes", type=int, default=1, show_default=True, help="Array tasks: one worker node each.")
@click.option("--gpus-per-node", type=int, default=0, show_default=True,
              help="GPUs per node (--gres=gpu:G); 0 renders on the CPU.")
@click.option("--per-gpu", type=int, default=1, show_default=True, help="Render children per GPU.")
@click.option("--partition", default=None, help="Slurm partition.")
@click.option("--time", "time_limit", default=None, metavar="MIN", help="Time limit per task (MIN or HH:MM:SS).")
@click.option("--account", default=None, help="Slurm account to charge.")
@click.option("--extra", multiple=True, metavar="SBATCH_LINE",
              help="An extra sbatch option, e.g. --extra --mem=32G (repeatable).")
@curve_option
@click.option("--key-name", default="client", show_default=True, help="Which key pair in --curve-keys.")
@click.option("--exit-when-idle", type=float, default=120, show_default=True, metavar="S",
              help="A worker exits (and frees its node) after this many seconds without work.")
@click.option("--job-name", default="mvcap-farm", show_default=True, help="The Slurm job name.")
@click.option("--log-dir", default="slurm-logs", show_default=True, type=click.Path(file_okay=False),
              help="Where each task's log goes (on the shared file system).")
@click.option("--script", "script_path", default=None, type=click.Path(dir_okay=False),
              help="Where to write the script (default: LOG_DIR/JOB_NAME-<time>.sbatch).")
@click.option("--dry-run", is_flag=True, help="Print the script; submit nothing.")
def slurm_cmd(connect, nodes, gpus_per_node, per_gpu, partition, time_limit, account, extra, curve_keys, key_name,
              exit_when_idle, job_name, log_dir, script_path, dry_run):
    """Submit an sbatch array of `farm worker`s that render a running broker's jobs.

    Start a broker the nodes can reach (`farm broker --bind tcp://0.0.0.0:5555 --curve-keys DIR`),
    submit work to it (`farm submit`), then run this. The workers exit once the broker has had no
    work for them for --exit-when-idle seconds; a preempted or requeued task gives its object back.
    CurveZMQ keys stay in DIR on the shared file system: the script names the folder, never a key.
    """
    check_range("--nodes", nodes, 1, 10000)
    check_range("--gpus-per-node", gpus_per_node, 0, 64)
    check_range("--per-gpu", per_gpu, 1, 64)
    check_range("--exit-when-idle", exit_when_idle, 1)
    if curve_keys and not Path(curve_keys, "authorized").is_dir():
        from .keys import CurveKeyError

        raise CurveKeyError(f"--curve-keys: {curve_keys} is not a key folder made by `farm keys`")
    job = SlurmJob(connect=connect, nodes=nodes, gpus_per_node=gpus_per_node, per_gpu=per_gpu, partition=partition,
                   time_limit=time_limit, account=account, extra=list(extra), curve_keys=curve_keys,
                   key_name=key_name, exit_when_idle=exit_when_idle, job_name=job_name, log_dir=log_dir)
    script = sbatch_script(job)
    warning = loopback_warning(job, script)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if dry_run:
        click.echo(script, nl=False)
        return 0
    path = Path(script_path or Path(log_dir) / f"{job_name}-{time.strftime('%Y%m%d-%H%M%S')}.sbatch")
    job_id = submit(script, path)
    click.echo(f"submitted Slurm job {job_id}: {nodes} array task(s) running `farm worker --connect {connect}` "
               f"(script {path}; logs in {Path(log_dir).resolve()})")
    return 0
