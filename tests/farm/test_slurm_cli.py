"""`farm slurm` warns about a loopback --connect when the array's workers can run on other nodes
(they could not reach the broker; on a one-node cluster they can, so the script is still written),
and says nothing for a routable address or when every worker runs on one node. No cluster needed:
--dry-run prints the script sbatch would get."""
from __future__ import annotations

import pytest

from farm.slurm import array_tasks

from .conftest import farm

LOOPBACK = ("tcp://127.0.0.1:5555", "tcp://127.3.4.5:5555", "tcp://localhost:5555", "tcp://[::1]:5555")


def slurm(*args: str):
    return farm("slurm", "--dry-run", *args, timeout=60)


@pytest.mark.parametrize("connect, args", [
    (LOOPBACK[0], ["--nodes", "2"]),
    (LOOPBACK[1], ["--nodes", "8"]),
    (LOOPBACK[2], ["--nodes", "3", "--extra", "--nodelist=n[1-2]"]),  # pinned, but to two nodes
    (LOOPBACK[3], ["--extra", "--array=0-3"]),  # --nodes 1, but the array sbatch gets has four tasks
])
def test_a_loopback_broker_is_warned_about_when_workers_can_land_on_other_nodes(connect, args):
    done = slurm("--connect", connect, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("exec ")
    assert done.stderr == (
        f"warning: --connect {connect} is a loopback address: workers on other nodes cannot reach it; unless"
        " this cluster has one node, give the broker's address on the cluster network"
        " (farm broker --bind tcp://0.0.0.0:5555 --curve-keys DIR)\n")


@pytest.mark.parametrize("connect, args, array", [
    ("tcp://10.1.2.3:5555", ["--nodes", "4"], "0-3"),  # a routable address: any number of nodes
    ("tcp://node17.cluster:5555", ["--nodes", "2"], "0-1"),
    (LOOPBACK[0], [], "0-0"),  # one task: a one-node cluster running everything locally
    (LOOPBACK[2], ["--nodes", "4", "--extra", "-w node3"], "0-3"),  # every task pinned to one node
])
def test_the_script_is_written_when_every_worker_can_reach_the_broker(connect, args, array):
    done = slurm("--connect", connect, *args)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert f"#SBATCH --array={array}" in lines
    assert lines[-1].startswith("exec ") and f"--connect {connect} " in lines[-1]


@pytest.mark.parametrize("spec, count", [("0-0", 1), ("7", 1), ("0-3", 4), ("1,5,7", 3), ("0-15:4", 4),
                                         ("0-9%2", 10), ("3-3%1", 1), ("x", None), ("0-3:", None)])
def test_array_task_count(spec, count):
    assert array_tasks(spec) == count
